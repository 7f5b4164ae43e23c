"""Which precision the hardware computes natively, decided in one place.

bf16 is native on CUDA GPUs of compute capability 8.0 and up (Ampere: A100, A10G, L4, H100, H200) and on
CPUs with AVX-512 BF16 or AMX. `torch.cuda.is_bf16_supported()` is not the test: current torch answers
True on a T4 (sm 7.5), counting software emulation (pytorch#148322), so a T4 or V100 would compute
emulated bf16, slowly. Colab's free T4, Kaggle's T4 x2 and P100, and the V100 decide here:
- training autocast: bf16 where native, else fp16 on CUDA and fp32 on a CPU;
- the 4-bit compute dtype: bf16 where native, else float32 (QLoRA's author for GPUs without bf16,
  artidoro/qlora#71);
- serving: bf16 where native, else float32 (Phi-2's attention overflows in fp16, its model card says).

ZeroGPU Spaces run on H200s (sm 9.0) and show no GPU at import, so a ZeroGPU Space decides for an H200.
"""

from __future__ import annotations

from dataclasses import dataclass

ZERO_GPU = ("NVIDIA H200", (9, 0))  # what a ZeroGPU Space's requests run on


@dataclass(frozen=True)
class Precision:
    autocast: str  # training's mixed precision: "bf16", "fp16" or "fp32" (none)
    compute_dtype: str  # bitsandbytes' 4-bit compute dtype
    serving_dtype: str  # the dtype a full-precision model is served in
    reason: str  # for the log's first lines, e.g. "Tesla T4 (sm 7.5): no native bf16; ..."


def decide(device: str, *, gpu: str = "", capability: tuple[int, int] | None = None,
           cpu_bf16: bool = False) -> Precision:
    """The precision for `device` ("cuda" or "cpu") from the hardware's own facts: a pure function, table-tested."""
    if device.startswith("cuda"):
        major, minor = capability or (0, 0)
        where = f"{gpu or 'GPU'} (sm {major}.{minor})"
        if (major, minor) >= (8, 0):
            return Precision("bf16", "bfloat16", "bfloat16", f"{where}: native bf16")
        return Precision("fp16", "float32", "float32",
                         f"{where}: no native bf16; fp16 autocast, 4-bit compute float32, serving float32")
    if cpu_bf16:
        return Precision("bf16", "bfloat16", "bfloat16", "CPU with AVX-512 BF16 or AMX: native bf16")
    return Precision("fp32", "float32", "float32", "CPU without AVX-512 BF16 or AMX: float32 (bf16 is emulated)")


def this_machine(device: str) -> Precision:
    """decide() for this machine's `device`, asking torch (and, in a ZeroGPU Space, assuming its H200)."""
    import torch

    if device.startswith("cuda"):
        if _on_zero_gpu():
            gpu, capability = ZERO_GPU
        else:
            index = torch.device(device).index or 0
            gpu, capability = torch.cuda.get_device_name(index), torch.cuda.get_device_capability(index)
        return decide(device, gpu=gpu, capability=tuple(capability))
    try:
        cpu_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        cpu_bf16 = False
    return decide(device, cpu_bf16=cpu_bf16)


def _on_zero_gpu() -> bool:
    try:
        import spaces
    except ImportError:
        return False
    return bool(spaces.config.Config.zero_gpu)
