"""train/sweep.py: folds over the rows outside test, capped training sets, out-of-fold scores, a whole sweep."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import SAMPLE_HEADLINES
from finsent.space.classifier import LABELS
from finsent.train import sweep
from finsent.train.data import SplitSizes, read_labelled, split_dataset


def test_folds_cover_the_rows_outside_test_once_each_balanced_per_label():
    pool = sweep.pool_with_folds(str(SAMPLE_HEADLINES), folds=3, test_size=10, seed=42)
    splits, _ = split_dataset(read_labelled(str(SAMPLE_HEADLINES)), SplitSizes(train=None, test=10, eval=0), seed=42)
    assert not set(pool["text"]) & set(splits["test"]["text"])  # the test rows never enter a fold
    assert len(pool) == len(splits["train"]) and pool["text"].is_unique and set(pool["fold"]) == {0, 1, 2}
    sizes = pool.groupby(["sentiment", "fold"]).size().unstack()
    assert (sizes.max(axis=1) - sizes.min(axis=1) <= 1).all()  # every label spread evenly over the folds
    again = sweep.pool_with_folds(str(SAMPLE_HEADLINES), folds=3, test_size=10, seed=42)
    pd.testing.assert_frame_equal(pool, again)  # seeded


def test_capped_takes_at_most_the_cap_per_label():
    rows = pd.DataFrame({"sentiment": ["negative"] * 3 + ["neutral"] * 8 + ["positive"] * 5, "text": list("abcdefghijklmnop")})
    counts = lambda df: df["sentiment"].value_counts().to_dict()  # noqa: E731
    assert counts(sweep.capped(rows, "min", seed=0)) == dict.fromkeys(LABELS, 3)
    assert counts(sweep.capped(rows, 4, seed=0)) == {"negative": 3, "neutral": 4, "positive": 4}
    assert counts(sweep.capped(rows, None, seed=0)) == counts(rows)
    assert sweep.capped(rows, 4, seed=0).equals(sweep.capped(rows, 4, seed=0))


def test_scores_decide_as_trained_at_equal_priors_and_after_temperature_scaling():
    # Two folds; trained on 1:2:1, so the equal-prior shift adds log(4/3) to negative and positive,
    # log(2/3) to neutral. Row 1 (true negative) is neutral as trained, negative once shifted.
    line = {"train_seconds": 1.0, "train_label_counts": {"negative": 1, "neutral": 2, "positive": 1}}
    lines = [{**line, "fold": 0, "truth": ["negative", "neutral"], "probs": [[0.45, 0.55, 0.0], [0.1, 0.8, 0.1]]},
             {**line, "fold": 1, "truth": ["positive", "positive"], "probs": [[0.1, 0.2, 0.7], [0.0, 0.9, 0.1]]}]
    result = sweep.scores(lines)
    assert result["folds"] == 2 and result["rows"] == 4
    # the temperature minimises the negative log-likelihood of softmax(log p / T) over every fold's rows
    truth = [LABELS.index(t) for line in lines for t in line["truth"]]
    log_p = np.log(np.clip([p for line in lines for p in line["probs"]], 1e-12, None))

    def nll(t):
        scaled = log_p / t
        return -(scaled[np.arange(len(truth)), truth] - np.log(np.exp(scaled).sum(axis=1))).sum()

    t = result["temperature"]
    assert nll(t) <= min(nll(t * 1.05), nll(t / 1.05)) and nll(t) < nll(1.0)
    assert result["train"]["accuracy"] == 0.5  # rows 2 and 3 right
    assert result["balanced"]["accuracy"] == 0.75  # row 1 too
    assert result["balanced"]["balanced_accuracy"] == pytest.approx(np.mean([1.0, 1.0, 0.5]))
    # per fold, over the labels each holds: fold 0 both right, fold 1 one of its two positives
    assert result["balanced"]["per_fold"] == {0: 1.0, 1: 0.5}
    assert result["train"]["per_fold"] == {0: 0.5, 1: 0.5}


def test_a_sweep_trains_each_fold_scores_it_and_resumes(tiny_phi, tmp_path, capsys):
    trials = tmp_path / "trials.yaml"
    trials.write_text(yaml.safe_dump([{
        "name": "tiny", "config": "cpu-embedded", "cap": "min",
        "args": {"model_name_or_path": str(tiny_phi), "max_steps": 1, "per_device_train_batch_size": 4,
                 "load_in_4bit": False, "dtype": "float32"},
    }]))
    out = tmp_path / "sweep"
    argv = ["--data_file", str(SAMPLE_HEADLINES), "--trials", str(trials), "--out", str(out),
            "--folds", "2", "--test_size", "10", "--workers", "2", "--behaviour_cases", "2"]
    assert sweep.main([*argv, "--only_folds", "1"]) == 0  # a one-fold probe first
    assert [json.loads(x)["fold"] for x in (out / "results.jsonl").read_text().splitlines()] == [1]
    capsys.readouterr()
    assert sweep.main(argv) == 0  # then the rest: only fold 0 is left to run
    assert "; 1 jobs" in capsys.readouterr().out
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    pool = sweep.pool_with_folds(str(SAMPLE_HEADLINES), folds=2, test_size=10, seed=42)
    assert sorted(line["fold"] for line in lines) == [0, 1]
    for line in lines:
        fold = pool[pool["fold"] == line["fold"]]
        assert line["truth"] == fold["sentiment"].tolist()  # every row of its fold, scored once
        assert np.allclose(np.sum(line["probs"], axis=1), 1, atol=1e-5)
        trained_on = pd.read_csv(out / "jobs" / f"tiny-fold{line['fold']}" / "train.csv")
        assert not set(trained_on["text"]) & set(fold["text"])  # never trained on what it scores
        assert line["train_label_counts"] == dict.fromkeys(LABELS, 20)  # cap min: 20 per label of the other fold
    [row] = json.loads((out / "summary.json").read_text())
    assert row["trial"] == "tiny" and row["rows"] == len(pool)
    assert row["behaviour"]["folds"] == 2 and row["behaviour"]["cases"] == 2  # each fold's model met the suite
    capsys.readouterr()
    assert sweep.main(argv) == 0  # a rerun skips the jobs already done
    assert "; 0 jobs" in capsys.readouterr().out
    assert len((out / "results.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize(
    "content, extra, message",
    [
        (None, [], "no such file; give a YAML list of trials"),
        ("name: min\n", [], "expected a YAML list of mappings"),
        ("- name: a b\n", [], "trial name 'a b' must be unique"),
        ("- name: a\n- name: a\n", [], "trial name 'a' must be unique"),
        ("- name: a\n  cap: lots\n", [], "trial a: cap 'lots'; give a number of rows per label or min"),
        ("- name: a\n  args: [1]\n", [], "trial a: args must be a mapping"),
        ("- name: a\n", ["--only", "b"], "--only b: no such trial"),
        ("- name: a\n", ["--folds", "1"], "--folds 1: give 2 or more"),
        ("- name: a\n", ["--only_folds", "1", "4"], "--only_folds 4: folds are 0 to 3"),
        ("- name: a\n", ["--summary"], "no results.jsonl yet; run the sweep first"),
        ("- name: a\n", ["--behaviour_cases", "-1"], "--behaviour_cases -1: give 0 (none) or more"),
        ("- name: a\n", ["--resemblance", "0"], "--resemblance 0: give the --augment N"),
    ],
)
def test_a_bad_trials_file_or_flag_is_one_line_and_runs_nothing(tmp_path, capsys, content, extra, message):
    trials = tmp_path / "trials.yaml"
    if content is not None:
        trials.write_text(content)
    argv = ["--data_file", str(SAMPLE_HEADLINES), "--trials", str(trials), "--out", str(tmp_path / "out"), *extra]
    assert sweep.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("error: ") and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_preparing_a_job_again_clears_the_earlier_try(tmp_path):
    pool = sweep.pool_with_folds(str(SAMPLE_HEADLINES), folds=2, test_size=10, seed=42)
    folder = tmp_path / "job"
    (folder / "run").mkdir(parents=True)
    (folder / "result.json").write_text("{}")  # a stale result must never be recorded for a failed retry
    sweep.prepare(pool, {"name": "t", "cap": "min"}, 0, folder, [])
    assert not (folder / "run").exists() and not (folder / "result.json").exists()
    assert json.loads((folder / "job.json").read_text())["fold"] == 0
