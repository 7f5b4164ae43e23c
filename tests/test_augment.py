"""train/augment.py and `--augment`: templated training rows, drawn the same every time, apart from the behaviour
suite's test templates, refused where one is a test case, added to the training rows only, recorded, and swept."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import SAMPLE_HEADLINES, tiny_args
from finsent.eval import behaviour_cases
from finsent.eval.behaviour import draw_suite
from finsent.space.classifier import LABELS
from finsent.train import augment, augment_templates, sweep
from finsent.train import train as train_script
from finsent.train.data import SplitSizes, UsageError, read_labelled, split_dataset, split_digests, text_key

CAPABILITIES = list(augment_templates.CAPABILITIES)


def test_the_same_seed_draws_the_same_rows_and_a_larger_number_adds_rows():
    rows = augment.draw_rows(40)
    pd.testing.assert_frame_equal(rows, augment.draw_rows(40))
    assert not rows.equals(augment.draw_rows(40, seed=1))
    assert rows["capability"].value_counts().to_dict() == dict.fromkeys(CAPABILITIES, 40)
    assert set(rows["sentiment"]) == set(LABELS) and rows["text"].map(text_key).is_unique
    names = augment_templates.COMPANIES + augment_templates.BANKS
    assert all(any(name in text for name in names) and "{" not in text for text in rows["text"])
    more = augment.draw_rows(100)
    for name in CAPABILITIES:  # nested: each capability's 40 rows are the first 40 of its 100
        assert rows[rows["capability"] == name]["text"].tolist() == more[more["capability"] == name]["text"].tolist()[:40]
    assert augment.draw_rows(0).empty


def test_every_capability_makes_the_most_rows_allowed():
    rows = augment.draw_rows(augment.MAX_PER_CAPABILITY)
    assert len(rows) == augment.MAX_PER_CAPABILITY * len(CAPABILITIES)


@pytest.mark.parametrize("n", [-1, augment.MAX_PER_CAPABILITY + 1])
def test_a_bad_number_of_rows_is_a_usage_error(n):
    with pytest.raises(UsageError, match=rf"--augment {n}: give 0 \(no templated rows\) or a number"):
        augment.draw_rows(n)


def canonical(frame: str) -> str:
    """A frame with its slots unnamed, as compared across the two template files."""
    return re.sub(r"\{\w+\}", "{}", frame).casefold()


def test_the_training_templates_share_no_name_frame_or_phrase_with_the_test_templates():
    test_names = behaviour_cases.COMPANIES + behaviour_cases.BANKS
    train_names = augment_templates.COMPANIES + augment_templates.BANKS
    assert not set(test_names) & set(train_names)
    assert not {n.split()[0] for n in test_names} & {n.split()[0] for n in train_names}  # nor their stems
    test_frames = [text for capability in behaviour_cases.CAPABILITIES for f in capability.frames
                   for text in ((f.a, f.b) if hasattr(f, "a") else (f.text,))]
    train_frames = [text for frames in augment_templates.CAPABILITIES.values() for text, _ in frames]
    assert not {canonical(f) for f in test_frames} & {canonical(f) for f in train_frames}
    # Every phrase of the training word lists is absent, as a whole phrase, from the test templates and their lists;
    # month names alone may be shared (augment_templates' docstring says what may overlap, and why).
    test_text = "\n".join(test_frames + [v for values in behaviour_cases.WORDS.values() for v in values]
                          + list(behaviour_cases.RATIOS)).casefold()
    phrases = [v for slot, values in augment_templates.WORDS.items() if slot != "month" for v in values]
    shared = [p for p in phrases + list(augment_templates.RATIOS) if re.search(rf"\b{re.escape(p.casefold())}\b", test_text)]
    assert not shared


def test_no_templated_row_is_a_behaviour_test_case_in_any_draw():
    keys = set(augment.draw_rows(augment.MAX_PER_CAPABILITY)["text"].map(text_key))
    assert not keys & augment.suite_keys()
    assert not keys & {text_key(t) for case in draw_suite(1000, seed=7) for t in case.texts}


def splits_of_sample():
    return split_dataset(read_labelled(str(SAMPLE_HEADLINES)), SplitSizes(train=20, test=10, eval=4))[0]


def test_a_templated_row_that_is_a_test_case_or_a_test_row_is_refused():
    splits = splits_of_sample()
    case = draw_suite()[0].texts[0]
    leaked = pd.DataFrame({"sentiment": ["positive"], "text": [f"  {case.upper()} "], "capability": ["x"]})
    with pytest.raises(UsageError, match=r"1 templated training row\(s\) are behaviour test cases"):
        augment.check_leakage(leaked, splits, 1)  # found after text_key: case and spaces differ
    test_row = pd.DataFrame({"sentiment": ["neutral"], "text": [splits["test"]["text"].iloc[0]], "capability": ["x"]})
    with pytest.raises(UsageError, match="are rows of the test or eval split"):
        augment.check_leakage(test_row, splits, 1)
    augment.check_leakage(augment.draw_rows(20), splits, 20)  # the real templates pass


def test_augment_adds_the_rows_to_training_only_and_records_them(tiny_phi, tmp_path):
    out = tmp_path / "run"
    trainer = train_script.train(*train_script.parse(tiny_args(tiny_phi, out, "--augment", "5", "--max_steps", "1")))
    splits = splits_of_sample()
    templated = augment.draw_rows(5)
    assert len(trainer.train_dataset) == len(splits["train"]) + 5 * len(CAPABILITIES)
    summary = json.loads((out / "split" / "summary.json").read_text())
    assert summary["sha256"] == split_digests(splits)  # the split, its files and digests: the data's alone
    for side in ("train", "eval", "test"):
        written = pd.read_csv(out / "split" / f"{side}.csv")
        assert not set(written["text"].map(text_key)) & set(templated["text"].map(text_key)), side
    record = summary["augment"]
    assert record["rows_per_capability"] == 5 and record["rows"] == 5 * len(CAPABILITIES) and record["seed"] == 0
    assert record["counts"] == {label: int((templated["sentiment"] == label).sum()) for label in LABELS}
    assert record["capabilities"] == CAPABILITIES
    info = json.loads((out / "finsent.json").read_text())
    assert info["augment"] == record  # what the adapter was trained on, with it
    assert info["train_label_counts"] == {label: summary["counts"]["train"][label] + record["counts"][label]
                                          for label in LABELS}
    config = yaml.safe_load((out / train_script.RESOLVED_CONFIG).read_text())
    assert (config["script"]["augment"], config["script"]["augment_seed"]) == (5, 0)


def test_without_augment_nothing_is_added(trained):
    assert json.loads((trained / "split" / "summary.json").read_text())["augment"] is None
    assert json.loads((trained / "finsent.json").read_text())["augment"] is None


@pytest.mark.parametrize("extra, message", [
    (["--augment", "-2"], "--augment -2: give 0 (no templated rows) or a number of rows per capability"),
    (["--augment", "3"], "--augment 3: 1 templated training row(s) are behaviour test cases"),
])
def test_training_refuses_a_bad_or_leaking_augment_and_writes_nothing(tiny_phi, tmp_path, capsys, monkeypatch,
                                                                      extra, message):
    if extra[1] == "3":  # the training templates made a behaviour test case
        draw = augment.draw_rows
        case = draw_suite()[5].texts[0]
        monkeypatch.setattr(augment, "draw_rows", lambda n, seed: pd.concat(
            [draw(n, seed).iloc[1:], pd.DataFrame({"sentiment": ["neutral"], "text": [case], "capability": ["x"]})]))
    out = tmp_path / "run"
    assert train_script.main(tiny_args(tiny_phi, out, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("error: ") and "\n" not in err
    assert not out.exists()


def test_a_sweep_trial_sets_augment_and_the_table_gives_behaviour_rates(tiny_phi, tmp_path, capsys):
    trials = tmp_path / "trials.yaml"
    tiny = {"model_name_or_path": str(tiny_phi), "max_steps": 1, "per_device_train_batch_size": 4,
            "load_in_4bit": False, "dtype": "float32"}
    trials.write_text(yaml.safe_dump([{"name": "plain", "config": "cpu-embedded", "cap": "min", "args": tiny},
                                      {"name": "aug4", "config": "cpu-embedded", "cap": "min",
                                       "args": {**tiny, "augment": 4}}]))
    out = tmp_path / "sweep"
    argv = ["--data_file", str(SAMPLE_HEADLINES), "--trials", str(trials), "--out", str(out), "--folds", "2",
            "--test_size", "10", "--only_folds", "0", "--behaviour_cases", "3", "--resemblance", "4"]
    assert sweep.main(argv) == 0
    lines = {line["trial"]: line for line in sweep.read_results(out / "results.jsonl")}
    # cap min: 20 rows per label from the other fold; aug4 adds 4 rows per capability to them
    assert lines["plain"]["train_label_counts"] == dict.fromkeys(LABELS, 20)
    added = augment.draw_rows(4)["sentiment"].value_counts()
    assert lines["aug4"]["train_label_counts"] == {label: 20 + int(added.get(label, 0)) for label in LABELS}
    suite = draw_suite(3)
    distinct = {t for case in suite for t in case.texts}
    table = {row["trial"]: row for row in json.loads((out / "summary.json").read_text())}
    for name, line in lines.items():
        assert len(line["behaviour"]["probs"]) == len(distinct) and line["behaviour"]["cases"] == 3
        rates = table[name]["behaviour"]
        assert rates["folds"] == 1 and rates["decision"] == "balanced_t"
        assert set(rates["failure_rate"]) == {c.name for c in behaviour_cases.CAPABILITIES}
        assert all((3 * r).is_integer() for r in rates["failure_rate"].values())  # one fold, 3 cases: a count of 3
        assert table[name]["holds_phrasebank"] == (table[name]["balanced_t"]["balanced_accuracy"] >= 0.873)
    printed = capsys.readouterr().out
    assert "selection (issue 22): balanced accuracy (T + equal priors) at least 0.873" in printed
    assert re.search(r"^aug4 +\d\.\d{3} +(yes|NO) +\d+ ", printed, re.M)
    assert "MFT failures by resemblance to the --augment 4 rows" in printed
    assert all(table[name]["mft_by_resemblance"]["augment"] == 4 for name in lines)


def test_behaviour_rates_decide_as_the_balanced_accuracy_does():
    """A hand-made job: every sentence of the suite scored 0.05 / 0.8 / 0.15 (negative / neutral / positive)."""
    suite = draw_suite(2)
    texts = sorted({t for case in suite for t in case.texts})
    probs = [[0.05, 0.8, 0.15]] * len(texts)
    line = {"train_label_counts": {"negative": 10, "neutral": 80, "positive": 10},
            "behaviour": {**sweep.suite_key(2, suite), "probs": probs}}
    as_trained = sweep.behaviour_rates([{**line, "train_label_counts": dict.fromkeys(LABELS, 1)}], 1.0)
    shifted = sweep.behaviour_rates([line], 2.0)
    # as trained every sentence is neutral: the MFT cases that expect neutral pass, all others fail
    mft = [c for c in suite if c.capability in {k.name for k in behaviour_cases.CAPABILITIES if k.kind == "MFT"}]
    assert as_trained["mft_failure_rate"] == sum(c.label != "neutral" for c in mft) / len(mft)
    # trained on 1:8:1, at T 2 then equal priors: positive sqrt(0.15) / 0.1 = 3.87 against neutral sqrt(0.8) / 0.8
    # = 1.12 and negative sqrt(0.05) / 0.1 = 2.24: every sentence is positive
    assert shifted["mft_failure_rate"] == sum(c.label != "positive" for c in mft) / len(mft)


def test_a_resumed_run_must_keep_its_templated_rows(tiny_phi, tmp_path, capsys):
    out = tmp_path / "run"
    checkpoints = ["--save_strategy", "steps", "--save_steps", "1", "--max_steps", "1"]
    assert train_script.main(tiny_args(tiny_phi, out, "--augment", "2", *checkpoints)) == 0
    resumed = [*checkpoints[:-1], "2", "--resume"]
    assert train_script.main(tiny_args(tiny_phi, out, "--augment", "3", *resumed)) == 2
    assert "pass the same --data_file, sizes and --augment" in capsys.readouterr().err
    assert train_script.main(tiny_args(tiny_phi, out, "--augment", "2", *resumed)) == 0


def test_resemblance_compares_frames_not_the_names_and_numbers_filled_in():
    rows = ["Borvik Mills' freight costs fell 12.5 % in May", "Zelten Bank names a new chief executive"]
    similar = augment.resemblance(["Aurora Oy's freight costs fell 3 % in June", "Aurora Oy names a new auditor",
                                   "Aurora Oy's quarterly loss narrowed"], rows)
    assert similar[0] == pytest.approx(1.0)  # the same frame, other names, numbers and month
    assert 0 < similar[1] < 1 and similar[2] == pytest.approx(0.0)


def test_by_resemblance_splits_the_mft_failures_at_the_median_case():
    """A hand-made job that fails exactly the MFT cases most like the templated rows."""
    suite = draw_suite(4)
    kinds = {c.name: c.kind for c in behaviour_cases.CAPABILITIES}
    mft = [c for c in suite if kinds[c.capability] == "MFT"]
    similar = augment.resemblance([c.texts[0] for c in mft], augment.draw_rows(10)["text"].tolist())
    more = {c.texts[0]: s > np.median(similar) for c, s in zip(mft, similar, strict=True)}
    expected = {c.texts[0]: c.label for c in mft}
    texts = sorted({t for case in suite for t in case.texts})
    # a failing case puts 0.9 on the label after its expected one, a passing case on its expected one
    probs = [np.roll([0.9, 0.05, 0.05], LABELS.index(expected.get(t, "neutral")) + more.get(t, False)).tolist()
             for t in texts]
    line = {"train_label_counts": dict.fromkeys(LABELS, 1), "behaviour": {**sweep.suite_key(4, suite), "probs": probs}}
    split = sweep.by_resemblance([line, line], 1.0, 10)
    assert split["less"] == {"failures": 0, "cases": 2 * sum(not m for m in more.values())}
    assert split["more"] == {"failures": 2 * sum(more.values()), "cases": 2 * sum(more.values())}
    assert sum(c["cases"] for c in split["less_by_capability"].values()) == split["less"]["cases"]
    assert sweep.by_resemblance([{"train_label_counts": {}}], 1.0, 10) is None  # no job scored the suite
