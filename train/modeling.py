"""Base model, tokenizer and LoRA targets for training."""

from __future__ import annotations

import dataclasses
import logging

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import ModelConfig, get_peft_config, get_quantization_config

from finsent.space.embedded import resolve_model_path
from finsent.space.precision import Precision
from finsent.train.data import UsageError

logger = logging.getLogger(__name__)


def get_tokenizer(model_args: ModelConfig):
    path = resolve_model_path(model_args.model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path, revision=model_args.model_revision)
    if tokenizer.pad_token is None:  # Phi-2 ships none; padding is masked out of the loss anyway
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


class PlacementError(ValueError):
    """More processes than GPUs: the message names the fix."""


def base_device(*, cuda_devices: int, use_cpu: bool, quantized: bool, local_processes: int = 1,
                local_rank: int = 0) -> str | int | None:
    """Where `from_pretrained` puts the base model: `device_map={"": <this>}`, or None to leave it to the Trainer.

    The Trainer moves a full-precision model to its own device (the CPU under `use_cpu`, else
    this process's GPU). A quantized model cannot be moved after loading, so it is loaded
    where the Trainer will compute: the CPU (bitsandbytes >= 0.48 runs 4-bit there) or the GPU
    of this process's local rank. `cuda_devices`: GPUs visible; `local_processes` and
    `local_rank`: the processes on this machine and this one's index among them.
    More processes than visible GPUs is a PlacementError in every process: on CUDA, and under
    `use_cpu` too, since accelerate's barriers still take each rank's GPU when GPUs are visible
    (seen on a one-GPU machine: "invalid device ordinal" in rank 1 of 2).
    """
    if cuda_devices and local_processes > cuda_devices:
        fix = ('or hide the GPUs (CUDA_VISIBLE_DEVICES="") to train on the CPU' if use_cpu
               else "or train on the CPU with --use_cpu true and the GPUs hidden (CUDA_VISIBLE_DEVICES=\"\")")
        raise PlacementError(
            f"{local_processes} processes on this machine but {cuda_devices} GPU(s) visible: launch at most "
            f"{cuda_devices} (accelerate launch --num_processes {cuda_devices}), {fix}"
        )
    if use_cpu or cuda_devices == 0:
        return "cpu" if quantized else None
    return local_rank if quantized else None


# bitsandbytes' paged optimizers page their state between GPU and host memory; without a GPU
# nothing pages. On the CPU the code uses the same update rule, unpaged (for AdamW: torch's
# own, which gave the same weights to 2e-7 as bitsandbytes' and steps faster; BENCHMARKS.md).
UNPAGED = {
    "paged_adamw_32bit": "adamw_torch",
    "paged_adamw_8bit": "adamw_8bit",
    "paged_ademamix_32bit": "ademamix",
    "paged_ademamix_8bit": "ademamix_8bit",
    "paged_lion_32bit": "lion_32bit",
    "paged_lion_8bit": "lion_8bit",
}


PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def autocast_flags(precision: str, bf16: bool | None, fp16: bool, machine: Precision) -> dict[str, bool]:
    """{"bf16": ..., "fp16": ...} for the Trainer: `precision` auto takes `machine`'s native choice; flags win.

    `bf16` is None unless --bf16 was given (TRL's default is None, read as "not asked"). bf16 asked of
    hardware that only emulates it is a UsageError naming the hardware and the fix.
    """
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
    if bf16 is not None or fp16:
        if precision != "auto":
            raise UsageError(f"--precision {precision} with --bf16/--fp16: give one of them (--precision auto lets "
                             "the flags decide)")
        chosen = "bf16" if bf16 else "fp16" if fp16 else "fp32"
        asked = "--bf16 true"
    else:
        chosen = machine.autocast if precision == "auto" else precision
        asked = f"--precision {precision}"
    if chosen == "bf16" and not machine.native_bf16:
        raise UsageError(f"{asked}: {machine.reason} (bf16 would run emulated, slowly); drop it: --precision auto "
                         f"trains in {machine.autocast} here")
    return {"bf16": chosen == "bf16", "fp16": chosen == "fp16"}


def quantized_compute_dtype(dtype: str | None, machine: Precision) -> str:
    """The 4-bit compute dtype (TRL passes the model's `dtype` to bitsandbytes): `auto` is `machine`'s."""
    if dtype in (None, "auto"):
        return machine.compute_dtype
    if dtype == "bfloat16" and not machine.native_bf16:
        raise UsageError(f"--dtype bfloat16: {machine.reason}, so 4-bit compute in bf16 would run emulated; "
                         f"pass --dtype auto ({machine.compute_dtype} here)")
    return dtype


def optimizer_for(optim: str, on_cpu: bool) -> str:
    """The optimizer to run: the recipe's, or on the CPU the unpaged twin of a paged one."""
    return UNPAGED.get(optim, optim) if on_cpu else optim


def get_model(model_args: ModelConfig, device: str | int | None = None):
    """The base model, quantized when the recipe says so (4-bit NF4 on CUDA or on the CPU).

    `device`: from base_device(); None leaves the model on the CPU for the Trainer to move.
    """
    path = resolve_model_path(model_args.model_name_or_path)
    dtype = model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)
    kwargs = {"revision": model_args.model_revision, "dtype": dtype}
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    quantization = get_quantization_config(model_args)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
    if device is not None:  # one whole model per process
        kwargs["device_map"] = {"": device}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    model.name_or_path = model_args.model_name_or_path  # the adapter records the id, not a cache path
    model.config.use_cache = False  # no KV cache while training
    return model


@dataclasses.dataclass(frozen=True)
class LoraTargets:
    num_layers: int
    module_names: list[str]


def find_lora_targets(model) -> LoraTargets:
    """Linear module names to adapt (e.g. Phi-2: q_proj k_proj v_proj dense fc1 fc2), never the output head."""
    head = model.get_output_embeddings()
    names: dict[str, None] = {}  # insertion-ordered set
    for name, module in model.named_modules():
        # bitsandbytes' Linear4bit/Linear8bitLt subclass nn.Linear, so 4-bit models are covered
        if isinstance(module, torch.nn.Linear) and module is not head:
            names[name.rsplit(".", 1)[-1]] = None
    return LoraTargets(model.config.num_hidden_layers, list(names))


def get_lora_config(model_args: ModelConfig, model):
    """TRL's LoraConfig from the recipe; targets found in the model when the recipe names none."""
    if model_args.lora_target_modules is None:
        targets = find_lora_targets(model).module_names
        model_args = dataclasses.replace(model_args, lora_target_modules=targets)
    return get_peft_config(model_args)


def compact_lm_head_on_cpu(enabled: bool = True) -> None:
    """Make TRL's fused LM head score only the completion positions on the CPU, as it does on CUDA.

    Workaround for TRL 1.16: `trl.trainer.utils` scores every position (prompt and padding
    included) on devices without Triton, to spare Neuron recompilations (`compact =
    _use_triton(device)`). On a CPU that is ~1/3 of each step of the cpu-embedded recipe
    (BENCHMARKS.md). Only the `compact` decision reads this name; the kernels keep their own
    `_use_triton`. Remove once TRL compacts on the CPU.
    """
    import trl.trainer.utils as trl_utils
    from trl.kernels.chunked_logprob import _use_triton

    if enabled:
        trl_utils._use_triton = lambda device: device.type == "cpu" or _use_triton(device)
    else:
        trl_utils._use_triton = _use_triton
