"""Training on the app's corrections (train/corrections.py): the leak refusal, a fresh run with them, and the
continuation of an adapter (--init_adapter) on the tiny Phi."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from safetensors.torch import load_file

from conftest import PHRASEBANK, SAMPLE_HEADLINES, needs, tiny_args
from finsent.space.adapter_info import weights_sha256
from finsent.space.classifier import load_classifier
from finsent.space.feedback import FeedbackStore
from finsent.train import train as train_script
from finsent.train.corrections import Continuation
from finsent.train.data import SplitSizes, load_split, read_labelled, split_dataset, split_digests, text_key

PROBS = {"negative": 0.3, "neutral": 0.4, "positive": 0.3}
MODEL = {"adapter_sha256": None, "prompt_version": 2}
NEW = [("negative", "Kessel Bank set aside another EUR 300 million for loan losses"),
       ("positive", "Caldera Mining no longer expects output to fall this year and raised its production guidance"),
       ("neutral", "Orvik Foods will hold its annual general meeting on 3 May")]


def corrections(folder, rows=NEW):
    store = FeedbackStore(folder)
    for label, text in rows:
        store.save("s", text, label, PROBS, MODEL)
    return folder


def continue_args(tiny_phi, trained, out, folder, *extra):
    return ["--config", "cpu-embedded", "--model_name_or_path", str(tiny_phi), "--init_adapter", str(trained),
            "--corrections", str(folder), "--replay", "6", "--output_dir", str(out),
            "--load_in_4bit", "true", "--use_bnb_nested_quant", "true", "--dtype", "auto", "--max_steps", "2",
            "--per_device_train_batch_size", "3", "--learning_rate", "1e-2", "--save_strategy", "no",
            "--eval_strategy", "no", *extra]


def test_a_continuation_trains_its_own_lora_on_its_own_split_and_records_it(tiny_phi, trained, tmp_path, caplog):
    out = tmp_path / "continued"
    with caplog.at_level("INFO", logger="finsent.train"):
        assert train_script.main(continue_args(tiny_phi, trained, out, corrections(tmp_path / "fb"))) == 0
    assert "on 3 correction(s) and 6 of its own rows" in caplog.text
    info, before = json.loads((out / "finsent.json").read_text()), json.loads((trained / "finsent.json").read_text())
    assert info["continued_from"] == {"source": str(trained), "weights_sha256": weights_sha256(trained), "replay_rows": 6}
    assert info["corrections"]["rows"] == 3 and info["corrections"]["source"] == str(tmp_path / "fb")
    assert info["temperature"] == before["temperature"]  # its calibration, unless --temperature says otherwise
    assert info["train_label_counts"] == {label: count + 1 for label, count in before["train_label_counts"].items()}
    assert split_digests(load_split(out)) == split_digests(load_split(trained))  # scored on the same test rows
    old, new = load_file(trained / "adapter_model.safetensors"), load_file(out / "adapter_model.safetensors")
    assert old.keys() == new.keys()  # the same LoRA, continued: not a new one
    assert any(not (old[name] == new[name]).all() for name in old)
    assert json.loads((out / "adapter_config.json").read_text())["r"] == \
        json.loads((trained / "adapter_config.json").read_text())["r"]
    load_classifier(str(tiny_phi), str(out), dtype="float32")  # it serves
    from finsent.eval import evaluate as evaluate_script

    assert evaluate_script.main(["--adapter", str(out), "--dtype", "float32", "--skip_base"]) == 0
    card = " ".join((out / "README.md").read_text().split())
    assert f"This adapter continues `{trained}`" in card and "It learned from 3 corrections" in card
    assert "sample_headlines.csv" in card  # the data its split came from, though the run had no --data_file


def test_the_replay_is_a_seeded_sample_of_its_own_training_rows_less_the_corrected(trained):
    init = Continuation.load(str(trained))
    own = init.own_rows()
    corrected = pd.DataFrame([("positive", own["text"].iloc[0])], columns=["sentiment", "text"])
    replay = init.replay(8, seed=42, corrections=corrected)
    assert len(replay) == 8 and replay.equals(init.replay(8, seed=42, corrections=corrected))
    assert set(replay["text"]) <= set(own["text"]) and own["text"].iloc[0] not in set(replay["text"])
    held_out = {text_key(t) for side in ("test", "eval") for t in init.splits[side]["text"]}
    assert not held_out & set(replay["text"].map(text_key))
    assert len(init.replay(10_000, seed=1, corrections=corrected)) == len(own) - 1  # all it has, at most


def test_a_test_row_among_the_corrections_is_refused_and_nothing_is_written(tiny_phi, trained, tmp_path, capsys):
    test_text = load_split(trained)["test"]["text"].iloc[0]
    folder = corrections(tmp_path / "fb", [*NEW, ("positive", f"  {test_text.upper()} ")])
    out = tmp_path / "continued"
    assert train_script.main(continue_args(tiny_phi, trained, out, folder)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --corrections") and "1 of its 4 headlines are test or eval rows" in err
    assert "\n" not in err and not out.exists()


def test_a_fresh_run_trains_on_its_corrections_in_place_of_the_same_headlines_rows(tiny_phi, tmp_path):
    sizes = SplitSizes(train=20, test=10, eval=4)  # tiny_args' split
    train_text = split_dataset(read_labelled(str(SAMPLE_HEADLINES)), sizes)[0]["train"]["text"].iloc[0]
    out = tmp_path / "run"
    folder = corrections(tmp_path / "fb", [*NEW, ("neutral", train_text)])
    assert train_script.main(tiny_args(tiny_phi, out, "--corrections", str(folder))) == 0
    info = json.loads((out / "finsent.json").read_text())
    assert info["corrections"]["rows"] == 4 and info["continued_from"] is None
    assert sum(info["train_label_counts"].values()) == len(load_split(out)["train"]) - 1 + 4  # its row gave way


@pytest.mark.parametrize("extra, message", [
    (["--data_file", "x.csv"], "--init_adapter continues on the adapter's own split and training rows; drop --data_file"),
    (["--augment", "2"], "drop --augment"),
    (["--replay", "-1"], "--replay -1: give a number of rows, 0 or more"),
    (["--load_in_4bit", "false"], "trained on a 4-bit base; pass --load_in_4bit true"),
])
def test_bad_continuation_flags_are_one_line(tiny_phi, trained, tmp_path, capsys, extra, message):
    out = tmp_path / "continued"
    assert train_script.main(continue_args(tiny_phi, trained, out, corrections(tmp_path / "fb"), *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("error: ") and "\n" not in err and not out.exists()


def test_init_adapter_without_corrections_or_with_an_empty_folder_is_refused(tiny_phi, trained, tmp_path, capsys):
    args = continue_args(tiny_phi, trained, tmp_path / "out", tmp_path / "missing")
    assert train_script.main(args) == 2
    assert "no such corrections file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "corrections.jsonl").write_text("")
    assert train_script.main(continue_args(tiny_phi, trained, tmp_path / "out", tmp_path / "empty")) == 2
    assert "it holds no corrections yet" in capsys.readouterr().err
    no_corrections = [a for a in args if a not in ("--corrections", str(tmp_path / "missing"))]
    assert train_script.main(no_corrections) == 2
    assert "--init_adapter: pass --corrections" in capsys.readouterr().err


def test_the_modern_headlines_are_balanced_distinct_and_cut_into_two_stratified_halves():
    from finsent.eval.bench_corrections import HEADLINES, halves
    from finsent.space.classifier import LABELS

    rows = pd.read_csv(HEADLINES)
    assert len(rows) >= 200 and rows["sentiment"].value_counts().to_dict() == dict.fromkeys(LABELS, len(rows) // 3)
    assert rows["text"].map(text_key).is_unique
    first, second = halves(0)
    assert {r["text"] for r in first}.isdisjoint(r["text"] for r in second) and len(first) + len(second) == len(rows)
    for label in LABELS:
        assert sum(r["sentiment"] == label for r in first) == sum(r["sentiment"] == label for r in second)
    assert halves(0) == (first, second) and halves(1) != (first, second)


def test_the_modern_headlines_are_apart_from_the_suite_and_the_training_templates():
    from finsent.eval.bench_corrections import HEADLINES
    from finsent.train import augment

    keys = set(pd.read_csv(HEADLINES)["text"].map(text_key))
    assert not keys & augment.suite_keys()
    assert not keys & set(augment.draw_rows(1000)["text"].map(text_key))


@needs(PHRASEBANK.is_dir(), "the PhraseBank in ../shared/data/financial_phrasebank")
def test_no_modern_headline_is_a_phrasebank_sentence():
    from finsent.eval.bench_corrections import HEADLINES

    phrasebank = set(read_labelled(str(PHRASEBANK / "all-data.csv"))["text"].map(text_key))
    assert not set(pd.read_csv(HEADLINES)["text"].map(text_key)) & phrasebank
