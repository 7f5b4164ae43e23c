"""`generate` mode: the seed notebook's way of predicting, kept honest.

A text-generation pipeline writes a few tokens greedily after the prompt and the
label is parsed from them. An answer that names no label is `INVALID` and
counts as wrong; the notebook mapped it to neutral, which flatters base models.
"""

from __future__ import annotations

import logging
import re

from finsent.eval.metrics import INVALID
from finsent.space.classifier import LABELS, build_prompt

logger = logging.getLogger(__name__)

_LABEL_WORD = re.compile(r"\b(" + "|".join(LABELS) + r")\b", re.IGNORECASE)


def parse_label(generated: str) -> str:
    """The first label named as a whole word in the generated text, else INVALID."""
    found = _LABEL_WORD.search(generated)
    return found.group(1).lower() if found else INVALID


def generate_labels(model, tokenizer, texts: list[str], *, max_new_tokens: int = 3, batch_size: int = 1,
                    progress: bool = False) -> list[str]:
    """Greedy generation after each prompt through a `text-generation` pipeline; one label (or INVALID) each."""
    from transformers import pipeline

    tokenizer.padding_side = "left"  # a decoder continues the last column of a batch
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    prompts = [build_prompt(text) for text in texts]
    outputs = generator(
        prompts if not progress else _progress(prompts),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        return_full_text=False,
        batch_size=batch_size,
        pad_token_id=tokenizer.pad_token_id,
    )
    return [parse_label(out[0]["generated_text"]) for out in outputs]


def _progress(prompts):
    from tqdm.auto import tqdm

    yield from tqdm(prompts, desc="generating", unit="headline")
