"""Which precision the hardware computes natively, decided in one place.

bf16 is native on CUDA GPUs of compute capability 8.0 and up (Ampere: A100, A10G, L4, H100, H200) and on
CPUs with AVX-512 BF16 or AMX. `torch.cuda.is_bf16_supported()` is not the test: current torch answers
True on a T4 (sm 7.5), counting software emulation (pytorch#148322), so a T4 or V100 would compute
emulated bf16, slowly. Nor is `torch.ops.mkldnn._is_mkldnn_bf16_supported()` on a CPU: it says True on
AVX-512 CPUs without BF16 (Skylake to Ice Lake Xeons), where bf16 runs no faster than fp32 (BENCHMARKS.md,
"CPU precision"). A CPU decides by its own flags (`torch.cpu`'s AVX-512 BF16 and AMX checks), capped by
ONEDNN_MAX_CPU_ISA where that is set, as oneDNN caps itself. Colab's free T4, Kaggle's T4 x2 and P100, and the V100 decide here:
- training autocast: bf16 where native, else fp16 on CUDA and fp32 on a CPU;
- the 4-bit compute dtype: bf16 where native, else float32 (QLoRA's author for GPUs without bf16,
  artidoro/qlora#71);
- serving: bf16 where native, else float32 (Phi-2's attention overflows in fp16, its model card says).

ZeroGPU Spaces run on H200s (sm 9.0) and show no GPU at import, so a ZeroGPU Space decides for an H200.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ZERO_GPU = ("NVIDIA H200", (9, 0))  # what a ZeroGPU Space's requests run on
# oneDNN's ISA levels, lowest first, as ONEDNN_MAX_CPU_ISA names them (oneDNN's "CPU dispatcher control"); it computes
# bf16 natively from AVX512_CORE_BF16 up
ONEDNN_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
               "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512", "AVX512_CORE_AMX", "AVX10_1_512_AMX",
               "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "ALL", "DEFAULT")


@dataclass(frozen=True)
class Precision:
    autocast: str  # training's mixed precision: "bf16", "fp16" or "fp32" (none)
    compute_dtype: str  # bitsandbytes' 4-bit compute dtype
    serving_dtype: str  # the dtype a full-precision model is served in
    reason: str  # the hardware fact behind it, for the log's first line: "Tesla T4 (sm 7.5): no native bf16"

    @property
    def native_bf16(self) -> bool:
        return self.autocast == "bf16"


def decide(device: str, *, gpu: str = "", capability: tuple[int, int] | None = None,
           cpu_bf16: bool = False, isa_cap: str | None = None) -> Precision:
    """The precision for `device` ("cuda" or "cpu") from the hardware's own facts: a pure function, table-tested.
    `cpu_bf16`: the CPU has AVX-512 BF16 or AMX; `isa_cap`: ONEDNN_MAX_CPU_ISA, where set."""
    if device.startswith("cuda"):
        major, minor = capability or (0, 0)
        where = f"{gpu or 'GPU'} (sm {major}.{minor})"
        if (major, minor) >= (8, 0):
            return Precision("bf16", "bfloat16", "bfloat16", f"{where}: native bf16")
        return Precision("fp16", "float32", "float32", f"{where}: no native bf16")
    if cpu_bf16 and not isa_allows_bf16(isa_cap):
        return Precision("fp32", "float32", "float32", f"CPU capped at {isa_cap} (ONEDNN_MAX_CPU_ISA): no native bf16")
    if cpu_bf16:
        return Precision("bf16", "bfloat16", "bfloat16", "CPU with AVX-512 BF16 or AMX: native bf16")
    return Precision("fp32", "float32", "float32", "CPU without AVX-512 BF16 or AMX: no native bf16")


def isa_allows_bf16(isa_cap: str | None) -> bool:
    """Whether oneDNN, capped at `isa_cap` (ONEDNN_MAX_CPU_ISA; None or unknown: no cap), may use bf16 instructions."""
    cap = (isa_cap or "").strip().upper()
    if cap not in ONEDNN_ISAS:  # unset, or a name oneDNN ignores
        return True
    return ONEDNN_ISAS.index(cap) >= ONEDNN_ISAS.index("AVX512_CORE_BF16")


def compute_dtype(recorded: str | None, machine: Precision) -> str:
    """The 4-bit compute dtype to serve a run in: as it trained, unless that is bf16 and `machine` only emulates it."""
    if recorded == "bfloat16" and not machine.native_bf16:
        return machine.compute_dtype
    return recorded or machine.compute_dtype


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
        cpu_bf16 = bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # a torch without these checks: no claim of native bf16
        cpu_bf16 = False
    return decide(device, cpu_bf16=cpu_bf16, isa_cap=os.environ.get("ONEDNN_MAX_CPU_ISA"))


def _on_zero_gpu() -> bool:
    try:
        import spaces
    except ImportError:
        return False
    return bool(spaces.config.Config.zero_gpu)


# Phi-2's attention overflows fp16 (its model card; transformers#28163: NaN logits; mlc-llm#1870: Q and K
# in the hundreds, so q.k passes fp16's 65,504). transformers 5.24 upcasts only the softmax:
# models/phi/modeling_phi.py:139 multiplies query by key in the model's dtype and :143 softmaxes in
# float32, too late, since the product is already inf. Wherever a model computes in fp16 (autocast on
# a T4, V100 or P100, or --dtype float16), attention runs through this function instead.
FP16_SAFE_ATTENTION = "sdpa_fp32_scores"


def fp16_safe_attention() -> str:
    """Register (again: it is idempotent) and name the attention that computes query.key, softmax and the weighted
    values in float32."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    def sdpa_fp32_scores(module, query, key, value, attention_mask, *args, **kwargs):
        import torch

        dtype = query.dtype
        if attention_mask is not None and attention_mask.is_floating_point():
            attention_mask = attention_mask.float()
        with torch.autocast(query.device.type, enabled=False):  # autocast would take the product back to fp16
            output, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(),
                                                     attention_mask, *args, **kwargs)
        return output.to(dtype), weights

    AttentionInterface.register(FP16_SAFE_ATTENTION, sdpa_fp32_scores)
    ALL_MASK_ATTENTION_FUNCTIONS.register(FP16_SAFE_ATTENTION, sdpa_mask)  # the same masks as sdpa
    return FP16_SAFE_ATTENTION
