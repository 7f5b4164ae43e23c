"""eval/difficulty.py: agreement levels of test and pool, accuracy per level on each side, the reweighting."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import SAMPLE_HEADLINES
from finsent.eval import difficulty
from finsent.space.classifier import LABELS
from finsent.train.data import SplitSizes, read_labelled, split_dataset, split_digests
from finsent.train.sweep import pool_with_folds

TEST_SIZE, FOLDS = 10, 3


def level_of(index: int) -> int:
    """The fixture's agreement level of the index-th sample headline: 50, 66, 75, 100 in turn."""
    return (50, 66, 75, 100)[index % 4]


@pytest.fixture
def setup(tmp_path):
    """Agreement files, a sweep and an evaluation over the sample headlines: the fold models are
    wrong at the 50 % level only, the adapter at 50 and 66 %."""
    data = read_labelled(str(SAMPLE_HEADLINES))
    level = {text: level_of(i) for i, text in enumerate(data["text"])}
    for name, floor in difficulty.LEVELS.items():
        rows = [f"{text}@{label}" for text, label in zip(data["text"], data["sentiment"], strict=True) if level[text] >= floor]
        (tmp_path / f"Sentences_{name}.txt").write_text("\n".join(rows + (["1"] if floor == 100 else [])) + "\n")
    wrong = {label: LABELS[(i + 1) % 3] for i, label in enumerate(LABELS)}

    def guess(texts, labels, bad_levels):
        return [wrong[label] if level[text] in bad_levels else label for text, label in zip(texts, labels, strict=True)]

    pool = pool_with_folds(str(SAMPLE_HEADLINES), FOLDS, TEST_SIZE, 42)
    with (tmp_path / "results.jsonl").open("w") as sink:
        for fold in range(FOLDS):
            rows = pool[pool["fold"] == fold]
            predicted = guess(rows["text"], rows["sentiment"], {50})
            probs = [[0.8 if label == p else 0.1 for label in LABELS] for p in predicted]
            sink.write(json.dumps({"trial": "t", "fold": fold, "train_seconds": 1.0, "steps": 1, "probs": probs,
                                   "train_label_counts": dict.fromkeys(LABELS, 5),  # equal: no shift
                                   "truth": rows["sentiment"].tolist()}) + "\n")
    splits, _ = split_dataset(data, SplitSizes(train=None, test=TEST_SIZE, eval=0), seed=42)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "eval_results.json").write_text(json.dumps({
        "split": "test", "data_sha256": split_digests(splits)["test.csv"],
        "runs": {"fine_tuned": {"predictions": guess(splits["test"]["text"], splits["test"]["sentiment"], {50, 66})}}}))
    args = ["--data_file", str(SAMPLE_HEADLINES), "--agreement_dir", str(tmp_path), "--sweep", str(tmp_path / "results.jsonl"),
            "--trial", "t", "--adapter", str(adapter), "--folds", str(FOLDS), "--test_size", str(TEST_SIZE)]
    return tmp_path, args, splits["test"], level


def test_levels_shares_and_accuracies_per_side(setup, capsys):
    tmp_path, args, test, level = setup
    assert difficulty.main(args) == 0
    out = capsys.readouterr().out
    pool = pool_with_folds(str(SAMPLE_HEADLINES), FOLDS, TEST_SIZE, 42)
    for label in LABELS:
        levels = np.asarray([level[text] for text in test[test["sentiment"] == label]["text"]])
        pool_levels = np.asarray([level[text] for text in pool[pool["sentiment"] == label]["text"]])
        for value, test_accuracy, pool_accuracy in ((50, 0, 0), (66, 0, 1), (75, 1, 1), (100, 1, 1)):
            assert (f"| {label} | {value} % | {np.mean(levels == value):.3f} | {np.mean(pool_levels == value):.3f} | "
                    f"{np.sum(levels == value)} | {np.sum(pool_levels == value)} | {test_accuracy:.3f} | {pool_accuracy:.3f} |") in out
        # test: right at 75 and 100 %; pool: right but at 50 %, so at the test's levels right but for its 50 % share
        assert (f"| {label} | {np.mean(levels >= 75):.3f} | {np.mean(pool_levels >= 66):.3f} | "
                f"{1 - np.mean(levels == 50):.3f} |") in out
    assert "TF-IDF baseline, balanced accuracy:" in out
    folder = [str(tmp_path) if arg.endswith("results.jsonl") else arg for arg in args]  # the sweep's --out folder
    assert difficulty.main(folder) == 0 and capsys.readouterr().out == out


def test_a_sweep_of_other_rows_or_another_split_is_one_line(setup, capsys):
    tmp_path, args, _, _ = setup
    other = ["--test_size", "12"]  # another test split: neither the evaluation nor the sweep's rows fit
    assert difficulty.main(args + other) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --adapter") and "not of this test split" in err and len(err.splitlines()) == 1
    assert difficulty.main(["nope" if arg == "t" else arg for arg in args]) == 2
    assert "trial 'nope' has folds []" in capsys.readouterr().err
    results = tmp_path / "adapter" / "eval_results.json"
    results.write_text(json.dumps({**json.loads(results.read_text()), "runs": {"base": {}}}))
    assert difficulty.main(args) == 2
    assert "has no fine-tuned run" in capsys.readouterr().err
    results.unlink()
    assert difficulty.main(args) == 2
    assert "no eval_results.json; evaluate it" in capsys.readouterr().err
    (tmp_path / "Sentences_75Agree.txt").unlink()
    assert difficulty.main(args) == 2
    assert "Sentences_75Agree.txt: give --agreement_dir" in capsys.readouterr().err


def test_near_duplicates_are_counted_against_each_sides_training_rows():
    pool = pd.DataFrame({"sentiment": ["negative", "negative", "neutral", "positive"], "fold": [0, 1, 0, 1],
                         "text": ["Acme cuts 40 jobs at its plant", "Acme cuts 40 jobs at its plant today",
                                  "Brill Oy holds its annual meeting", "Corvo sales rise sharply"]})
    test = pd.DataFrame({"sentiment": ["neutral", "positive", "negative"],
                         "text": ["Brill Oy holds its annual meeting", "Dunmore wins a big order", "Eskel shares slump"]})
    near = difficulty.near_duplicates(test, pool)
    # test: only the neutral repeats a pool row; pool: each negative's twin is in the other fold, the
    # neutral's twin is in test, which no fold model trains on
    assert near == {"negative": (0.0, 1.0), "neutral": (1.0, 0.0), "positive": (0.0, 0.0)}
