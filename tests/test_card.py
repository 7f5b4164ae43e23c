"""The model card: rendered from the template, metadata that round-trips, a usage snippet that runs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from conftest import REPO, missing
from finsent.model_card.card import build_card
from finsent.space.classifier import LABELS, load_classifier
from finsent.train.data import UsageError


def test_card_metadata_round_trips_to_the_eval_results(evaluated):
    card = ModelCard(str(build_card(evaluated, "tester/finsent-tiny")))  # parse the rendered text back
    data = card.data.to_dict()
    assert data["library_name"] == "peft" and data["license"] == "cc-by-nc-sa-3.0"
    assert "base_model" not in data  # the tiny base is a local folder, not a Hub id (see check_hub_metadata)
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
    low, high = results["runs"]["fine_tuned"]["intervals"]["accuracy"]
    assert f"{accuracy:.3f} [{low:.3f}, {high:.3f}]" in text  # the body shows intervals; model-index keeps points
    assert f"{low * 100:.1f}–{high * 100:.1f} %" in text
    p = results["comparisons"]["fine_tuned vs base"]["mcnemar_p"]
    assert f"McNemar's exact test p = {p:.2g}" in text and "expected calibration error" in text


def test_the_card_shows_every_png_figure(evaluated):
    from finsent.eval.plots import find_browser

    if not find_browser():
        missing("no Chrome/Chromium here: evaluate.py wrote no PNG for the card to show")
    text = str(build_card(evaluated, "tester/finsent-tiny"))
    pngs = sorted((evaluated / "figures").glob("*.png"))
    assert len(pngs) == 7 and all(f"](figures/{png.name})" in text for png in pngs)


def test_usage_snippet_runs_and_agrees_with_the_scorer(evaluated):
    text = str(build_card(evaluated, str(evaluated)))  # repo_id = the local folder: no Hub needed here
    [snippet] = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    # the tiny run trained 4-bit: the snippet loads it so, on the CPU too, where it computes in float32 (as below)
    assert "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='nf4'" in snippet
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


def test_snippet_of_a_calibrated_adapter_trained_on_a_skewed_mix_scores_like_the_scorer(evaluated, tmp_path):
    from finsent.eval import evaluate as evaluate_script
    from finsent.space.adapter_info import read_info, write_info

    run = shutil.copytree(evaluated, tmp_path / "skewed")
    write_info(run, {**read_info(str(run)), "train_label_counts": {"negative": 10, "neutral": 60, "positive": 30},
                     "temperature": 1.7})
    assert evaluate_script.main(["--adapter", str(run), "--dtype", "float32", "--skip_base"]) == 0
    text = str(build_card(run, str(run)))
    assert "PRIOR_SHIFT = [" in text and "negative 10%, neutral 60%, positive 30%" in text
    assert "TEMPERATURE = 1.7" in text and "/ TEMPERATURE + torch.tensor(PRIOR_SHIFT)" in text
    [snippet] = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    # the tiny run trained 4-bit: the snippet loads it so, on the CPU too, where it computes in float32 (as below)
    assert "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='nf4'" in snippet
    namespace: dict = {}
    exec(compile(snippet.replace("print(classify", "result = (classify"), "card-snippet", "exec"), namespace)
    headline = re.search(r'classify\("(.*)"\)\)?\s*$', snippet.strip()).group(1)
    expected = load_classifier(namespace["base_id"], str(run), dtype="float32").classify([headline])[0]
    np.testing.assert_allclose([namespace["result"][k] for k in LABELS], [expected[k] for k in LABELS], atol=1e-4)


# The Hub's licence ids that could apply (huggingface/hub-docs, docs/hub/repositories-licenses.md)
HUB_LICENCES = {"apache-2.0", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0"}


def check_hub_metadata(card, base_on_hub: str | None, four_bit: bool) -> None:
    """The Hub's model card spec: base_model an id with its relation, peft, a listed licence, model-index keys."""
    data = card.data.to_dict()
    if base_on_hub:
        assert data["base_model"] == base_on_hub and data["base_model_relation"] == "adapter"
    else:  # a local folder is never written as base_model
        assert "base_model" not in data and "base_model_relation" not in data
    assert data["library_name"] == "peft" and data["pipeline_tag"] == "text-generation"
    assert ("qlora" in data["tags"]) == four_bit and "lora" in data["tags"]
    assert data["license"] in HUB_LICENCES
    for entry in data["model-index"]:
        for result in entry["results"]:
            assert result["task"]["type"] == "text-classification"
            assert result["dataset"]["type"] and result["dataset"]["name"]
            assert result["metrics"] and all(m["type"] and isinstance(m["value"], float) for m in result["metrics"])


def test_hub_metadata_of_a_4bit_run_on_a_local_base(evaluated):
    check_hub_metadata(build_card(evaluated, "tester/finsent-tiny"), base_on_hub=None, four_bit=True)


def test_hub_metadata_of_the_shipped_adapter():
    default = REPO / "space" / "default-adapter"
    check_hub_metadata(build_card(default, "space/default-adapter"), "HuggingFaceTB/SmolLM2-135M-Instruct",
                       four_bit=False)


def test_after_evaluation_the_run_folder_holds_finsents_card_only(evaluated):
    """TRL's and PEFT's automatic cards (base named by a cache path) never survive in a run folder."""
    assert (evaluated / "README.md").read_text() == str(build_card(evaluated, str(evaluated)))
    assert not list(evaluated.glob("checkpoint-*/README.md"))


def test_llama_cpp_section_of_a_phi_run_converts_the_base(evaluated, tmp_path):
    """A base other than the embedded SmolLM2 has no GGUF on the Hub: the card converts it, or serves merged."""
    from finsent.space import embedded
    from finsent.train import export_gguf

    run = shutil.copytree(evaluated, tmp_path / "run")
    assert "## Use with llama.cpp" not in str(build_card(run, "tester/finsent-tiny"))  # no adapter.gguf yet
    assert export_gguf.main([str(run), "--merged", "q8_0"]) == 0
    text = str(build_card(run, "tester/finsent-tiny"))
    base = json.loads((run / "adapter_config.json").read_text())["base_model_name_or_path"]  # a local folder
    converted = f"{Path(base).name}-f16.gguf"
    section = text.split("## Use with llama.cpp\n", 1)[1].split("\n## ", 1)[0]
    assert f"python llama.cpp/convert_hf_to_gguf.py {base} --outtype f16 --outfile {converted}\n" in section
    assert f"llama-server -m {converted} --lora adapter.gguf\n" in section
    assert "`llama-server -m merged-q8_0.gguf`" in section and "FROM ./merged-q8_0.gguf" in section
    assert "4-bit NF4" in section  # the tiny run trained on a 4-bit base; llama.cpp runs the f16 conversion
    assert embedded.GGUF_REPO not in text and embedded.GGUF_FILE not in section


def test_the_embedded_ggufs_origin_is_named_in_embedded_py_only():
    """GGUF_REPO, GGUF_FILE and GGUF_REVISION reach the card and push.py through finsent.space.embedded."""
    from finsent.space import embedded

    for path in [*(REPO / "model_card").iterdir(), REPO / "train" / "push.py"]:
        if path.is_file():
            source = path.read_text()
            for value in (embedded.GGUF_REPO, embedded.GGUF_FILE, embedded.GGUF_REVISION):
                assert value not in source, f"{path.name} hard-codes {value}"


@pytest.mark.parametrize(("capability", "expected"), [((7, 5), "float32"), ((8, 0), "bfloat16"), (None, "float32")])
def test_the_snippet_computes_a_bf16_run_in_bf16_only_where_the_gpu_has_it(evaluated, tmp_path, monkeypatch,
                                                                           capability, expected):
    """A T4 or V100 reader gets float32 compute, not emulated bf16 (space/precision.py decides so for the app)."""
    import torch

    from finsent.space.adapter_info import read_info, write_info

    run = shutil.copytree(evaluated, tmp_path / "bf16")  # as if trained where bf16 is native (an A100, or this CPU)
    info = read_info(str(run))
    write_info(run, {**info, "base_quantization": {**info["base_quantization"], "bnb_4bit_compute_dtype": "bfloat16"}})
    [snippet] = re.findall(r"```python\n(.*?)```", str(build_card(run, str(run))), flags=re.S)
    setup = snippet[snippet.index("cuda = torch.cuda.is_available()"):snippet.index("quantization = ")]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: capability is not None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    namespace: dict = {"torch": torch}
    exec(setup, namespace)
    assert namespace["compute"] == getattr(torch, expected)


def test_the_card_says_which_templated_rows_joined_the_training_rows(evaluated, tmp_path):
    from finsent.space.adapter_info import read_info, write_info
    from finsent.train import augment

    run = shutil.copytree(evaluated, tmp_path / "augmented")
    rows, record = augment.for_training(5, 0, {"test": pd.DataFrame(columns=["sentiment", "text"]),
                                               "eval": pd.DataFrame(columns=["sentiment", "text"])})
    write_info(run, {**read_info(str(run)), "augment": record})
    text = str(build_card(run, "tester/x"))
    assert f"joined by {len(rows)} templated headlines" in text and "`finsent train --augment 5`" in text
    assert ", ".join(record["capabilities"]).replace("_", " ") in text  # the behaviours they teach
    assert "templated headlines" not in str(build_card(evaluated, "tester/x"))


def test_the_card_shows_three_wrong_answers_of_the_suite_with_the_words_that_drove_them():
    from finsent.space.figures import wrong_answers

    def failing(text, probability, why=True):
        case = {"texts": [text], "template": "t", "expected": "positive", "predicted": "negative",
                "probability": probability}
        return {**case, "why": [{"word": "loss", "weight": 0.41}, {"word": "Oyj", "weight": -0.02}]} if why else case

    run = {"behaviour": {
        "a": {"failing": [failing("Kestrel's loss narrowed", 0.9), failing("Kestrel's loss shrank", 0.95)]},
        "b": {"failing": [failing("Norvale's loss narrowed", 0.7)]},
        "c": {"failing": [{"texts": ["x", "y"], "template": "t", "predicted": ["a", "b"]}]},  # INV: no why
        "d": {"failing": [failing("Ferrow's loss narrowed", 0.8, why=False), failing("Ferrow cut its debt", 0.6)]},
        "e": {"failing": [failing("Tundra's loss narrowed", 0.5)]},
    }}
    shown = wrong_answers(run)
    assert [w["text"] for w in shown] == ["Kestrel's loss narrowed", "Norvale's loss narrowed", "Ferrow cut its debt"]
    assert shown[0] == {"text": "Kestrel's loss narrowed", "predicted": "negative", "probability": 0.9,
                        "expected": "positive", "words": '"loss" +0.41, "Oyj" -0.02'}
    assert wrong_answers({}) == [] and wrong_answers({"behaviour": {"c": run["behaviour"]["c"]}}) == []


def test_the_card_says_which_corrections_and_which_adapter_a_continuation_learned_from(evaluated, tmp_path):
    from finsent.space.adapter_info import read_info, write_info

    run = shutil.copytree(evaluated, tmp_path / "continued")
    corrections = {"source": "user/finsent-corrections", "rows": 1234, "superseded": 2, "sha256": "c" * 64,
                   "counts": {"negative": 500, "neutral": 400, "positive": 334}}
    continued = {"source": "user/finsent-default", "weights_sha256": "d" * 64, "replay_rows": 400}
    write_info(run, {**read_info(str(run)), "corrections": corrections, "continued_from": continued})
    text = " ".join(str(build_card(run, "tester/x")).split())
    assert "It learned from 1,234 corrections that users of the finsent app made (500 negative, 400 neutral, " \
           "334 positive; read from `user/finsent-corrections`, sha256 `cccccccccccc…`; 2 older labels" in text
    assert "This adapter continues `user/finsent-default` (weights sha256 `dddddddddddd…`)" in text
    assert "with 400 rows of its own training rows replayed" in text
    plain = str(build_card(evaluated, "tester/x"))
    assert "corrections" not in plain and "continues" not in plain
