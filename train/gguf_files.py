"""GGUF files for llama.cpp (and LM Studio, Ollama): an adapter's LoRA, a base model, and the two merged.

An adapter file is what llama.cpp's own `convert_lora_to_gguf.py` writes: `general.type=adapter`,
`adapter.type=lora`, `adapter.lora.alpha`, and per adapted weight `<base tensor>.lora_a` (r x in) and
`.lora_b` (out x r), named through gguf-py's name map, which llama.cpp applies as W x + alpha/r B A x
(r read from each B). Two facts of llama.cpp shape it:
- its converter permutes the rows of a `llama` model's q_proj and k_proj for its RoPE layout, so the
  B of those LoRAs is permuted the same way (unpermuted, labels silently disagree: BENCHMARKS.md);
- one alpha serves the whole file, so other scalings (rsLoRA) are folded into B.

Each file also carries what a caller needs to score the labels as finsent does (SCORING keys):
the prompt template and its version, the completion, the labels, the temperature and the label
prior shift. A base GGUF comes from a GGUF file (the embedded SmolLM2, de-quantized) or from a
transformers folder of a Phi model (Phi-2, or the tests' tiny Phi).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from finsent.space.classifier import COMPLETION_TEMPLATE, LABELS, PROMPTS, prior_shift
from finsent.train.data import UsageError

logger = logging.getLogger(__name__)

ARCHES = {"llama": gguf.MODEL_ARCH.LLAMA, "phi": gguf.MODEL_ARCH.PHI2}  # transformers model_type -> llama.cpp's
PERMUTED = {gguf.MODEL_ARCH.LLAMA}  # archs whose q/k rows llama.cpp's converter permutes for RoPE
TYPES = {  # --outtype / --merged name -> (tensor type, file type)
    "f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
    "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
    "bf16": (gguf.GGMLQuantizationType.BF16, gguf.LlamaFileType.MOSTLY_BF16),
    "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
}
SCORING = "finsent."  # prefix of the keys that say how to score the labels


@dataclass
class Lora:
    """An adapter's LoRA pairs in llama.cpp's terms: base tensor name -> (A, B), float32, scaled for `alpha`."""

    arch: gguf.MODEL_ARCH
    alpha: float
    pairs: dict[str, tuple[np.ndarray, np.ndarray]]

    def delta(self, name: str) -> np.ndarray | None:
        """What merging adds to the base tensor `name` (out x in), or None if the adapter leaves it alone."""
        if name not in self.pairs:
            return None
        a, b = self.pairs[name]
        return (self.alpha / a.shape[0]) * (b @ a)


def permute_rows(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's RoPE row order for q/k (convert_hf_to_gguf's LlamaModel.permute), for n_head heads."""
    return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(
        weights.shape)


def read_lora(folder: Path, config) -> Lora:
    """The LoRA of a PEFT adapter folder for a base with transformers `config`; UsageError if GGUF can't hold it."""
    import torch
    from safetensors.torch import load_file

    peft = json.loads((folder / "adapter_config.json").read_text())
    arch = ARCHES.get(config.model_type)
    if arch is None:
        raise UsageError(f"{folder}: its base is a {config.model_type!r} model; GGUF export knows "
                         f"{', '.join(ARCHES)} (llama.cpp's {', '.join(gguf.MODEL_ARCH_NAMES[a] for a in ARCHES.values())})")
    refusals = {
        "a DoRA adapter (use_dora)": peft.get("use_dora"),
        "modules_to_save (whole trained copies of modules)": peft.get("modules_to_save"),
        "LoRA biases (lora_bias)": peft.get("lora_bias"),
        "per-module alphas (alpha_pattern)": peft.get("alpha_pattern"),
        "trainable tokens (trainable_token_indices)": peft.get("trainable_token_indices"),
    }
    for what, present in refusals.items():
        if present:
            raise UsageError(f"{folder}: a GGUF LoRA cannot express {what}; retrain without it, "
                             "or merge in PyTorch (peft's merge_and_unload) and convert the merged model")
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    halves: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in load_file(folder / "adapter_model.safetensors").items():
        module, _, half = key.removeprefix("base_model.model.").rpartition(".lora_")
        if half not in ("A.weight", "B.weight"):
            raise UsageError(f"{folder}: tensor {key} is not a LoRA A/B weight (embedding LoRA?); "
                             "a GGUF adapter holds LoRA on linear layers only")
        halves.setdefault(module, {})[half[0]] = tensor
    pairs = {}
    for module, half in sorted(halves.items()):
        if module.split(".")[-1] == "lm_head" and getattr(config, "tie_word_embeddings", False):
            raise UsageError(f"{folder}: LoRA on lm_head, which this base ties to its embeddings; llama.cpp "
                             "cannot apply it (llama.cpp#9065): retrain without lm_head in target_modules")
        name = names.get_name(f"{module}.weight", try_suffixes=(".weight",))
        if name is None or set(half) != {"A", "B"}:
            raise UsageError(f"{folder}: LoRA module {module} has no {gguf.MODEL_ARCH_NAMES[arch]} tensor in "
                             "llama.cpp (or lacks its A or B); GGUF export cannot place it")
        a, b = (half[k].to(torch.float32).numpy() for k in "AB")
        if peft.get("use_rslora"):  # rsLoRA scales by alpha/sqrt(r); llama.cpp by alpha/r
            b = b * math.sqrt(a.shape[0])
        if arch in PERMUTED and module.endswith(("q_proj", "k_proj")):
            heads = config.num_attention_heads
            if module.endswith("k_proj"):
                heads = getattr(config, "num_key_value_heads", None) or heads
            b = permute_rows(b, heads)
        pairs[name] = (a, b)
    if not pairs:
        raise UsageError(f"{folder}: the adapter holds no LoRA weights")
    return Lora(arch, float(peft["lora_alpha"]), pairs)


def scoring_metadata(info: dict) -> dict[str, object]:
    """The SCORING keys from an adapter's finsent.json: enough to score the labels outside finsent."""
    counts = info.get("train_label_counts") or {}
    shift = prior_shift(counts) or [0.0] * len(LABELS)
    version = int(info["prompt_version"])
    return {
        f"{SCORING}prompt_version": version,
        f"{SCORING}prompt_template": PROMPTS[version],  # "{text}" is the stripped headline
        f"{SCORING}completion_template": COMPLETION_TEMPLATE,  # "{label}": each label's completion after it
        f"{SCORING}labels": list(info.get("labels", LABELS)),
        f"{SCORING}temperature": float(info.get("temperature", 1.0)),  # divides the summed label log-probs
        f"{SCORING}label_log_prior_shift": [float(x) for x in shift],  # then added (balanced prior; 0 = none)
        f"{SCORING}train_label_counts": [int(counts.get(label, 0)) for label in LABELS],  # the shift's source
        f"{SCORING}base_model": str(info.get("base_model", "")),
    }


def read_scoring(path: str | os.PathLike) -> dict[str, object]:
    """The SCORING keys of a GGUF file (adapter or merged), without the prefix."""
    fields = gguf.GGUFReader(path).fields
    return {name.removeprefix(SCORING): field.contents() for name, field in fields.items()
            if name.startswith(SCORING)}


def _add_metadata(writer: gguf.GGUFWriter, values: dict[str, object]) -> None:
    for key, value in values.items():
        if isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        elif all(isinstance(v, str) for v in value):
            writer.add_array(key, list(value))
        else:  # numbers: float32 for floats, int32 for counts (add_array picks by the first element's type)
            writer.add_key_value(key, list(value), gguf.GGUFValueType.ARRAY,
                                 gguf.GGUFValueType.FLOAT32 if isinstance(value[0], float) else gguf.GGUFValueType.INT32)


def _write(path: Path, arch: gguf.MODEL_ARCH, fill: Callable[[gguf.GGUFWriter], None]) -> Path:
    """Write a GGUF file beside `path` and rename it into place: a failure leaves no half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[arch], use_temp_file=True)  # tensors spill to disk
        fill(writer)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _encode(array: np.ndarray, qtype: gguf.GGMLQuantizationType) -> tuple[np.ndarray, gguf.GGMLQuantizationType]:
    """A float32 tensor as `qtype`; vectors stay F32 and rows that don't fill the blocks fall back to F16, as
    llama.cpp's converter does."""
    if array.ndim < 2 or qtype == gguf.GGMLQuantizationType.F32:
        return array.astype(np.float32), gguf.GGMLQuantizationType.F32
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    if array.shape[-1] % block:
        qtype = gguf.GGMLQuantizationType.F16
    if qtype == gguf.GGMLQuantizationType.F16:
        return array.astype(np.float16), qtype
    return gguf.quants.quantize(array.astype(np.float32), qtype), qtype


def write_lora(lora: Lora, path: Path, metadata: dict[str, object], outtype: str = "f16") -> Path:
    """The adapter file: `adapter.gguf` for llama.cpp's `--lora`."""
    qtype, _ = TYPES[outtype]

    def fill(writer):
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, lora.alpha)
        _add_metadata(writer, metadata)
        for name, (a, b) in lora.pairs.items():
            for suffix, tensor in ((".lora_a", a), (".lora_b", b)):
                data, dtype = _encode(tensor, qtype)
                writer.add_tensor(name + suffix, data, raw_dtype=dtype)

    return _write(path, lora.arch, fill)


# A base model: its llama.cpp architecture, its key-values (written by a function) and its tensors as float32.
@dataclass
class Base:
    arch: gguf.MODEL_ARCH
    add_metadata: Callable[[gguf.GGUFWriter], None]
    tensors: Callable[[], Iterator[tuple[str, np.ndarray]]]


def base_from_gguf(source: Path) -> Base:
    """A GGUF model (the embedded SmolLM2's Q4_1 file), each tensor de-quantized to float32 when read."""
    reader = gguf.GGUFReader(source)
    arch_name = reader.fields["general.architecture"].contents()
    arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch_name)
    skip = {"general.architecture", "general.file_type", "general.quantization_version"}

    def add_metadata(writer):
        for field in reader.fields.values():
            if field.name.startswith("GGUF.") or field.name in skip:
                continue
            vtype = field.types[0]
            sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)

    def tensors():
        for t in reader.tensors:
            yield t.name, np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)

    return Base(arch, add_metadata, tensors)


def base_from_transformers(folder: Path) -> Base:
    """A Phi model saved by transformers (Phi-2, the tests' tiny Phi) as llama.cpp's converter writes it."""
    from safetensors import safe_open
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(folder)
    if ARCHES.get(config.model_type) != gguf.MODEL_ARCH.PHI2:
        raise UsageError(f"{folder}: a {config.model_type!r} model; a base GGUF is written here from Phi "
                         "models only (the embedded SmolLM2 comes as GGUF already)")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.PHI2, config.num_hidden_layers)
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def add_metadata(writer):
        n_embd, n_head = config.hidden_size, config.num_attention_heads
        writer.add_name(str(config.name_or_path or folder.name))
        writer.add_context_length(config.max_position_embeddings)
        writer.add_embedding_length(n_embd)
        writer.add_feed_forward_length(config.intermediate_size)
        writer.add_block_count(config.num_hidden_layers)
        writer.add_head_count(n_head)
        writer.add_head_count_kv(config.num_key_value_heads or n_head)
        writer.add_layer_norm_eps(config.layer_norm_eps)
        rope = config.rope_parameters  # as modeling_phi.py reads it
        head_dim = getattr(config, "head_dim", None) or n_embd // n_head
        writer.add_rope_dimension_count(int(head_dim * rope.get("partial_rotary_factor", 1.0)))
        writer.add_rope_freq_base(float(rope["rope_theta"]))
        writer.add_add_bos_token(False)
        # The vocabulary as llama.cpp's converter writes a GPT-2 BPE (Phi-2's "phi-2" pre-tokenizer is GPT-2's)
        vocab = {i: t for t, i in tokenizer.get_vocab().items()}
        added = {i: t for i, t in tokenizer.added_tokens_decoder.items()}
        tokens, types = [], []
        for i in range(config.vocab_size):  # Phi-2 pads its embedding past the tokenizer's vocabulary
            if i not in vocab:
                tokens.append(f"[PAD{i}]")
                types.append(gguf.TokenType.UNUSED)
            elif i in added:
                tokens.append(vocab[i])
                types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
            else:
                tokens.append(vocab[i])
                types.append(gguf.TokenType.NORMAL)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("phi-2")
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        gguf.SpecialVocab(folder, load_merges=True, n_vocab=len(tokens)).add_to_gguf(writer)

    def tensors():
        files = sorted(Path(folder).glob("*.safetensors"))
        for file in files:
            with safe_open(file, framework="pt") as handle:
                for key in handle.keys():
                    name = names.get_name(key, try_suffixes=(".weight", ".bias"))
                    if name is None:
                        raise UsageError(f"{folder}: tensor {key} has no phi2 counterpart in llama.cpp")
                    yield name, handle.get_tensor(key).float().numpy()

    return Base(gguf.MODEL_ARCH.PHI2, add_metadata, tensors)


def write_model(base: Base, path: Path, outtype: str = "f32", lora: Lora | None = None,
                metadata: dict[str, object] | None = None) -> Path:
    """A whole model GGUF: the base, plus the LoRA merged in float32 if given, then stored as `outtype`."""
    qtype, file_type = TYPES[outtype]
    if lora is not None and lora.arch != base.arch:
        raise UsageError(f"the adapter is for {gguf.MODEL_ARCH_NAMES[lora.arch]}, the base GGUF is "
                         f"{gguf.MODEL_ARCH_NAMES[base.arch]}")

    def fill(writer):
        base.add_metadata(writer)
        writer.add_file_type(file_type)
        if qtype not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        _add_metadata(writer, metadata or {})
        merged = set()
        for name, array in base.tensors():
            delta = lora.delta(name) if lora is not None else None
            if delta is not None:
                if delta.shape != array.shape:
                    raise UsageError(f"the adapter's {name} is {delta.shape}, the base's {array.shape}: "
                                     "not the base it was trained on")
                array = array + delta
                merged.add(name)
            data, dtype = _encode(array, qtype)
            writer.add_tensor(name, data, raw_dtype=dtype)
        missing = set(lora.pairs) - merged if lora is not None else set()
        if missing:
            raise UsageError(f"the base has no tensor {sorted(missing)[0]} that the adapter adapts: "
                             "not the base it was trained on")

    return _write(path, base.arch, fill)

