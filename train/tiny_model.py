"""A tiny random Phi with a small byte-level BPE tokenizer: the real Phi code path at a toy size.

    from finsent.train.tiny_model import save_tiny_phi
    save_tiny_phi("runs/tiny-phi")   # a from_pretrained folder: 2 layers, hidden size 64, random weights

The tests stand it in for Phi-2, and eval/bench_classify.py --memory labels a million rows on it:
what those measure is the code around the model, not the model.
"""

from __future__ import annotations

from pathlib import Path

from finsent.space.classifier import LABELS, PROMPT_TEMPLATE

SAMPLE_HEADLINES = Path(__file__).resolve().parent / "sample_headlines.csv"


def make_tokenizer():
    """A byte-level BPE trained on the prompt and the sample headlines: any text encodes, vocab stays tiny."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = [PROMPT_TEMPLATE, *(f" {label}" for label in LABELS), SAMPLE_HEADLINES.read_text()]
    trainer = trainers.BpeTrainer(
        vocab_size=384, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def save_tiny_phi(path, seed: int = 0) -> Path:
    """A 2-layer random PhiForCausalLM saved with its tokenizer into `path`; returns it."""
    import torch
    from transformers import PhiConfig, PhiForCausalLM

    tokenizer = make_tokenizer()
    config = PhiConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,  # bitsandbytes quantizes in blocks of 64
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    PhiForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)
