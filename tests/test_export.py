"""train/export.py: a run becomes a self-contained adapter folder, evaluated as shipped, with its card."""

from __future__ import annotations

import json

from safetensors import safe_open

from finsent.space.adapter_info import read_info, weights_sha256
from finsent.space.classifier import load_classifier
from finsent.train import export as export_script


def test_export_ships_bf16_weights_results_and_card_but_no_text(trained, tmp_path):
    target = tmp_path / "space" / "default-adapter"
    assert export_script.main([str(trained), str(target), "--repo-id", "tester/finsent-tiny"]) == 0
    names = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
    assert {"adapter_model.safetensors", "adapter_config.json", "finsent.json", "training_config.yaml",
            "split/summary.json", "eval_results.json", "eval_report.md", "README.md"} <= names
    assert not any(name.endswith(".csv") or name.startswith("tokenizer") for name in names)  # no text, no tokenizer
    with safe_open(target / "adapter_model.safetensors", "pt") as weights:
        assert {str(weights.get_tensor(k).dtype) for k in weights.keys()} == {"torch.bfloat16"}
    results = json.loads((target / "eval_results.json").read_text())
    assert results["adapter_weights_sha256"] == weights_sha256(target)  # the results are of these weights
    assert results["adapter"] == str(target) and str(tmp_path / ".default") not in json.dumps(results)
    assert results["data_sha256"] == json.loads((trained / "split" / "summary.json").read_text())["sha256"]["test.csv"]
    assert "# tester/finsent-tiny" in (target / "README.md").read_text()
    assert read_info(str(target))["prompt_version"] == read_info(str(trained))["prompt_version"]
    assert load_classifier(read_info(str(target))["base_model"], str(target), dtype="float32").classify(["Kestrel up"])
    assert not list(target.parent.glob(".default-adapter-*"))  # no temporary folder left


def test_an_unfinished_run_is_refused_and_nothing_written(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert export_script.main([str(tmp_path / "run"), str(tmp_path / "out")]) == 2
    assert "not a finished training run" in capsys.readouterr().err and not (tmp_path / "out").exists()
