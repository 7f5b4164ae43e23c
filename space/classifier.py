"""The task's facts (the three labels and the prompt) and the label scorer.

This folder deploys alone as the Hugging Face Space, so it imports nothing from
`train/`, `eval/` or `model_card/`; they import these facts from here.

Scoring: the probability of each label is that of its whole token sequence
after the prompt, normalised over the three labels, so there is never an
invalid answer and a label that tokenizes to several tokens is scored whole.
The instruction that starts every prompt is run through the model once; its
key/value cache is reused by every headline, which then costs only its own
tokens (on average 35 of a prompt's 82 with SmolLM2's tokenizer).
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

try:  # inside the project: finsent.space; deployed alone as a Space: top-level modules
    from .adapter_info import check_info, read_info
    from .embedded import resolve_model_path
    from .precision import compute_dtype, fp16_safe_attention, this_machine
except ImportError:
    from adapter_info import check_info, read_info
    from embedded import resolve_model_path
    from precision import compute_dtype, fp16_safe_attention, this_machine

logger = logging.getLogger(__name__)

LABELS = ("negative", "neutral", "positive")
DEFAULT_ADAPTER = Path(__file__).resolve().parent / "default-adapter"  # shipped: SmolLM2-135M, see its README.md
TEXT_COLUMNS = ("text", "headline", "sentence")  # a table's headline column, where none is named
MAX_CHARS = 2_000  # longer input is cut before tokenizing; the model's own token limit applies after
MAX_TREE = 2_048  # tokens in one packed Tree: its attention grows with their square, its linear layers only linearly

# One prompt for training and inference. The headline goes in square brackets
# and the model completes the line with " <label>"; loss is on that completion only.
# Version 2 is short: 50 tokens a headline on average with SmolLM2's tokenizer,
# against 85 for version 1's long instruction (kept here for the benchmarks): 1.6x the
# training rows/s in one run of train/bench_throughput.py (BENCHMARKS.md).
# An adapter records the version it was trained with (adapter_info.py).
PROMPTS = {
    1: "Analyze the sentiment of the news headline enclosed in square brackets, "
       "determine if it is positive, neutral, or negative, and return the answer as "
       'the corresponding sentiment label "positive" or "neutral" or "negative".\n\n'
       "[{text}] =",
    2: "Financial news sentiment (positive, neutral or negative):\n[{text}] =",
}
PROMPT_VERSION = 2
PROMPT_TEMPLATE = PROMPTS[PROMPT_VERSION]
COMPLETION_TEMPLATE = " {label}"  # what follows the prompt: a space, then the label


def build_prompt(text: str) -> str:
    """The prompt for one headline, ending where the label's completion starts."""
    return PROMPT_TEMPLATE.format(text=text.strip())


def build_completion(label: str) -> str:
    """What the model is trained to write after the prompt."""
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}: expected one of {', '.join(LABELS)}")
    return COMPLETION_TEMPLATE.format(label=label)


# What a quantized base was loaded with, as BitsAndBytesConfig names it; an adapter records these
# (finsent.json's base_quantization), so it is evaluated and served on the base it trained with.
QUANTIZATION_KEYS = ("load_in_4bit", "load_in_8bit", "bnb_4bit_quant_type", "bnb_4bit_use_double_quant",
                     "bnb_4bit_compute_dtype", "bnb_4bit_quant_storage")
QLORA = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True}  # QLoRA's own


def quantization_settings(config) -> dict | None:
    """The QUANTIZATION_KEYS of a BitsAndBytesConfig (or its dict); None for a full-precision model."""
    if config is None:
        return None
    settings = config if isinstance(config, dict) else config.to_dict()
    settings = {key: settings[key] for key in QUANTIZATION_KEYS if key in settings}
    if not (settings.get("load_in_4bit") or settings.get("load_in_8bit")):
        return None
    if not settings.get("load_in_4bit"):  # 8-bit: the 4-bit fields mean nothing
        return {"load_in_8bit": True}
    return {key: str(value) if key.endswith(("dtype", "storage")) else value for key, value in settings.items()
            if key != "load_in_8bit"}


def choose_quantization(load_in_4bit, info: dict, cuda: bool) -> dict | None:
    """The bitsandbytes settings to load the base with, or None for full precision.

    `load_in_4bit`: "auto"/None loads the base as the adapter's run did (finsent.json), and where
    nothing is recorded (no adapter, or one from before the record) in 4-bit on CUDA only;
    true/false force it (4-bit: the adapter's own 4-bit settings if it has them, else QLoRA's);
    a dict is the settings themselves. Booleans and true/false/1/0/yes/no/auto in any case.
    """
    if isinstance(load_in_4bit, dict):
        return load_in_4bit
    choice = str(load_in_4bit).strip().lower() if load_in_4bit is not None else "auto"
    recorded = info.get("base_quantization", "unrecorded")
    if choice == "auto":
        if recorded != "unrecorded":
            return recorded
        choice = "true" if cuda else "false"
    if choice in ("true", "1", "yes"):
        return recorded if recorded not in ("unrecorded", None) and recorded.get("load_in_4bit") else dict(QLORA)
    if choice in ("false", "0", "no"):
        return None
    raise ValueError(f"load_in_4bit {load_in_4bit!r}: use auto, true or false")


def describe_precision(quantization: dict | None, dtype: str) -> str:
    """e.g. "4-bit nf4 + double quant, bfloat16 compute", "8-bit", "bfloat16"."""
    if quantization is None:
        return dtype
    if not quantization.get("load_in_4bit"):
        return "8-bit"
    double = " + double quant" if quantization.get("bnb_4bit_use_double_quant") else ""
    return f"4-bit {quantization.get('bnb_4bit_quant_type', 'fp4')}{double}, {dtype} compute"


def default_dtype(device: str) -> str:
    """The dtype to serve in: bf16 where the hardware computes it natively, else float32 (precision.py decides)."""
    return this_machine(device).serving_dtype


def prior_shift(train_counts: dict[str, int] | None, target="balanced") -> list[float] | None:
    """What to add to the label log-scores to move them from the training label mix to `target`.

    A model trained on a label mix scores p(label | text) in proportion to that mix's prior;
    dividing by the training prior and multiplying by the target's (Bayes' rule) gives the
    scores it would have learned from the target mix. `target`: "balanced" (equal priors),
    "train" (no change), or {label: share}. None when there is nothing to shift.
    """
    import math

    if target == "train" or not train_counts or not all(train_counts.get(label) for label in LABELS):
        return None
    if target == "balanced":
        target = dict.fromkeys(LABELS, 1.0)
    if not isinstance(target, dict) or set(target) != set(LABELS) or min(target.values()) <= 0:
        raise ValueError(f"label prior {target!r}: give balanced, train, or a positive share for each of {LABELS}")
    train_total, target_total = sum(train_counts[k] for k in LABELS), sum(target.values())
    shift = [math.log(target[k] / target_total) - math.log(train_counts[k] / train_total) for k in LABELS]
    return None if max(map(abs, shift)) < 1e-12 else shift


@dataclass
class Tree:
    """Prompts that share beginnings as one sequence, each distinct beginning once (a trie of their tokens after the
    instruction), with each label's tokens but its last grown on each prompt's end, so a label of several tokens is
    scored inside the tree too. Classifier._score_tree scores it."""

    start: int  # the cached instruction's tokens, before every row's own
    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)  # each token's predecessor in the tree; -1: the instruction
    rows: list[int] = field(default_factory=list)  # the rows' indexes in the caller's list
    ends: list[int] = field(default_factory=list)  # each row's last token
    paths: list[list[list[int]]] = field(default_factory=list)  # each row's, each label's tokens but the last
    _nodes: dict[tuple[int, int], int] = field(default_factory=dict)

    def grow(self, at: int, token: int) -> int:
        """The node for `token` after node `at`, added if new."""
        if (at, token) not in self._nodes:
            self._nodes[at, token] = len(self.tokens)
            self.tokens.append(token)
            self.parents.append(at)
        return self._nodes[at, token]

    def add(self, index: int, row: list[int], label_ids: list[list[int]]):
        at = -1
        for token in row[self.start:]:
            at = self.grow(at, token)
        paths = []
        for ids in label_ids:
            step, path = at, []
            for token in ids[:-1]:
                step = self.grow(step, token)
                path.append(step)
            paths.append(path)
        self.rows.append(index)
        self.ends.append(at)
        self.paths.append(paths)

    def drop_last(self, size: int):
        """Take the last row added out again; `size` is how many tokens the tree had before it."""
        del self.tokens[size:], self.parents[size:], self.rows[-1], self.ends[-1], self.paths[-1]
        self._nodes = {key: node for key, node in self._nodes.items() if node < size}


@dataclass
class Classifier:
    """A causal LM (optionally with a LoRA adapter) that scores the three labels after the prompt."""

    model: object
    tokenizer: object
    share_prefix: bool = True  # reuse the instruction's key/value cache; off only to measure it
    temperature: float = 1.0  # the label log-scores are divided by it first (the adapter's finsent.json)
    log_prior_shift: list[float] | None = None  # then added to them (prior_shift)
    quantization: dict | None = None  # the base's bitsandbytes settings (None: full precision)
    precision: str = ""  # what the weights compute in, for reports (describe_precision)
    _label_ids: list[list[int]] = field(init=False)
    _prefix_ids: list[int] = field(init=False)
    _prefix_cache: object = field(init=False, default=None)

    def __post_init__(self):
        tok = self.tokenizer
        example = build_prompt("Example headline")
        prompt_ids = tok(example).input_ids
        self._label_ids = []
        for label in LABELS:
            ids = tok(example + build_completion(label)).input_ids
            if ids[: len(prompt_ids)] != prompt_ids:
                raise ValueError(f"the tokenizer merges the prompt's end with {label!r}; cannot score it")
            self._label_ids.append(ids[len(prompt_ids):])
        # The tokens every prompt starts with: common to prompts whose headlines share nothing.
        # (Not the instruction tokenized alone: "\n\n" is one token alone, two before "[".)
        other_ids = tok(build_prompt("1 (Update) zero")).input_ids
        common = next((i for i, (a, b) in enumerate(zip(prompt_ids, other_ids, strict=False)) if a != b), 0)
        self._prefix_ids = prompt_ids[:common]

    @property
    def device(self):
        return next(self.model.parameters()).device

    # The decoder stack and the LM head, called apart so that the head runs on the positions
    # that need logits only (a 49k-word head on every position costs as much as 5 layers).
    # With an unmerged PEFT model the LoRA layers sit inside the decoder, so they still apply.
    @property
    def _decoder(self):
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        return base.get_decoder()

    @property
    def _head(self):
        return self.model.get_output_embeddings()

    def fit(self, text: str) -> tuple[str, bool]:
        """The headline cut to what the model can take after the prompt; whether it was cut."""
        limit = getattr(self.model.config, "max_position_embeddings", 2048) - 128  # room for the prompt
        if len(text) <= MAX_CHARS and 4 * len(text) <= limit:  # a character is at most 4 bytes, so 4 byte-level tokens
            return text, False
        cut = text[:MAX_CHARS]
        ids = self.tokenizer(cut, add_special_tokens=False).input_ids
        if len(ids) > limit:
            cut = self.tokenizer.decode(ids[:limit])
        return cut, cut != text

    def predict_proba(self, texts: list[str], batch_size: int = 32, progress: bool = False, packed: bool = False):
        """An (N, 3) numpy array: P(label | prompt) for LABELS, each row summing to 1.

        `packed`: the texts share beginnings (a headline and its variants without one word each, explain.py), so
        they are scored as trees (Tree) in which each shared token is computed once, not in batches of
        `batch_size`. For a 12-word headline's 11 texts, 108 tokens against 198 padded (BENCHMARKS.md, "Explanations").
        """
        import numpy as np
        import torch

        if not texts:
            return np.zeros((0, len(LABELS)))
        encoded = self.tokenizer([build_prompt(text) for text in texts]).input_ids
        scores = np.zeros((len(texts), len(LABELS)), dtype=np.float64)
        if packed:
            with torch.inference_mode():
                for tree in self._trees(encoded):
                    scores[tree.rows] = self._score_tree(tree)
        else:
            order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))  # similar lengths share a batch
            batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
            if progress:
                from tqdm.auto import tqdm

                batches = tqdm(batches, desc="scoring", unit="batch")
            with torch.inference_mode():
                for batch in batches:
                    scores[batch] = self._score_batch([encoded[i] for i in batch])
        scores /= self.temperature
        if self.log_prior_shift is not None:
            scores += np.asarray(self.log_prior_shift)
        scores -= scores.max(axis=1, keepdims=True)
        probs = np.exp(scores)
        return probs / probs.sum(axis=1, keepdims=True)

    def classify(self, texts: list[str], batch_size: int = 32) -> list[dict[str, float]]:
        """{label: probability} for each text."""
        return [dict(zip(LABELS, map(float, row), strict=True)) for row in self.predict_proba(texts, batch_size)]

    def _shared(self, rows: list[list[int]]) -> int:
        """How many tokens every row starts with that the instruction's cache holds (0: none)."""
        n = len(self._prefix_ids)
        return n if self.share_prefix and n and all(r[:n] == self._prefix_ids and len(r) > n for r in rows) else 0

    def _cache(self, copies: int):
        """A copy of the instruction's key/value cache, expanded to `copies` rows."""
        import torch

        if self._prefix_cache is None:
            ids = torch.tensor([self._prefix_ids], device=self.device)
            with torch.inference_mode():
                self._prefix_cache = self._decoder(input_ids=ids, use_cache=True).cache
        cache = copy.deepcopy(self._prefix_cache)
        cache.batch_repeat_interleave(copies)
        return cache

    def _prefix(self, rows: list[list[int]]):
        """The shared prefix length and its cache, expanded to the batch (or 0, None)."""
        start = self._shared(rows)
        return (start, self._cache(len(rows))) if start else (0, None)

    def _score_batch(self, rows: list[list[int]]):
        """Summed log-probabilities of each label's tokens after each prompt: (B, 3) numpy."""
        import torch

        device = self.device
        start, cache = self._prefix(rows)
        suffixes = [r[start:] for r in rows]
        lengths = torch.tensor([len(s) for s in suffixes], device=device)
        width = int(lengths.max())
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        # Left padding, so every prompt ends in the last column and only that column needs logits;
        # the positions skip the padding, as if each prompt were alone.
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in suffixes], device=device)
        offset = (width - lengths)[:, None]
        columns = torch.arange(width, device=device)[None, :]
        mask = torch.cat([torch.ones(len(rows), start, dtype=torch.long, device=device),
                          (columns >= offset).long()], dim=1)
        positions = start + (columns - offset).clamp(min=0)
        out = self._decoder(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)
        # The head on the last column only: (B, vocab), not (B, width, vocab).
        last = self._head(out.last_hidden_state[:, -1]).float().log_softmax(-1)  # the token after each prompt

        scores = torch.zeros(len(rows), len(LABELS), device=device)
        for j, label_ids in enumerate(self._label_ids):
            scores[:, j] = last[:, label_ids[0]]
            if len(label_ids) > 1:  # the rest of a multi-token label, after its first token
                scores[:, j] += self._continuation(out.cache, mask, start + lengths, label_ids)
        return scores.cpu().numpy()

    def _trees(self, rows: list[list[int]]) -> list[Tree]:
        """The rows after the shared instruction as Trees, in order, a new one begun where the next row would take
        one past MAX_TREE tokens."""
        start = self._shared(rows)
        trees = [Tree(start)]
        for r, row in enumerate(rows):
            size = len(trees[-1].tokens)
            trees[-1].add(r, row, self._label_ids)
            if len(trees[-1].tokens) > MAX_TREE and len(trees[-1].rows) > 1:  # it goes first in a tree of its own
                trees[-1].drop_last(size)
                trees.append(Tree(start))
                trees[-1].add(r, row, self._label_ids)
        return [tree for tree in trees if tree.rows]

    def _score_tree(self, tree: Tree):
        """Summed label log-probabilities, as _score_batch's, of the tree's rows, in one sequence: each token sees
        the instruction and the tokens on its own path, at the position it has in its rows, so each row scores as
        it would alone, and a token that rows share with all before it is computed once."""
        import numpy as np
        import torch

        device, start, n = self.device, tree.start, len(tree.tokens)
        cache = self._cache(1) if start else None
        depth = np.zeros(n, dtype=np.int64)
        sees = np.zeros((n, start + n), dtype=bool)  # the 4-D attention mask, one row a token
        sees[:, :start] = True
        for i, parent in enumerate(tree.parents):
            if parent >= 0:
                sees[i] = sees[parent]
                depth[i] = depth[parent] + 1
            sees[i, start + i] = True
        out = self._decoder(input_ids=torch.tensor([tree.tokens], device=device),
                            attention_mask=torch.from_numpy(sees).to(device)[None, None],
                            position_ids=torch.from_numpy(start + depth).to(device)[None],
                            cache=cache, use_cache=cache is not None)
        wanted = sorted({*tree.ends, *(node for paths in tree.paths for path in paths for node in path)})
        logp = dict(zip(wanted, self._head(out.last_hidden_state[0, wanted]).float().log_softmax(-1), strict=True))
        scores = torch.zeros(len(tree.ends), len(LABELS), device=device)
        for r, (end, paths) in enumerate(zip(tree.ends, tree.paths, strict=True)):
            for j, (label_ids, path) in enumerate(zip(self._label_ids, paths, strict=True)):
                scores[r, j] = sum(logp[node][token] for node, token in zip([end, *path], label_ids, strict=True))
        return scores.cpu().numpy()

    def _continuation(self, cache, mask, positions, label_ids):
        """log P(label_ids[1:] | prompt, label_ids[0]) per row; the cache is cropped back after."""
        import torch

        tail = torch.tensor(label_ids[:-1], device=mask.device).expand(len(positions), -1)
        steps = torch.arange(tail.shape[1], device=mask.device)
        out = self._decoder(
            input_ids=tail,
            attention_mask=torch.cat([mask, mask.new_ones(tail.shape)], dim=1),
            position_ids=positions[:, None] + steps[None, :],  # right after each row's own prompt
            cache=cache,
            use_cache=True,
        )
        cache.crop(-tail.shape[1])
        logp = self._head(out.last_hidden_state).float().log_softmax(-1)
        targets = torch.tensor(label_ids[1:], device=mask.device)
        return logp[:, steps, targets].sum(-1)


def load_classifier(
    base_model: str,
    adapter: str | None = None,
    *,
    load_in_4bit="auto",
    dtype: str | None = None,
    device: str | None = None,
    label_prior="balanced",
    allow_other_base: bool = False,
) -> Classifier:
    """Base model (a Hub id, a local folder, or the embedded SmolLM2 id) plus an optional LoRA adapter.

    The base loads as the adapter's run trained it (`load_in_4bit`: see choose_quantization), so a
    QLoRA adapter meets the 4-bit base it learned on, on CUDA or on the CPU. A full-precision base
    has the adapter merged in fp32 and the result cast to `dtype` (default: bf16 where the hardware
    has it), so inference pays nothing for LoRA. The adapter's finsent.json must match this prompt
    version and the base's weights (unless `allow_other_base`); its training label mix is shifted
    to `label_prior` (see prior_shift).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    path = resolve_model_path(base_model)
    info = {}
    if adapter:
        info = read_info(adapter)
        check_info(adapter, info, base_model, path, check_weights=not allow_other_base)
    quantization = choose_quantization(load_in_4bit, info, cuda=device.startswith("cuda"))
    if quantization is not None:  # computed as trained, unless that is bf16 and this hardware only emulates it
        dtype = dtype or compute_dtype(quantization.get("bnb_4bit_compute_dtype"), this_machine(device))
        if quantization.get("load_in_4bit"):
            quantization = {**quantization, "bnb_4bit_compute_dtype": dtype}
        kwargs = {"quantization_config": BitsAndBytesConfig(**quantization), "dtype": getattr(torch, dtype),
                  "device_map": {"": device}}
    else:  # an adapter is merged in fp32 first; without one, load straight in the target dtype (less memory)
        dtype = dtype or default_dtype(device)
        kwargs = {"dtype": torch.float32 if adapter else getattr(torch, dtype)}
    if dtype == "float16":  # Phi-2's attention overflows fp16 (precision.py)
        kwargs["attn_implementation"] = fp16_safe_attention()
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    tokenizer_source = path
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
        if quantization is None:
            model = model.merge_and_unload()
        if os.path.isfile(os.path.join(adapter, "tokenizer_config.json")):
            tokenizer_source = adapter  # the tokenizer as trained
    if quantization is None:
        model = model.to(device=device, dtype=getattr(torch, dtype))
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    precision = describe_precision(quantization, dtype)
    logger.info("loaded %s%s on %s (%s)", base_model, f" + {adapter}" if adapter else "", device, precision)
    return Classifier(model, tokenizer, temperature=float(info.get("temperature", 1.0)),
                      log_prior_shift=prior_shift(info.get("train_label_counts"), label_prior),
                      quantization=quantization, precision=precision)
