"""eval/evaluate.py end to end on the tiny random Phi: before and after, both modes, bad inputs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, SAMPLE_HEADLINES, missing
from finsent.eval import evaluate as evaluate_script
from finsent.eval import uncertainty
from finsent.eval.generate import generate_labels, parse_label
from finsent.eval.metrics import INVALID
from finsent.eval.plots import find_browser
from finsent.space.adapter_info import read_info
from finsent.space.classifier import LABELS, build_prompt, load_classifier
from finsent.train.data import read_labelled


@pytest.mark.parametrize("text, label", [
    (" positive", "positive"),
    (" Negative.\n", "negative"),
    ("neutral, not positive", "neutral"),  # the first label named wins
    (" it is positive", "positive"),
    (" positively", INVALID),  # whole words only
    (" The answer", INVALID),
    ("", INVALID),
])
def test_parse_label(text, label):
    assert parse_label(text) == label


FIGURES = ("per_class_base", "per_class_fine_tuned", "confusion_base", "confusion_fine_tuned", "before_after",
           "reliability_base", "reliability_fine_tuned")
GENERATE_HEADLINES = ["Kestrel sales up", "Norvale cuts jobs", "Ferrow Bank reports", "Tundra wins an order"]


def reference_generation(classifier, texts):
    """Greedy text after each prompt, one headline at a time, without the pipeline: the label parsed from it."""
    import torch

    model, tokenizer, labels = classifier.model, classifier.tokenizer, []
    for text in texts:
        ids = tokenizer(build_prompt(text), return_tensors="pt").input_ids.to(classifier.device)
        with torch.inference_mode():
            out = model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        labels.append(parse_label(tokenizer.decode(out[0, ids.shape[1]:])))
    return labels


def test_generate_mode_parses_what_the_model_writes_and_keeps_invalid_answers(tiny_phi):
    classifier = load_classifier(str(tiny_phi), dtype="float32")
    labels = generate_labels(classifier.model, classifier.tokenizer, GENERATE_HEADLINES, max_new_tokens=3,
                             batch_size=1)
    assert labels == reference_generation(classifier, GENERATE_HEADLINES)
    assert INVALID in labels  # the random model names no label for some: kept as invalid, never mapped


def test_before_and_after_on_the_runs_own_test_split(trained, tmp_path):
    trained = Path(shutil.copytree(trained, tmp_path / "trained-model"))  # the session's run stays untouched
    (trained / "eval_results.json").unlink(missing_ok=True)
    assert evaluate_script.main(["--adapter", str(trained), "--dtype", "float32"]) == 0

    results = json.loads((trained / "eval_results.json").read_text())
    assert set(results["runs"]) == {"base", "fine_tuned", "baseline"}
    assert results["rows"] == 30 and results["split"] == "test" and results["mode"] == "score"
    assert results["data_file"] == str(trained / "split" / "test.csv") and len(results["data_sha256"]) == 64
    for run in results["runs"].values():
        assert run["metrics"]["n"] == 30 and run["metrics"]["invalid"] == 0
    assert results["runs"]["fine_tuned"]["adapter"] == str(trained)
    # the reported accuracy is that of the adapter's own predictions on the run's test rows, scored apart here
    test = pd.read_csv(trained / "split" / "test.csv")
    classifier = load_classifier(results["base_model"], str(trained), dtype="float32")
    probabilities = classifier.predict_proba(test["text"].tolist())
    predicted = [LABELS[i] for i in probabilities.argmax(axis=1)]
    expected = sum(p == t for p, t in zip(predicted, test["sentiment"], strict=True)) / len(test)
    assert results["runs"]["fine_tuned"]["metrics"]["accuracy"] == pytest.approx(expected)
    # a 4-bit run is evaluated on its 4-bit base, on the CPU too, and the base alone loads the same way
    recorded = json.loads((trained / "finsent.json").read_text())["base_quantization"]
    for name in ("base", "fine_tuned"):
        assert results["runs"][name]["quantization"] == {**recorded, "bnb_4bit_compute_dtype": "float32"}
        assert results["runs"][name]["precision"] == "4-bit nf4 + double quant, float32 compute"

    # every number with its uncertainty: seeded bootstrap intervals around the point, paired comparisons, calibration
    for name, run in results["runs"].items():
        low, high = run["intervals"]["accuracy"]
        assert low <= run["metrics"]["accuracy"] <= high and run["intervals"]["samples"] == uncertainty.SAMPLES, name
    assert set(results["comparisons"]) == {"fine_tuned vs base", "fine_tuned vs baseline"}
    versus = results["comparisons"]["fine_tuned vs base"]
    assert versus["interval"][0] <= versus["accuracy_difference"] <= versus["interval"][1]
    # McNemar's p and the ECE recomputed from the recorded predictions and from the adapter's own probabilities
    truth = test["sentiment"].tolist()
    tuned, base = (results["runs"][name]["predictions"] for name in ("fine_tuned", "base"))
    assert tuned == predicted
    only_tuned = sum(t == a != b for t, a, b in zip(truth, tuned, base, strict=True))
    only_base = sum(t == b != a for t, a, b in zip(truth, tuned, base, strict=True))
    assert (versus["only_a_right"], versus["only_b_right"]) == (only_tuned, only_base)
    assert versus["mcnemar_p"] == pytest.approx(uncertainty.mcnemar_exact(only_tuned, only_base))
    ece = uncertainty.calibration(truth, probabilities)["ece"]
    assert results["runs"]["fine_tuned"]["calibration"]["ece"] == pytest.approx(ece, abs=1e-6)
    assert results["runs"]["baseline"].get("calibration") is None

    report = (trained / "eval_report.md").read_text()
    assert "Fine-tuned (base + adapter)" in report and "Base model (zero-shot)" in report and "TF-IDF" in report
    assert "## Paired comparisons" in report and "## Calibration" in report and "percentile bootstrap" in report
    low, high = results["runs"]["fine_tuned"]["intervals"]["accuracy"]
    assert f"[{low:.3f}, {high:.3f}]" in report
    for name in FIGURES:
        html = (trained / "figures" / f"{name}.html").read_text()
        assert '"type":"bar"' in html or '"type":"heatmap"' in html

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    [event_dir] = {p.parent for p in (trained / "runs").rglob("events.out.tfevents.*")}
    events = EventAccumulator(str(event_dir))
    events.Reload()
    [accuracy] = events.Scalars("test/accuracy")
    assert accuracy.step == 2 and accuracy.value == pytest.approx(results["runs"]["fine_tuned"]["metrics"]["accuracy"])
    assert {f"test/accuracy_{label}" for label in LABELS} <= set(events.Tags()["scalars"])


def test_every_figure_is_also_a_png(evaluated):
    if not find_browser():
        missing("no Chrome/Chromium here: PNG export is not tested (evaluate.py writes HTML only)")
    for name in FIGURES:
        assert (evaluated / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_base_model_alone_in_generate_mode_counts_invalid_answers(tiny_phi, tmp_path):
    out = tmp_path / "base"
    argv = ["--base_model", str(tiny_phi), "--data_file", str(SAMPLE_HEADLINES), "--output_dir", str(out),
            "--mode", "generate", "--max_rows", "12", "--batch_size", "4", "--dtype", "float32"]
    assert evaluate_script.main(argv) == 0
    results = json.loads((out / "eval_results.json").read_text())
    assert set(results["runs"]) == {"base"}  # no train split beside the file: no baseline
    metrics = results["runs"]["base"]["metrics"]
    rows = read_labelled(str(SAMPLE_HEADLINES)).head(12)
    labels = reference_generation(load_classifier(str(tiny_phi), dtype="float32"), rows["text"].tolist())
    assert metrics["n"] == 12 and metrics["invalid"] == labels.count(INVALID) > 0  # produced, then counted
    assert metrics["accuracy"] == pytest.approx(sum(p == t for p, t in zip(labels, rows["sentiment"], strict=True)) / 12)
    assert metrics["confusion_matrix"]["predicted"][-1] == INVALID


@pytest.mark.parametrize("make_argv, message", [
    (lambda d, tmp: ["--base_model", str(tmp / "nowhere"), "--data_file", str(SAMPLE_HEADLINES),
                     "--output_dir", str(tmp / "o")], "cannot load it"),
    (lambda d, tmp: ["--data_file", str(SAMPLE_HEADLINES)], "no model: pass --adapter"),
    (lambda d, tmp: ["--adapter", str(tmp / "incomplete")], "not a complete adapter folder"),
    (lambda d, tmp: ["--adapter", "someone/no-such-adapter"], "--adapter someone/no-such-adapter: no such folder"),
    (lambda d, tmp: ["--adapter", str(d), "--data_file", str(tmp / "wrong-columns.csv"),
                     "--output_dir", str(tmp / "o")], "no header naming 'sentiment' and 'text' columns"),
    (lambda d, tmp: ["--adapter", str(d), "--data_file", str(tmp / "bad-label.csv"),
                     "--output_dir", str(tmp / "o")], "unknown label 'bullish'"),
])
def test_bad_input_is_one_line(trained, tmp_path, capsys, local_hub, make_argv, message):  # a Hub that answers: no retries
    (tmp_path / "incomplete").mkdir()
    (tmp_path / "incomplete" / "adapter_config.json").write_text("{}")
    (tmp_path / "wrong-columns.csv").write_text("headline,score\nKestrel sales up,1\n")
    (tmp_path / "bad-label.csv").write_text("sentiment,text\nbullish,Kestrel sales up\n")
    assert evaluate_script.main(make_argv(trained, tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_help_runs():
    out = subprocess.run([sys.executable, "eval/evaluate.py", "--help"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and "--adapter" in out.stdout and "--mode" in out.stdout


def test_other_views_label_mix_and_texts_not_trained_on(evaluated, tmp_path):
    import pandas as pd

    split = evaluated / "split"
    mixed = pd.concat([pd.read_csv(split / "test.csv"), pd.read_csv(split / "train.csv")])
    mixed.to_csv(tmp_path / "mixed.csv", index=False)
    out = tmp_path / "views"
    argv = ["--adapter", str(evaluated), "--data_file", str(tmp_path / "mixed.csv"), "--exclude_training_texts",
            "--label_mix", "negative=0.125,neutral=0.6,positive=0.275", "--skip_base", "--train_file", "none",
            "--output_dir", str(out), "--dtype", "float32"]
    assert evaluate_script.main(argv) == 0
    results = json.loads((out / "eval_results.json").read_text())
    assert results["rows"] == 30 and results["excluded_training_texts"] == 60  # the 60 training rows left out
    metrics = results["runs"]["fine_tuned"]["metrics"]
    assert metrics["label_mix"] == pytest.approx({"negative": 0.125, "neutral": 0.6, "positive": 0.275})
    recall = {label: metrics["per_label"][label]["recall"] for label in LABELS}
    assert metrics["accuracy"] == pytest.approx(0.125 * recall["negative"] + 0.6 * recall["neutral"]
                                                + 0.275 * recall["positive"])
    assert results["runs"]["fine_tuned"]["label_prior"] == "label mix"  # decided for that mix too
    assert results["adapter_weights_sha256"] and "label mix of negative 12.5%" in (out / "eval_report.md").read_text()


def test_a_bad_label_prior_is_one_line(evaluated, capsys):
    assert evaluate_script.main(["--adapter", str(evaluated), "--label_prior", "neutral=2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --label_prior 'neutral=2': give balanced, train") and err.count("\n") == 1


def test_validate_scores_every_checkpoint_on_the_eval_split_under_both_priors(trained, tmp_path, capsys):
    from finsent.eval import validate

    assert validate.main([str(trained), "--json", str(tmp_path / "val.json")]) == 0
    rows = json.loads((tmp_path / "val.json").read_text())
    assert [(row["adapter"], row["label_prior"]) for row in rows] == [
        (str(trained / "checkpoint-2"), "train"), (str(trained / "checkpoint-2"), "balanced"),
        (str(trained), "train"), (str(trained), "balanced")]
    assert all(set(row["recall"]) == set(LABELS) for row in rows)
    # one checkpoint's accuracy recomputed apart: the classifier at its own (balanced) prior on the eval split
    split = pd.read_csv(trained / "split" / "eval.csv")
    probs = load_classifier(read_info(str(trained))["base_model"], str(trained / "checkpoint-2"),
                            label_prior="balanced").predict_proba(split["text"].tolist())
    right = [LABELS[i] == t for i, t in zip(probs.argmax(axis=1), split["sentiment"], strict=True)]
    assert rows[1]["accuracy"] == pytest.approx(sum(right) / len(right))
    assert "(n=12)" in capsys.readouterr().out  # 4 eval rows per label
    assert validate.main([str(tmp_path)]) == 2  # not a run folder: one line
    no_eval = Path(shutil.copytree(trained, tmp_path / "no-eval"))
    (no_eval / "split" / "eval.csv").write_text("sentiment,text\n")  # as --eval_size 0 writes it
    capsys.readouterr()
    assert validate.main([str(no_eval)]) == 2
    assert "its split has no validation rows (trained with --eval_size 0)" in capsys.readouterr().err


def test_compare_two_evaluations_of_the_same_test_file(trained, evaluated, tmp_path, capsys):
    run = Path(shutil.copytree(trained, tmp_path / "again"))
    (run / "eval_results.json").unlink(missing_ok=True)
    assert evaluate_script.main(["--adapter", str(run), "--dtype", "float32", "--compare", str(evaluated)]) == 0
    results = json.loads((run / "eval_results.json").read_text())
    ours = results["runs"]["fine_tuned"]["predictions"]
    theirs = json.loads((evaluated / "eval_results.json").read_text())["runs"]["fine_tuned"]["predictions"]
    assert len(ours) == results["rows"] == 30 and set(ours) <= set(LABELS)
    right = [p == t for p, t in zip(ours, pd.read_csv(run / "split" / "test.csv")["sentiment"], strict=True)]
    assert sum(right) / 30 == pytest.approx(results["runs"]["fine_tuned"]["metrics"]["accuracy"])  # in row order
    # the same adapter, settings and rows: the same predictions, so nothing differs and McNemar says p = 1
    paired = results["comparisons"][f"fine_tuned vs {evaluated}"]
    assert ours == theirs and paired["only_a_right"] == paired["only_b_right"] == 0 and paired["mcnemar_p"] == 1.0
    assert paired["accuracy_difference"] == 0
    assert f"fine-tuned vs `{evaluated}`" in (run / "eval_report.md").read_text()

    other = tmp_path / "other.json"
    other.write_text(json.dumps({"data_sha256": "0" * 64, "rows": 30, "data_file": "elsewhere.csv", "runs": {}}))
    assert evaluate_script.main(["--adapter", str(run), "--compare", str(other), "--output_dir", str(tmp_path / "o")]) == 2
    assert "evaluated on other rows" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_the_report_lists_the_most_confident_mistakes_with_their_text(evaluated):
    from finsent.eval.report import TEXTS_BEGIN, TEXTS_END, without_texts

    report = (evaluated / "eval_report.md").read_text()
    section = report[report.index(TEXTS_BEGIN):report.index(TEXTS_END)]
    test = pd.read_csv(evaluated / "split" / "test.csv")
    truth = dict(zip(test["text"], test["sentiment"], strict=True))
    for label in LABELS:
        block = section.split(f"### True label: {label}")[1].split("###")[0]
        rows = [line.split(" | ") for line in block.splitlines() if line.startswith("| ") and "---" not in line][1:]
        probabilities = [float(row[2]) for row in rows]
        assert probabilities == sorted(probabilities, reverse=True) and len(rows) <= 10
        for row in rows:  # a real test headline of this label, answered wrongly, and the words that drove it
            text, predicted, driven = row[0].removeprefix("| "), row[1], row[3].rstrip(" |")
            assert truth[text] == label and predicted != label and predicted in LABELS
            words = re.findall(r'"([^"]+)" ([+-]\d\.\d\d)', driven)
            assert len(words) <= 3 and all(word in text and float(w) >= 0.005 for word, w in words)
            assert [float(w) for _, w in words] == sorted((float(w) for _, w in words), reverse=True)
    assert any(text in section for text in test["text"])
    assert re.search(r'\| "[^"]+" \+0\.\d\d', section)  # some answer was driven by a word the report names
    assert not any(text in without_texts(report) for text in test["text"])  # what push.py uploads by default


def test_temperature_label_prior_shares_and_no_error_examples_are_honoured_and_recorded(tiny_phi, tmp_path):
    from conftest import tiny_args
    from finsent.train import train as train_script

    run = tmp_path / "run"
    assert train_script.main(tiny_args(tiny_phi, run, "--temperature", "2.5")) == 0
    assert read_info(str(run))["temperature"] == 2.5  # train.py records it in finsent.json
    shares = "negative=1,neutral=2,positive=1"
    assert evaluate_script.main(["--adapter", str(run), "--dtype", "float32", "--skip_base",
                                 "--label_prior", shares, "--error_examples", "0"]) == 0
    tuned = json.loads((run / "eval_results.json").read_text())["runs"]["fine_tuned"]
    assert tuned["temperature"] == 2.5 and tuned["label_prior"] == shares
    test = pd.read_csv(run / "split" / "test.csv")
    classifier = load_classifier(str(tiny_phi), str(run), dtype="float32",
                                 label_prior={"negative": 1.0, "neutral": 2.0, "positive": 1.0})
    assert classifier.temperature == 2.5
    assert tuned["predictions"] == [LABELS[i] for i in classifier.predict_proba(test["text"].tolist()).argmax(axis=1)]
    assert "Most confident mistakes" not in (run / "eval_report.md").read_text()  # --error_examples 0: none
    # --label_prior train: decided for the training mix, as learned: no shift, and none recorded
    assert evaluate_script.main(["--adapter", str(run), "--dtype", "float32", "--skip_base", "--label_prior", "train",
                                 "--output_dir", str(tmp_path / "train-prior")]) == 0
    as_trained = json.loads((tmp_path / "train-prior" / "eval_results.json").read_text())["runs"]["fine_tuned"]
    plain = load_classifier(str(tiny_phi), str(run), dtype="float32", label_prior="train")
    assert plain.log_prior_shift is None and as_trained["label_prior"] is None
    assert as_trained["predictions"] == [LABELS[i] for i in plain.predict_proba(test["text"].tolist()).argmax(axis=1)]


def test_allow_other_base_is_the_only_way_onto_other_weights(trained, tmp_path, capsys):
    from finsent.train.tiny_model import save_tiny_phi

    other = save_tiny_phi(tmp_path / "other-phi", seed=1)  # the same architecture, other weights
    capsys.readouterr()  # (saving it drew a progress bar)
    argv = ["--adapter", str(trained), "--base_model", str(other), "--skip_base", "--dtype", "float32",
            "--output_dir", str(tmp_path / "out")]
    assert evaluate_script.main(argv) == 2
    err = capsys.readouterr().err
    assert "--allow_other_base" in err and err.count("\n") == 1 and not (tmp_path / "out" / "eval_results.json").exists()
    assert evaluate_script.main([*argv, "--allow_other_base"]) == 0
    results = json.loads((tmp_path / "out" / "eval_results.json").read_text())
    assert results["runs"]["fine_tuned"]["model"] == str(other)


def test_reuse_keeps_the_scored_runs_and_adds_only_what_they_lack(trained, tmp_path, monkeypatch, capsys):
    """--reuse: a second evaluation into the same folder keeps the first one's base and fine-tuned runs as recorded
    (no model is scored again) and adds the run it lacked, here the TF-IDF baseline, paired with the kept runs."""
    out = tmp_path / "out"
    argv = ["--adapter", str(trained), "--output_dir", str(out), "--dtype", "float32", "--error_examples", "0"]
    assert evaluate_script.main([*argv, "--train_file", "none"]) == 0
    first = json.loads((out / "eval_results.json").read_text())
    assert set(first["runs"]) == {"base", "fine_tuned"}

    def no_scoring(*args, **kwargs):
        raise AssertionError("a kept run was scored again")

    monkeypatch.setattr(evaluate_script, "predict_run", no_scoring)
    assert evaluate_script.main([*argv, "--reuse"]) == 0
    again = json.loads((out / "eval_results.json").read_text())
    assert list(again["runs"]) == ["base", "fine_tuned", "baseline"]
    for name in ("base", "fine_tuned"):
        assert again["runs"][name] == first["runs"][name]
    assert again["reused"] == {"runs": ["base", "fine_tuned"], "created": first["created"]}
    truth = pd.read_csv(trained / "split" / "test.csv")["sentiment"].tolist()
    assert again["comparisons"]["fine_tuned vs baseline"] == uncertainty.compare(
        truth, first["runs"]["fine_tuned"]["predictions"], again["runs"]["baseline"]["predictions"])
    assert "TF-IDF + logistic regression" in (out / "eval_report.md").read_text()

    # what the kept runs were not scored with is refused in one line, and the folder is left as it was
    before = (out / "eval_results.json").read_bytes()
    capsys.readouterr()
    assert evaluate_script.main([*argv, "--reuse", "--behaviour", "--behaviour_cases", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--reuse" in err and "behaviour suite (--behaviour and its flags)" in err, err
    assert (out / "eval_results.json").read_bytes() == before
    assert evaluate_script.main([*argv, "--reuse", "--output_dir", str(tmp_path / "empty")]) == 2
    assert "evaluate without --reuse first" in capsys.readouterr().err
