"""The model card: rendered from the template, metadata that round-trips, a usage snippet that runs."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from finsent.model_card.card import build_card
from finsent.space.classifier import LABELS, load_classifier
from finsent.train.data import UsageError


def test_card_metadata_round_trips_to_the_eval_results(evaluated):
    card = ModelCard(str(build_card(evaluated, "tester/finsent-tiny")))  # parse the rendered text back
    data = card.data.to_dict()
    assert data["library_name"] == "peft" and data["license"] == "cc-by-nc-sa-3.0"
    assert data["base_model"] == str(json.loads((evaluated / "adapter_config.json").read_text())
                                     ["base_model_name_or_path"])
    assert {"finance", "sentiment-analysis", "lora", "qlora"} <= set(data["tags"])

    name, results = model_index_to_eval_results(data["model-index"])
    assert name == "tester/finsent-tiny"
    metrics = json.loads((evaluated / "eval_results.json").read_text())["runs"]["fine_tuned"]["metrics"]
    expected = {("Accuracy", None): metrics["accuracy"], ("Macro F1", None): metrics["macro"]["f1"]}
    for label in LABELS:
        expected[(f"Accuracy ({label})", label)] = metrics["per_label"][label]["accuracy"]
        expected[(f"F1 ({label})", label)] = metrics["per_label"][label]["f1"]
    got = {(r.metric_name, (r.metric_args or {}).get("label")): r.metric_value for r in results}
    assert got == expected
    assert all(r.task_type == "text-classification" and r.dataset_split == "test" for r in results)


def test_card_body_holds_results_prompt_figures_and_licence(evaluated):
    text = str(build_card(evaluated, "tester/finsent-tiny"))
    results = json.loads((evaluated / "eval_results.json").read_text())
    accuracy = results["runs"]["fine_tuned"]["metrics"]["accuracy"]
    assert f"{accuracy:.3f}" in text and "Base model (zero-shot)" in text and "TF-IDF" in text
    assert "[{text}] =" in text and "CC BY-NC-SA 3.0" in text and "malo2014good" in text
    for png in (evaluated / "figures").glob("*.png"):
        assert f"](figures/{png.name})" in text


def test_usage_snippet_runs_and_agrees_with_the_scorer(evaluated):
    text = str(build_card(evaluated, str(evaluated)))  # repo_id = the local folder: no Hub needed here
    [snippet] = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    # the tiny run trained 4-bit: the snippet loads it so, on the CPU too (computed in fp32 here, as below)
    assert "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='nf4'" in snippet
    snippet = snippet.replace("bfloat16", "float32")
    namespace: dict = {}
    exec(compile(snippet.replace("print(classify", "result = (classify"), "card-snippet", "exec"), namespace)
    probs = namespace["result"]
    headline = re.search(r'classify\("(.*)"\)\)?\s*$', snippet.strip()).group(1)
    expected = load_classifier(namespace["base_id"], str(evaluated), dtype="float32").classify([headline])[0]
    np.testing.assert_allclose([probs[k] for k in LABELS], [expected[k] for k in LABELS], atol=1e-4)


def test_an_unevaluated_run_gets_a_clear_error(trained, tmp_path):
    run = shutil.copytree(trained, tmp_path / "run")
    (run / "eval_results.json").unlink(missing_ok=True)  # other tests may have evaluated the shared run
    with pytest.raises(UsageError, match=r"eval_results.json missing\); run eval/evaluate.py --adapter"):
        build_card(run, "tester/x")


def test_snippet_of_an_adapter_trained_on_a_skewed_mix_shifts_its_scores_like_the_scorer(evaluated, tmp_path):
    from finsent.eval import evaluate as evaluate_script
    from finsent.space.adapter_info import read_info, write_info

    run = shutil.copytree(evaluated, tmp_path / "skewed")
    write_info(run, {**read_info(str(run)), "train_label_counts": {"negative": 10, "neutral": 60, "positive": 30}})
    assert evaluate_script.main(["--adapter", str(run), "--dtype", "float32", "--skip_base"]) == 0
    text = str(build_card(run, str(run)))
    assert "PRIOR_SHIFT = [" in text and "negative 10%, neutral 60%, positive 30%" in text
    [snippet] = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    # the tiny run trained 4-bit: the snippet loads it so, on the CPU too (computed in fp32 here, as below)
    assert "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='nf4'" in snippet
    snippet = snippet.replace("bfloat16", "float32")
    namespace: dict = {}
    exec(compile(snippet.replace("print(classify", "result = (classify"), "card-snippet", "exec"), namespace)
    headline = re.search(r'classify\("(.*)"\)\)?\s*$', snippet.strip()).group(1)
    expected = load_classifier(namespace["base_id"], str(run), dtype="float32").classify([headline])[0]
    np.testing.assert_allclose([namespace["result"][k] for k in LABELS], [expected[k] for k in LABELS], atol=1e-4)
