"""Tests for finsent.train.data: readers, validation, the leak-free split, and writing it.

Every headline here is invented for the tests. Bad inputs are written into tmp_path
from byte strings, so the exact bytes (Latin-1, CRLF, C1 controls, NUL) are visible.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import datasets
import pandas as pd
import pytest

from conftest import SAMPLE_HEADLINES, needs, tiny_args
from finsent.space.classifier import LABELS, build_completion, build_prompt
from finsent.train.data import (
    DataError,
    SplitSizes,
    file_sha256,
    load_split,
    read_labelled,
    split_dataset,
    split_digests,
    text_key,
    to_prompt_completion,
    write_split,
)

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = Path(__file__).resolve().parents[1] / "train" / "sample_headlines.csv"
PHRASEBANK = Path(__file__).resolve().parents[2] / "shared/data/financial_phrasebank"
needs_phrasebank = needs(PHRASEBANK.is_dir(), f"{PHRASEBANK} is missing")


def write_bytes(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def frame(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["sentiment", "text"]).astype(str)


def balanced(per_label: int, prefix: str = "Company") -> pd.DataFrame:
    """`per_label` distinct invented headlines for each label, grouped by label."""
    return frame([(label, f"{prefix} {i} reports {label} news") for label in LABELS for i in range(per_label)])


def split_keys(splits: dict[str, pd.DataFrame]) -> dict[str, set[str]]:
    return {side: set(df["text"].map(text_key)) for side, df in splits.items()}


# --- readers ---------------------------------------------------------------------------------


def test_csv_with_header_normalises_labels_and_strips_texts():
    df = read_labelled(str(FIXTURES / "headlines_header.csv"))
    assert list(df.columns) == ["sentiment", "text"]
    assert df.values.tolist() == [
        ["positive", "Tundra Robotics doubles quarterly revenue"],
        ["positive", "Ormsby Foods raises its dividend, again"],  # label was "  Positive "
        ["negative", "Calder Freight warns of a loss after fuel costs jump"],
        ["negative", "Brisk Telecom cuts 90 jobs; shares fall"],  # label was "NEGATIVE"
        ["neutral", "Ferrow Bank to publish results on 2 May"],
        ["neutral", "Ilvento Paper names a new CFO, effective June"],
    ]


def test_csv_header_in_any_order_with_aliases_and_extra_columns():
    df = read_labelled(str(FIXTURES / "headlines_reordered.csv"))  # id,Sentence,source,Label
    assert df.values.tolist() == [
        ["positive", "Tundra Robotics doubles quarterly revenue"],
        ["negative", "Calder Freight warns of a loss after fuel costs jump"],
        ["neutral", "Ferrow Bank to publish results on 2 May"],
    ]


def test_csv_without_header_uses_the_first_two_columns(tmp_path):
    data = b'neutral,"Ferrow Bank, a lender, moves office",extra\npositive,Tundra sales up\n'
    path = write_bytes(tmp_path, "h.csv", data)
    assert read_labelled(path).values.tolist() == [
        ["neutral", "Ferrow Bank, a lender, moves office"],
        ["positive", "Tundra sales up"],
    ]


def test_latin1_csv_without_header_like_kaggle_all_data(tmp_path):
    data = 'neutral,"Caf\xe9 chain Orvano opens in Malm\xf6 ."\r\nnegative,"Orvano\'s margin fell , it said ."\r\n'
    path = write_bytes(tmp_path, "all-data.csv", data.encode("latin-1"))
    assert read_labelled(path).values.tolist() == [
        ["neutral", "Café chain Orvano opens in Malmö ."],
        ["negative", "Orvano's margin fell , it said ."],
    ]


def test_utf8_bom_with_header(tmp_path):
    data = "sentiment,text\npositive,Zürich unit of Ormsby beats forecast\n".encode("utf-8-sig")
    path = write_bytes(tmp_path, "bom.csv", data)
    assert read_labelled(path).values.tolist() == [["positive", "Zürich unit of Ormsby beats forecast"]]


def test_multiline_quoted_field_keeps_line_numbers(tmp_path):
    data = b'sentiment,text\npositive,"Tundra wins\na large order"\npostive,Calder is fine\n'
    with pytest.raises(DataError, match=r"line 4: unknown label 'postive'"):
        read_labelled(write_bytes(tmp_path, "m.csv", data))


def test_phrasebank_txt_latin1_crlf_blank_lines_and_an_extra_at(tmp_path):
    data = "Varra Retail sells more caf\xe9s .@positive\r\n\r\nMail orders@varra.example rise .@neutral\r\n"
    df = read_labelled(write_bytes(tmp_path, "Sentences_Test.txt", data.encode("latin-1")))
    assert df.values.tolist() == [
        ["positive", "Varra Retail sells more cafés ."],
        ["neutral", "Mail orders@varra.example rise ."],  # split on the last @
    ]


def test_save_to_disk_dataset_with_classlabel(tmp_path):
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=list(LABELS))}
    )
    sentences = ["Calder slumps", "Ferrow moves", " Tundra soars "]
    ds = datasets.Dataset.from_dict({"sentence": sentences, "label": [0, 1, 2]}, features=features)
    ds.save_to_disk(str(tmp_path / "ds"))
    assert read_labelled(str(tmp_path / "ds")).values.tolist() == [
        ["negative", "Calder slumps"],
        ["neutral", "Ferrow moves"],
        ["positive", "Tundra soars"],
    ]


def test_save_to_disk_datasetdict_uses_train_or_the_only_split(tmp_path):
    train = datasets.Dataset.from_dict({"text": ["Tundra soars"], "sentiment": ["Positive"]})
    other = datasets.Dataset.from_dict({"text": ["Calder slumps"], "sentiment": ["negative"]})
    datasets.DatasetDict({"train": train, "test": other}).save_to_disk(str(tmp_path / "dd"))
    assert read_labelled(str(tmp_path / "dd")).values.tolist() == [["positive", "Tundra soars"]]
    datasets.DatasetDict({"validation": other}).save_to_disk(str(tmp_path / "one"))
    assert read_labelled(str(tmp_path / "one")).values.tolist() == [["negative", "Calder slumps"]]
    datasets.DatasetDict({"validation": other, "test": other}).save_to_disk(str(tmp_path / "two"))
    with pytest.raises(DataError, match=r"splits \['validation', 'test'\] and no 'train'"):
        read_labelled(str(tmp_path / "two"))


def test_dataset_without_the_needed_columns(tmp_path):
    datasets.Dataset.from_dict({"headline": ["Tundra soars"], "label": ["positive"]}).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(DataError, match=r"has columns \['headline', 'label'\]; expected text in 'sentence' or 'text'"):
        read_labelled(str(tmp_path / "ds"))


def push_parquet_dataset(repo_id: str, path_in_repo: str) -> pd.DataFrame:
    """The sample headlines as a parquet file with a ClassLabel column (as the Hub's conversions store them)."""
    import huggingface_hub

    table = read_labelled(str(SAMPLE_HEADLINES))
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "neutral", "positive"])})
    ds = datasets.Dataset.from_dict({"sentence": table["text"].tolist(),
                                     "label": [["negative", "neutral", "positive"].index(x) for x in table["sentiment"]]},
                                    features=features)
    buffer = io.BytesIO()
    ds.to_parquet(buffer)
    huggingface_hub.create_repo(repo_id, repo_type="dataset")
    huggingface_hub.upload_file(path_or_fileobj=buffer.getvalue(), path_in_repo=path_in_repo, repo_id=repo_id,
                                repo_type="dataset")
    return table


def test_a_hub_parquet_dataset_reads_trains_and_evaluates_from_its_id(local_hub, tiny_phi, tmp_path):
    """No mocks: a parquet dataset on the (local) Hub, read by its id and config, then trained and evaluated on."""

    from finsent.eval import evaluate as evaluate_script
    from finsent.train import train as train_script

    table = push_parquet_dataset("tester/headlines", "small/train-00000-of-00001.parquet")
    read = read_labelled("tester/headlines", dataset_config="small")
    assert read.to_dict("records") == table.to_dict("records")

    out = tmp_path / "run"
    argv = tiny_args(tiny_phi, out)
    argv[argv.index("--data_file") + 1] = "tester/headlines"
    assert train_script.main([*argv, "--dataset_config", "small"]) == 0
    assert (out / "split" / "test.csv").is_file()
    assert evaluate_script.main(["--adapter", str(out), "--data_file", "tester/headlines", "--dataset_config", "small",
                                 "--output_dir", str(tmp_path / "eval"), "--dtype", "float32", "--max_rows", "9"]) == 0
    assert json.loads((tmp_path / "eval" / "eval_results.json").read_text())["rows"] == 9


def test_a_script_dataset_is_read_from_the_hubs_parquet_conversion(local_hub):
    """A dataset with only a loading script (which datasets >= 4 cannot run) is read from refs/convert/parquet."""
    import huggingface_hub

    from finsent.train.data import PARQUET_CONVERSION

    table = push_parquet_dataset("tester/scripted", "staging/train.parquet")  # the bytes, then moved to the ref
    parquet = local_hub.files("tester/scripted", repo_type="dataset")["staging/train.parquet"]
    huggingface_hub.delete_file("staging/train.parquet", repo_id="tester/scripted", repo_type="dataset")
    huggingface_hub.upload_file(path_or_fileobj=b"# a loading script", path_in_repo="scripted.py",
                                repo_id="tester/scripted", repo_type="dataset")
    local_hub.add_ref("tester/scripted", PARQUET_CONVERSION, {"default/train/0000.parquet": parquet})
    assert read_labelled("tester/scripted").to_dict("records") == table.to_dict("records")


def test_a_hub_dataset_without_data_files_or_reach_is_one_clear_error(local_hub):
    import huggingface_hub

    huggingface_hub.create_repo("tester/script-only", repo_type="dataset")
    huggingface_hub.upload_file(path_or_fileobj=b"# a loading script", path_in_repo="script_only.py",
                                repo_id="tester/script-only", repo_type="dataset")
    with pytest.raises(DataError, match="could not be loaded from the Hugging Face Hub.*local .csv/.txt file"):
        read_labelled("tester/script-only")  # no data files, and no parquet conversion on this Hub
    with pytest.raises(DataError, match="could not be loaded from the Hugging Face Hub"):
        read_labelled("tester/no-such-dataset")


# --- bad inputs: each error names the file, the line, the problem and the fix -------------------

BAD_FILES = {
    "header lacks text": (
        "h.csv", b"sentiment,headline\npositive,Tundra soars\n", {},
        ["line 1", "the header has columns ['sentiment', 'headline']", "'text' (or 'sentence')"],
    ),
    "unknown label": (
        "h.csv", b"sentiment,text\npositive,Tundra soars\npostive,Calder slumps\n", {},
        ["line 3: unknown label 'postive'", "allowed labels: negative, neutral, positive"],
    ),
    "empty text": (
        "h.csv", b"positive,Tundra soars\nneutral,   \n", {},
        ["line 2: empty text", "delete the row"],
    ),
    "too few fields": (
        "h.csv", b"positive,Tundra soars\nneutral\n", {},
        ["line 2: 1 field(s), expected 2"],
    ),
    "strict utf-8": (
        "h.csv", b"positive,Tundra soars\nneutral,Caf\xe9 Orvano moves\n", {"encoding": "utf-8"},
        ["line 2", "b'\\xe9' are not valid utf-8", "--encoding"],
    ),
    "C1 bytes in auto mode": (
        "h.csv", b"positive,Tundra soars\nneutral,Orvano \x93moves\x94 caf\xe9\n", {},
        ["undecodable bytes at line 2", "0x93", "re-save it as UTF-8 (or pass --encoding cp1252)"],
    ),
    "NUL in auto mode": (
        "h.csv", b"positive,Tundra soars\n\nneutral,Orvano\x00moves\n", {},
        ["NUL byte at line 3", "re-save it as UTF-8"],
    ),
    "NUL in strict mode": (
        "h.csv", b"positive,Tundra\x00soars\n", {"encoding": "utf-8"},
        ["NUL byte at line 1"],
    ),
    "unknown encoding": (
        "h.csv", b"positive,Tundra soars\n", {"encoding": "klingon"},
        ["unknown encoding 'klingon'", "--encoding"],
    ),
    "empty file": ("h.csv", b"", {}, ["no data rows"]),
    "header only": ("h.csv", b"sentiment,text\n\n", {}, ["no data rows"]),
    "phrasebank line without @": (
        "s.txt", b"Tundra soars .@positive\nCalder slumps .\n", {},
        ["line 2: no '@'; expected sentence@label"],
    ),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_input_is_a_clear_data_error(tmp_path, name):
    filename, data, kwargs, expected = BAD_FILES[name]
    path = write_bytes(tmp_path, filename, data)
    with pytest.raises(DataError) as error:
        read_labelled(path, **kwargs)
    message = str(error.value)
    assert message.startswith(path) and "\n" not in message
    for part in expected:
        assert part in message


def test_many_problems_are_reported_together(tmp_path):
    data = b"".join(b"bogus,Tundra headline %d\n" % i for i in range(8))
    with pytest.raises(DataError, match=r"8 problems: line 1 \(no header naming 'sentiment' and 'text' columns, so read as data\): unknown label 'bogus'.*line 5: .*; and 3 more \(or pass --skip_malformed to leave such rows out\)$"):
        read_labelled(write_bytes(tmp_path, "h.csv", data))


@pytest.mark.parametrize("source", ["no-such-file.csv", "missing/dir/headlines.csv", "plainword"])
def test_missing_file(tmp_path, monkeypatch, source):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="no such file or directory"):
        read_labelled(source)


# --- split ---------------------------------------------------------------------------------------


def test_split_sizes_reject_negative_numbers():
    with pytest.raises(ValueError, match="--eval_size must be 0 or more"):
        SplitSizes(eval=-1)


def test_split_counts_and_summary():
    df = balanced(20)
    splits, summary = split_dataset(df, SplitSizes(train=8, test=5, eval=2), seed=3)
    for side, n in (("train", 8), ("test", 5), ("eval", 2)):
        assert splits[side]["sentiment"].value_counts().to_dict() == dict.fromkeys(LABELS, n)
        assert list(splits[side].columns) == ["sentiment", "text"]
    assert summary["counts"] == {
        "train": dict.fromkeys(LABELS, 8),
        "eval": dict.fromkeys(LABELS, 2),
        "test": dict.fromkeys(LABELS, 5),
    }
    assert summary["seed"] == 3
    assert summary["sizes_per_label"] == {"train": 8, "test": 5, "eval": 2}
    assert (summary["rows_read"], summary["distinct_texts"], summary["duplicate_rows_removed"]) == (60, 60, 0)
    json.dumps(summary)  # JSON-serialisable


def test_repeats_with_the_same_label_collapse_to_the_first():
    repeats = frame(
        [("positive", "  company 0 REPORTS\tpositive   news "), ("neutral", "Company 1 reports neutral news")]
    )
    df = pd.concat([balanced(4), repeats])
    splits, summary = split_dataset(df, SplitSizes(train=None, test=1, eval=1))
    everything = pd.concat(splits.values())
    assert len(everything) == 12 and everything["text"].map(text_key).is_unique
    assert "Company 0 reports positive news" in set(everything["text"])  # the first spelling is kept
    assert summary["duplicate_rows_removed"] == 2
    assert summary["distinct_texts"] == 12


def test_conflicting_repeats_are_dropped_from_every_side():
    conflicts = [
        ("positive", "Varra doubles its order book"),
        ("neutral", "VARRA doubles its order  book"),
        ("negative", "Ilvento exits the paper market"),
        ("neutral", "Ilvento exits the paper market"),
        ("negative", "ilvento exits the paper market"),
    ]
    df = pd.concat([frame(conflicts), balanced(4)])
    splits, summary = split_dataset(df, SplitSizes(train=None, test=1, eval=1))
    texts = set(pd.concat(splits.values())["text"].map(text_key))
    assert not texts & {text_key(text) for _, text in conflicts}
    assert len(texts) == 12
    assert summary["conflicting_texts_dropped"] == {
        "texts": 2,
        "rows": 5,
        "labels": [["negative", "neutral"], ["neutral", "positive"]],
    }
    assert summary["duplicate_rows_removed"] == 0
    assert "Varra" not in json.dumps(summary) and "Ilvento" not in json.dumps(summary)  # no data quoted


def random_headlines(seed: int) -> pd.DataFrame:
    """Invented headlines with many near-repeats (case, spacing, NFKC forms), some of them conflicting."""
    rng = random.Random(seed)
    companies = ["Varra", "Tundra", "Calder", "Ferrow", "Ilvento", "Ormsby", "Brisk"]
    verbs = ["lifts", "cuts", "keeps", "reviews", "doubles"]
    things = ["its outlook", "the dividend", "prices", "staff", "capex"]
    rows = []
    for _ in range(400):
        text = f"{rng.choice(companies)} {rng.choice(verbs)} {rng.choice(things)}"
        text = rng.choice([text, text.upper(), f"  {text} ", text.replace(" ", "\u00a0"), text.replace(" ", "  ")])
        rows.append((rng.choice(LABELS) if rng.random() < 0.2 else LABELS[len(text) % 3], text))
    return frame(rows)


@pytest.mark.parametrize("seed", range(5))
def test_no_normalised_text_on_two_sides(seed):
    splits, summary = split_dataset(random_headlines(seed), SplitSizes(train=None, test=5, eval=3), seed=seed)
    keys = split_keys(splits)
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["eval"] and not keys["eval"] & keys["test"]
    for side, df in splits.items():
        assert df["text"].map(text_key).is_unique, side
    assert summary["duplicate_rows_removed"] > 0 and summary["conflicting_texts_dropped"]["texts"] > 0


def test_same_seed_same_split_and_another_seed_another():
    df = balanced(30)
    first, _ = split_dataset(df, SplitSizes(train=10, test=5, eval=3), seed=7)
    again, _ = split_dataset(df, SplitSizes(train=10, test=5, eval=3), seed=7)
    other, _ = split_dataset(df, SplitSizes(train=10, test=5, eval=3), seed=8)
    for side in first:
        pd.testing.assert_frame_equal(first[side], again[side])
    assert not first["test"].equals(other["test"])


def test_test_set_does_not_change_with_the_train_size():
    df = balanced(30)
    small, _ = split_dataset(df, SplitSizes(train=2, test=5, eval=3))
    large, _ = split_dataset(df, SplitSizes(train=5, test=5, eval=3))
    every, _ = split_dataset(df, SplitSizes(train=None, test=5, eval=3))
    pd.testing.assert_frame_equal(small["test"], large["test"])
    pd.testing.assert_frame_equal(small["test"], every["test"])
    assert set(small["train"]["text"]) < set(large["train"]["text"]) < set(every["train"]["text"])
    # eval is drawn before train, so trials of any train size validate on the same rows
    pd.testing.assert_frame_equal(small["eval"], every["eval"])
    pd.testing.assert_frame_equal(large["eval"], every["eval"])
    # unless a label is too small for all three: then train is exact and eval takes what is left
    tight, summary = split_dataset(df, SplitSizes(train=24, test=5, eval=3))
    assert summary["eval_short"] == dict.fromkeys(LABELS, 1)
    pd.testing.assert_frame_equal(tight["test"], every["test"])


def test_train_none_takes_every_remaining_row_and_sides_are_shuffled():
    df = balanced(30)
    splits, summary = split_dataset(df, SplitSizes(train=None, test=5, eval=3))
    assert summary["counts"]["train"] == dict.fromkeys(LABELS, 22)
    assert set(pd.concat(splits.values())["text"]) == set(df["text"])
    labels = splits["train"]["sentiment"].tolist()
    assert sum(a != b for a, b in zip(labels, labels[1:], strict=False)) > 2  # not grouped by label


def test_zero_eval_and_test_sizes_give_empty_sides():
    splits, _ = split_dataset(balanced(4), SplitSizes(train=None, test=0, eval=0))
    assert splits["eval"].empty and splits["test"].empty
    assert list(splits["eval"].columns) == ["sentiment", "text"]
    assert len(splits["train"]) == 12


def test_class_too_small_names_label_counts_and_flags():
    df = pd.concat([balanced(10), frame([("negative", f"Calder extra loss {i}") for i in range(5)])])
    with pytest.raises(DataError) as error:
        split_dataset(df, SplitSizes(train=8, test=5, eval=2))
    message = str(error.value)
    assert "'neutral' has 10 distinct rows, the sizes need 13 (test 5 + train 8)" in message
    assert "'positive' has 10" in message and "'negative'" not in message
    for flag in ("--train_size", "--test_size", "--eval_size", "--train_size all"):
        assert flag in message
    with pytest.raises(DataError, match="'neutral' has 10 distinct rows, the sizes need 11"):
        split_dataset(df, SplitSizes(train=None, test=8, eval=2))  # nothing left to train on


# --- write_split and the TRL format ------------------------------------------------------------


def test_write_split_round_trip(tmp_path):
    tricky = frame(
        [
            ("positive", 'Ormsby says "record" year, again'),
            ("negative", "Calder; Brisk,\tand Varra fall 5%"),
            ("neutral", "Ilvento's AGM\nmoves to Malmö"),
            ("neutral", "sentiment"),
        ]
    )
    splits, summary = split_dataset(pd.concat([tricky, balanced(3)]), SplitSizes(train=None, test=1, eval=1))
    split_dir = write_split(splits, summary, tmp_path / "run")
    assert split_dir == tmp_path / "run" / "split"
    assert sorted(p.name for p in split_dir.iterdir()) == ["eval.csv", "summary.json", "test.csv", "train.csv"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["split"]  # no temporary leftovers
    written = json.loads((split_dir / "summary.json").read_text(encoding="utf-8"))
    for side in ("train", "eval", "test"):
        path = split_dir / f"{side}.csv"
        assert path.read_text(encoding="utf-8").startswith("sentiment,text\n")
        pd.testing.assert_frame_equal(read_labelled(str(path)), splits[side])
        assert written["sha256"][f"{side}.csv"] == file_sha256(path)
    assert written["counts"] == summary["counts"]
    assert "sha256" not in summary  # the caller's dict is left as it was


def test_a_run_without_eval_rows_loads_its_split_back(tmp_path):
    """--eval_size 0 (the default adapter's recipe) writes an eval.csv of its header alone: the run's split still loads,
    so `finsent evaluate` takes the run folder as written."""
    splits, summary = split_dataset(balanced(4), SplitSizes(train=None, test=1, eval=0))
    write_split(splits, summary, tmp_path / "run")
    loaded = load_split(tmp_path / "run")
    assert len(loaded["eval"]) == 0 and split_digests(loaded) == split_digests(splits)
    pd.testing.assert_frame_equal(loaded["test"], splits["test"])


def test_write_split_replaces_an_old_split_and_a_failed_write_leaves_it(tmp_path):
    splits, summary = split_dataset(balanced(4), SplitSizes(train=None, test=1, eval=1))
    assert not (tmp_path / "split").exists()
    with pytest.raises(TypeError):
        write_split(splits, {**summary, "bad": {1, 2}}, tmp_path)  # a set is not JSON: fails after the CSVs
    assert list(tmp_path.iterdir()) == []  # no split dir, no half-written temp dir

    write_split(splits, {**summary, "run": 1}, tmp_path)
    with pytest.raises(TypeError):
        write_split(splits, {**summary, "bad": {1, 2}}, tmp_path)
    assert json.loads((tmp_path / "split" / "summary.json").read_text())["run"] == 1
    write_split(splits, {**summary, "run": 2}, tmp_path)
    assert json.loads((tmp_path / "split" / "summary.json").read_text())["run"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["split"]


def test_to_prompt_completion():
    df = frame([("positive", "Tundra soars"), ("negative", "Calder slumps")])
    ds = to_prompt_completion(df)
    assert ds.column_names == ["prompt", "completion"]
    assert ds[0] == {"prompt": build_prompt("Tundra soars"), "completion": build_completion("positive")}
    assert ds["completion"] == [" positive", " negative"]
    assert ds[1]["prompt"].endswith("[Calder slumps] =")


def test_file_sha256(tmp_path):
    path = write_bytes(tmp_path, "x", b"abc")
    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# --- the packaged sample and the real PhraseBank ------------------------------------------------


def test_sample_headlines_are_balanced_distinct_and_split_for_the_demo():
    df = read_labelled(str(SAMPLE))
    assert df["sentiment"].value_counts().to_dict() == dict.fromkeys(LABELS, 50)
    assert df["text"].map(text_key).is_unique
    splits, _ = split_dataset(df, SplitSizes(train=30, test=15, eval=5))
    assert [len(splits[side]) for side in ("train", "eval", "test")] == [90, 15, 45]


@needs_phrasebank
def test_sample_headlines_are_not_from_the_phrasebank():
    sample = set(read_labelled(str(SAMPLE))["text"].map(text_key))
    phrasebank = set()
    for path in PHRASEBANK.glob("Sentences_*.txt"):
        lines = path.read_bytes().decode("latin-1").split("\n")
        phrasebank |= {text_key(line.rsplit("@", 1)[0]) for line in lines}
    assert len(phrasebank) > 4000
    assert not sample & phrasebank


@needs_phrasebank
def test_real_phrasebank_files():
    csv_df = read_labelled(str(PHRASEBANK / "all-data.csv"))
    txt_df = read_labelled(str(PHRASEBANK / "Sentences_50Agree.txt"))
    assert len(txt_df) == 4846
    assert txt_df["sentiment"].value_counts().to_dict() == {"negative": 604, "neutral": 2879, "positive": 1363}
    pd.testing.assert_frame_equal(csv_df, txt_df)  # Kaggle's all-data.csv is the 50Agree set

    # This copy of AllAgree has a stray line "1" (line 38) and no line with an extra @:
    # the reader refuses it and names that line, rather than guessing.
    with pytest.raises(DataError, match=r"Sentences_AllAgree.txt: 1 problem: line 38: no '@'"):
        read_labelled(str(PHRASEBANK / "Sentences_AllAgree.txt"))

    keys = txt_df["text"].map(text_key)
    repeated = txt_df[keys.duplicated(keep=False)].groupby(keys)["sentiment"].agg(lambda s: sorted(s))
    conflicts = repeated[repeated.map(lambda labels: len(set(labels)) > 1)]
    found = f"repeated texts' labels: {sorted(repeated)}"
    assert (len(repeated), len(conflicts)) == (8, 2), found

    # The defaults: 300 test + 300 train per label; eval gets the 4 negatives left, 50 of the others.
    splits, summary = split_dataset(txt_df, SplitSizes())
    assert summary["counts"] == {
        "train": dict.fromkeys(LABELS, 300),
        "eval": {"negative": 4, "neutral": 50, "positive": 50},
        "test": dict.fromkeys(LABELS, 300),
    }
    assert summary["eval_short"] == {"negative": 4}
    keys = split_keys(splits)
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["eval"] and not keys["eval"] & keys["test"]

    splits, summary = split_dataset(txt_df, SplitSizes(train=None))
    assert (summary["distinct_texts"], summary["distinct_texts_kept"]) == (4838, 4836), found
    assert summary["duplicate_rows_removed"] == 6, found
    conflicts_summary = {"texts": 2, "rows": 4, "labels": [["neutral", "positive"]] * 2}
    assert summary["conflicting_texts_dropped"] == conflicts_summary, found
    assert summary["counts"] == {
        "train": {"negative": 254, "neutral": 2521, "positive": 1011},
        "eval": dict.fromkeys(LABELS, 50),
        "test": dict.fromkeys(LABELS, 300),
    }
    keys = split_keys(splits)
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["eval"] and not keys["eval"] & keys["test"]


def test_skip_malformed_leaves_bad_rows_out_and_lists_them(tmp_path):
    data = b"Kestrel lifts its outlook@positive\n1\nNorvale cuts jobs@negative\nFerrow flat@sideways\n"
    path = write_bytes(tmp_path, "Sentences_Test.txt", data)
    with pytest.raises(DataError, match="line 2: no '@'.*--skip_malformed"):
        read_labelled(path)
    df = read_labelled(path, skip_malformed=True)
    assert df["text"].tolist() == ["Kestrel lifts its outlook", "Norvale cuts jobs"]
    assert df.attrs["skipped"] == ["line 2: no '@'; expected sentence@label, or delete the line",
                                   "line 4: unknown label 'sideways'; allowed labels: negative, neutral, positive"]


def test_a_split_without_its_csvs_is_drawn_again_and_checked(tmp_path):
    source = write_bytes(tmp_path, "headlines.csv", SAMPLE.read_bytes())
    splits, summary = split_dataset(read_labelled(source), SplitSizes(train=None, test=10, eval=4), seed=7)
    write_split(splits, {**summary, "source": source}, tmp_path / "run")
    for side in ("train", "eval", "test"):
        (tmp_path / "run" / "split" / f"{side}.csv").unlink()
    again = load_split(tmp_path / "run")
    assert all(again[side].equals(splits[side]) for side in splits)
    Path(source).write_bytes(SAMPLE.read_bytes().replace(b"positive", b"negative", 1))
    with pytest.raises(DataError, match="does not match the sha256"):
        load_split(tmp_path / "run")
