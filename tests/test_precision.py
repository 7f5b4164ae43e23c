"""The precision decision (space/precision.py), case by case: the GPUs practitioners get, CPUs, ZeroGPU;
training's flags and refusals; Phi-2's fp16 attention overflow and its guard."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import yaml

from conftest import REPO
from finsent.space import precision
from finsent.space.classifier import default_dtype
from finsent.train import train as train_script
from finsent.train.data import UsageError
from finsent.train.modeling import autocast_flags, quantized_compute_dtype


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


@pytest.mark.parametrize(("avx512_bf16", "amx", "cap", "expected"), [
    (True, False, None, "bf16"),  # an AVX-512 BF16 EPYC
    (False, True, None, "bf16"),  # an AMX Xeon
    (False, False, None, "fp32"),  # Skylake to Ice Lake Xeons, where oneDNN's own check says True
    (True, True, "AVX512_CORE", "fp32"),  # capped below bf16, as ONEDNN_MAX_CPU_ISA imitates those Xeons
    (True, False, "avx2", "fp32"),  # any case, as oneDNN reads it
    (True, True, "AVX512_CORE_BF16", "bf16"),
    (True, True, "AVX512_CORE_AMX", "bf16"),
    (True, False, "ALL", "bf16"),
    (True, False, "NOT_AN_ISA", "bf16"),  # a name oneDNN ignores caps nothing
])
def test_this_cpu_decides_by_its_own_flags_and_the_isa_cap(monkeypatch, avx512_bf16, amx, cap, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)  # not asked: it says True on AVX-512
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    decided = precision.this_machine("cpu")
    assert decided.autocast == expected and default_dtype("cpu") == ("bfloat16" if expected == "bf16" else "float32")
    if cap and expected == "fp32":
        assert decided.reason == f"CPU capped at {cap} (ONEDNN_MAX_CPU_ISA): no native bf16"


@pytest.mark.parametrize("cap", ["AVX2", "AVX512_CORE"])
def test_a_cpu_capped_below_bf16_serves_in_float32_whatever_the_hardware(cap):
    """On this very machine, in a fresh process as a user would set it: the cap decides, not oneDNN's own check."""
    code = "from finsent.space.precision import this_machine; print(this_machine('cpu').serving_dtype)"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "ONEDNN_MAX_CPU_ISA": cap},
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "float32"


# --- training: the recipes' `precision: auto`, flags, refusals (train/modeling.py, train/train.py) ---

T4 = precision.decide("cuda", gpu="Tesla T4", capability=(7, 5))
H200 = precision.decide("cuda", gpu="NVIDIA H200", capability=(9, 0))
OLD_CPU = precision.decide("cpu", cpu_bf16=False)
BF16_CPU = precision.decide("cpu", cpu_bf16=True)


@pytest.mark.parametrize(("machine", "setting", "bf16", "fp16", "expected"), [
    (T4, "auto", None, False, "fp16"),
    (H200, "auto", None, False, "bf16"),
    (OLD_CPU, "auto", None, False, "fp32"),
    (BF16_CPU, "auto", None, False, "bf16"),
    (H200, "auto", False, False, "fp32"),  # --bf16 false: no autocast
    (H200, "auto", None, True, "fp16"),  # --fp16 true wins
    (T4, "fp32", None, False, "fp32"),
    (H200, "fp16", None, False, "fp16"),
])
def test_autocast_follows_the_hardware_unless_told(machine, setting, bf16, fp16, expected):
    flags = autocast_flags(setting, bf16, fp16, machine)
    assert flags == {"bf16": expected == "bf16", "fp16": expected == "fp16"}


@pytest.mark.parametrize(("machine", "setting", "bf16", "named"), [
    (T4, "auto", True, "--bf16 true: Tesla T4 (sm 7.5): no native bf16"),
    (OLD_CPU, "auto", True, "--bf16 true: CPU without AVX-512 BF16 or AMX: no native bf16"),
    (T4, "bf16", None, "--precision bf16: Tesla T4 (sm 7.5)"),
])
def test_bf16_where_it_would_be_emulated_is_refused_naming_the_hardware_and_the_fix(machine, setting, bf16, named):
    with pytest.raises(UsageError) as refused:
        autocast_flags(setting, bf16, False, machine)
    assert str(refused.value).startswith(named)
    assert f"--precision auto trains in {machine.autocast} here" in str(refused.value)


def test_unknown_or_doubled_precision_is_refused():
    with pytest.raises(UsageError, match="choose one of auto, bf16, fp16, fp32"):
        autocast_flags("half", None, False, H200)
    with pytest.raises(UsageError, match="give one of them"):
        autocast_flags("fp16", True, False, H200)


@pytest.mark.parametrize(("machine", "dtype", "expected"), [
    (T4, "auto", "float32"), (T4, None, "float32"), (H200, "auto", "bfloat16"), (T4, "float16", "float16"),
    (OLD_CPU, "auto", "float32"), (BF16_CPU, "bfloat16", "bfloat16"),
])
def test_the_4bit_compute_dtype(machine, dtype, expected):
    assert quantized_compute_dtype(dtype, machine) == expected


def test_4bit_compute_in_bf16_on_a_t4_is_refused():
    with pytest.raises(UsageError, match=r"^--dtype bfloat16: Tesla T4 \(sm 7.5\).*pass --dtype auto \(float32 here\)"):
        quantized_compute_dtype("bfloat16", T4)


@pytest.mark.parametrize(("machine", "line", "autocast", "compute"), [
    (T4, "Tesla T4 (sm 7.5): no native bf16; fp16 autocast, 4-bit compute float32, attention in float32",
     "fp16", "float32"),
    (H200, "NVIDIA H200 (sm 9.0): native bf16; bf16 autocast, 4-bit compute bfloat16", "bf16", "bfloat16"),
])
def test_the_phi2_recipe_on_a_t4_and_an_h200(monkeypatch, machine, line, autocast, compute):
    monkeypatch.setattr(train_script, "this_machine", lambda device: machine)
    _, model, training = train_script.parse(["--config", "phi2-qlora", "--data_file", "x.csv", "--output_dir", "/tmp/x"])
    settled = train_script.settle_precision(model, training)
    assert settled["line"] == line
    assert (settled["autocast"], settled["compute_dtype"], model.dtype) == (autocast, compute, compute)
    assert (training.bf16, training.fp16) == (autocast == "bf16", autocast == "fp16")


def test_bf16_on_a_t4_stops_train_with_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(train_script, "this_machine", lambda device: T4)
    code = train_script.main(["--config", "phi2-qlora", "--data_file", "x.csv", "--output_dir", str(tmp_path / "run"),
                              "--bf16", "true"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Tesla T4 (sm 7.5)" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_every_recipe_says_auto():
    for recipe in (REPO / "train" / "configs").glob("*.yaml"):
        config = yaml.safe_load(recipe.read_text())
        assert config["precision"] == "auto" and "bf16" not in config and "fp16" not in config, recipe.name


# --- Phi-2's fp16 attention overflow, and the guard ---

def overflowing_phi():
    """A tiny random Phi whose query.key products pass fp16's 65,504 (q and k in the hundreds, as mlc-llm#1870 saw)."""
    from transformers import PhiConfig, PhiForCausalLM

    torch.manual_seed(0)
    model = PhiForCausalLM(PhiConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=4, max_position_embeddings=128))
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(1000)
            layer.self_attn.k_proj.weight.mul_(1000)
    return model.eval()


@pytest.mark.parametrize("how", ["half", "autocast"])
def test_phi_in_fp16_overflows_without_the_guard_and_matches_fp32_with_it(how):
    model = overflowing_phi()
    ids = torch.randint(0, 300, (2, 24), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0  # left padding, as the scorer batches
    with torch.no_grad():
        reference = model(ids, attention_mask=mask).logits
        q = model.model.layers[0].self_attn.q_proj(model.model.layers[0].input_layernorm(model.model.embed_tokens(ids)))
        assert q.abs().max() > 100  # the regime the issue reports

        def fp16_logits(attention: str):
            model.set_attn_implementation(attention)
            if how == "half":
                return model.half()(ids, attention_mask=mask).logits.float()
            with torch.autocast("cpu", dtype=torch.float16):  # training's fp16 autocast, fp32 weights
                return model(ids, attention_mask=mask).logits.float()

        unguarded = fp16_logits("eager")  # transformers' Phi code: q.k in fp16, only the softmax upcast
        model.float()
        guarded = fp16_logits(precision.fp16_safe_attention())
    assert not torch.isfinite(unguarded).all()
    assert torch.isfinite(guarded).all()
    valid = mask.bool()  # padded positions attend to nothing and are never read
    torch.testing.assert_close(guarded[valid], reference[valid], atol=5e-3, rtol=1e-2)


def test_serving_in_fp16_uses_the_guard(tiny_phi):
    from finsent.space.classifier import load_classifier

    classifier = load_classifier(str(tiny_phi), dtype="float16", device="cpu", load_in_4bit="false")
    assert classifier.model.config._attn_implementation == precision.FP16_SAFE_ATTENTION
    assert load_classifier(str(tiny_phi), dtype="float32", device="cpu",
                           load_in_4bit="false").model.config._attn_implementation != precision.FP16_SAFE_ATTENTION


@pytest.mark.parametrize(("recorded", "machine", "expected"), [
    ("bfloat16", T4, "float32"), ("bfloat16", H200, "bfloat16"), ("float32", H200, "float32"),
    (None, T4, "float32"), (None, H200, "bfloat16"), ("bfloat16", OLD_CPU, "float32"),
])
def test_a_4bit_run_serves_as_trained_unless_bf16_would_be_emulated(recorded, machine, expected):
    assert precision.compute_dtype(recorded, machine) == expected
