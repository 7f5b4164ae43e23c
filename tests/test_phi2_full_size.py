"""train/bench_phi2.py: Phi-2's architecture with random weights through the phi2-qlora recipe and the scorer.

The default suite runs the script on a shrunken Phi (same code path, seconds); the full size
(2.78 B parameters, about 6 minutes and 16 GiB here) is opt-in: FINSENT_PHI2=1 pytest -m phi2.
"""

from __future__ import annotations

import json
import math
import os

import pytest

from finsent.space.precision import this_machine
from finsent.train import bench_phi2

SMALL = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 4}


def test_the_script_trains_and_scores_a_shrunken_phi(tiny_phi, tmp_path, monkeypatch):
    monkeypatch.setattr(bench_phi2, "PHI2", {**bench_phi2.PHI2, **SMALL})
    model_dir = tmp_path / "phi"
    bench_phi2.build_random_phi2(model_dir, str(tiny_phi))
    out = tmp_path / "bench.json"
    assert bench_phi2.main(["--model_dir", str(model_dir), "--steps", "2", "--headlines", "8", "--json", str(out),
                            "--precision", "auto", "fp16"]) == 0

    results = json.loads(out.read_text())
    train, score = results["train"], results["score"]
    # the recipe as written: r 64 on Phi-2's six linear layers, 4-bit base, batch 8, the CPU stand-in optimizer
    assert train["lora_targets"] == ["dense", "fc1", "fc2", "k_proj", "q_proj", "v_proj"]
    per_layer = 4 * 64 * (64 + 64) + 2 * 64 * (64 + 128)
    assert train["trainable_params"] == 2 * per_layer
    assert train["optimizer"] == "adamw_torch" and train["global_batch"] == 8 and train["steps"] == 2
    assert len(train["losses"]) == 2 and all(math.isfinite(loss) for loss in train["losses"])
    assert score["precision"].startswith("4-bit nf4") and score["headlines"] == 8
    # a T4's policy, forced here: fp16 autocast, float32 4-bit compute, attention in float32; the loss stays finite
    fp16 = results["train_fp16"]
    assert fp16["precision"] == "fp16" and "--dtype float32" in fp16["command"]
    assert fp16["loss_finite"] and len(fp16["losses"]) == 2


@pytest.mark.phi2
@pytest.mark.skipif(not os.environ.get("FINSENT_PHI2"), reason="opt-in (about 6 minutes, 16 GiB): FINSENT_PHI2=1")
def test_phi2_at_full_size(tmp_path):
    out = tmp_path / "bench.json"
    assert bench_phi2.main(["--steps", "2", "--headlines", "16", "--json", str(out)]) == 0

    results = json.loads(out.read_text())
    train, score = results["train"], results["score"]
    assert results["model"]["total_params"] == 2_779_683_840  # Phi-2's published size, 2.78 B
    assert train["trainable_params"] == 94_371_840  # r 64 on q k v dense fc1 fc2: 3.4 %
    assert train["base_weight_bytes"] < 2 * 2**30  # 4-bit: a bf16 copy would be 5.2 GiB
    assert all(math.isfinite(loss) for loss in train["losses"])
    assert score["precision"] == f"4-bit nf4 + double quant, {this_machine('cpu').compute_dtype} compute"
