"""The precision decision (space/precision.py), case by case: the GPUs practitioners get, CPUs, ZeroGPU."""

from __future__ import annotations

import pytest
import torch

from finsent.space import precision
from finsent.space.classifier import default_dtype


@pytest.mark.parametrize(("gpu", "capability", "autocast", "compute", "serving"), [
    ("Tesla P100-PCIE-16GB", (6, 0), "fp16", "float32", "float32"),  # Kaggle's P100
    ("Tesla V100-SXM2-16GB", (7, 0), "fp16", "float32", "float32"),
    ("Tesla T4", (7, 5), "fp16", "float32", "float32"),  # Colab's free GPU, Kaggle's T4 x2
    ("NVIDIA A100-SXM4-40GB", (8, 0), "bf16", "bfloat16", "bfloat16"),
    ("NVIDIA H200", (9, 0), "bf16", "bfloat16", "bfloat16"),
])
def test_gpus_decide_by_compute_capability(gpu, capability, autocast, compute, serving):
    decided = precision.decide("cuda", gpu=gpu, capability=capability)
    assert (decided.autocast, decided.compute_dtype, decided.serving_dtype) == (autocast, compute, serving)
    assert decided.reason.startswith(f"{gpu} (sm {capability[0]}.{capability[1]}): ")


@pytest.mark.parametrize(("cpu_bf16", "expected"), [(True, "bf16"), (False, "fp32")])
def test_cpus_decide_by_their_own_bf16(cpu_bf16, expected):
    decided = precision.decide("cpu", cpu_bf16=cpu_bf16)
    assert decided.autocast == expected
    assert decided.serving_dtype == decided.compute_dtype == ("bfloat16" if cpu_bf16 else "float32")


def test_a_t4_is_not_taken_at_torchs_word(monkeypatch):
    """torch.cuda.is_bf16_supported() says True on a T4 (emulation counts); the capability decides."""
    monkeypatch.setattr(precision, "_on_zero_gpu", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: (7, 5))
    assert precision.this_machine("cuda").reason.startswith("Tesla T4 (sm 7.5): no native bf16")
    assert default_dtype("cuda") == "float32"


def test_zero_gpu_decides_for_its_h200(monkeypatch):
    monkeypatch.setattr(precision, "_on_zero_gpu", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: pytest.fail("no GPU at import"))
    assert precision.this_machine("cuda") == precision.decide("cuda", gpu="NVIDIA H200", capability=(9, 0))


def test_this_cpu_decides_as_onednn_reports(monkeypatch):
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert precision.this_machine("cpu") == precision.decide("cpu", cpu_bf16=native)
    assert default_dtype("cpu") == ("bfloat16" if native else "float32")
