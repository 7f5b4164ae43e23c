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
    reason: str  # the hardware fact behind it, for the log's first line: "Tesla T4 (sm 7.5): no native bf16"

    @property
    def native_bf16(self) -> bool:
        return self.autocast == "bf16"


def decide(device: str, *, gpu: str = "", capability: tuple[int, int] | None = None,
           cpu_bf16: bool = False) -> Precision:
    """The precision for `device` ("cuda" or "cpu") from the hardware's own facts: a pure function, table-tested."""
    if device.startswith("cuda"):
        major, minor = capability or (0, 0)
        where = f"{gpu or 'GPU'} (sm {major}.{minor})"
        if (major, minor) >= (8, 0):
            return Precision("bf16", "bfloat16", "bfloat16", f"{where}: native bf16")
        return Precision("fp16", "float32", "float32", f"{where}: no native bf16")
    if cpu_bf16:
        return Precision("bf16", "bfloat16", "bfloat16", "CPU with AVX-512 BF16 or AMX: native bf16")
    return Precision("fp32", "float32", "float32", "CPU without AVX-512 BF16 or AMX: no native bf16")


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
