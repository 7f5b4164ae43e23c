"""train/export.py: a run becomes a self-contained adapter folder, evaluated as shipped, with its card."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
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
    assert results["adapter"] == str(target)
    for name in ("eval_results.json", "eval_report.md", "README.md"):  # export's temporary folder is never named
        assert ".default-adapter-" not in (target / name).read_text(), name
    assert results["data_sha256"] == json.loads((trained / "split" / "summary.json").read_text())["sha256"]["test.csv"]
    assert "# tester/finsent-tiny" in (target / "README.md").read_text()
    assert read_info(str(target))["prompt_version"] == read_info(str(trained))["prompt_version"]
    # the shipped weights score as the run's own, up to their bf16 rounding; the adapter itself moves them much more
    texts = ["Kestrel Oyj raises its forecast", "Norvale Group cuts 200 jobs", "Ferrow Bank reports on 2 May"]
    base = read_info(str(target))["base_model"]
    exported = load_classifier(base, str(target), dtype="float32").predict_proba(texts)
    source = load_classifier(base, str(trained), dtype="float32").predict_proba(texts)
    alone = load_classifier(base, None, load_in_4bit=True, dtype="float32").predict_proba(texts)
    np.testing.assert_allclose(exported, source, atol=2e-3)
    assert np.abs(source - alone).max() > 0.02
    # no sentence of the test split in any file the folder ships (the README promises it)
    test_texts = pd.read_csv(trained / "split" / "test.csv")["text"].tolist()
    for path in target.rglob("*"):
        if path.is_file() and path.suffix not in (".safetensors", ".png"):
            content = path.read_text(errors="replace")
            assert not [text for text in test_texts if text in content], path
    assert not list(target.parent.glob(".default-adapter-*"))  # no temporary folder left


def test_an_unfinished_run_is_refused_and_nothing_written(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert export_script.main([str(tmp_path / "run"), str(tmp_path / "out")]) == 2
    assert "not a finished training run" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_failed_export_leaves_the_target_as_it_was(trained, tmp_path, monkeypatch):
    """The README's promise: everything is written beside the target and renamed into place at the end."""
    import pytest

    from finsent.eval import evaluate

    target = tmp_path / "adapter"
    target.mkdir()
    (target / "keep.txt").write_text("the earlier export")

    def fail(args):
        raise RuntimeError("evaluation broke half-way")

    monkeypatch.setattr(evaluate, "evaluate", fail)
    with pytest.raises(RuntimeError, match="half-way"):
        export_script.main([str(trained), str(target)])
    assert [p.name for p in target.iterdir()] == ["keep.txt"] and (target / "keep.txt").read_text() == "the earlier export"
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]  # no temporary folder left beside it
