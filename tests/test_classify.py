"""finsent classify: every format in and out, the one scorer, repeats, resuming after a kill, shards, bad input.

The model is the tiny random Phi + its adapter (conftest), in fp32 on the CPU. The headlines are
fictional, written for these tests.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from importlib.metadata import version

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_default_adapter import CLEAR, needs_embedded

from conftest import REPO
from finsent.eval import classify as classify_script
from finsent.eval.headline_tables import read_provenance
from finsent.space.adapter_info import read_info, weights_sha256
from finsent.space.classifier import LABELS, Classifier
from finsent.train.data import text_key

HEADLINES = [
    "Kestrel Oyj raises its full-year operating profit forecast",
    "Norvale Group to cut 450 jobs as orders slump",
    "Ferrow Bank will publish its interim report on 28 April",
    "Ilvento Paper's quarterly sales fall short of analysts' estimates",
    "Tundra Robotics wins a EUR 40 million order from a Nordic utility",
    "Larkspur Mining's operating loss narrowed to EUR 3 million",
    "Quillon Foods keeps its dividend unchanged at EUR 0.40",
]
ADDED = ["label", *LABELS, "status"]
EPOCH = "1764633600"  # SOURCE_DATE_EPOCH: the date a run records, so two runs can be compared byte for byte


def write_csv(path, rows, header=("id", "text", "source")):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run(tmp_path, source, output, adapter, *extra) -> int:
    return classify_script.main([str(source), "-o", str(output), "--adapter", str(adapter), "--load_in_4bit", "false",
                                 "--dtype", "float32", "--quiet", *extra])


@pytest.fixture
def news(tmp_path):
    """Headlines with an empty cell, a blank one and repeats (one differing in case and spaces only)."""
    rows = [(i, text, "wire") for i, text in enumerate(HEADLINES)]
    rows += [(7, "", "wire"), (8, "   ", "desk"), (9, HEADLINES[1], "desk"), (10, "  kestrel OYJ raises its full-year "
             "operating   profit forecast", "desk")]
    return write_csv(tmp_path / "news.csv", rows)


def test_a_csv_becomes_parquet_with_every_column_labels_and_provenance(tmp_path, news, evaluated, capsys):
    out = tmp_path / "labelled.parquet"
    assert run(tmp_path, news, out, evaluated, "--chunk_rows", "3") == 0
    table = pq.read_table(out)
    assert table.column_names == ["id", "text", "source", *ADDED]
    with open(news, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for name in ("id", "text", "source"):  # the input's cells, as they were
        assert table.column(name).to_pylist() == [row[name] for row in rows]
    status = table.column("status").to_pylist()
    assert status == [""] * 7 + ["empty", "empty", "", ""]
    probs = np.stack([table.column(label).to_numpy(zero_copy_only=False) for label in LABELS], axis=1)
    labelled = probs[[s == "" for s in status]]
    assert np.allclose(labelled.sum(axis=1), 1) and np.isnan(probs[7:9]).all()
    assert table.column("label").to_pylist() == [LABELS[int(p.argmax())] if s == "" else ""
                                                 for p, s in zip(probs, status, strict=True)]
    assert (probs[9] == probs[1]).all() and (probs[10] == probs[0]).all()  # repeats: the first one's scores

    from peft import PeftConfig

    info = json.loads((evaluated / "finsent.json").read_text())
    provenance = read_provenance(out)
    assert provenance["adapter"] == str(evaluated)
    assert provenance["base_model"] == PeftConfig.from_pretrained(str(evaluated)).base_model_name_or_path
    assert provenance["adapter_weights_sha256"] == weights_sha256(evaluated)
    assert provenance["prompt_version"] == info["prompt_version"] and provenance["temperature"] == info["temperature"]
    assert provenance["label_prior"] == "balanced" and provenance["finsent_version"] == version("finsent")
    assert provenance["rows"] == 11 and provenance["text_column"] == "text" and provenance["created"]
    assert provenance["counts"] == {"labelled": 9, "scored": 7, "repeats": 2, "empty": 2}
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("classify: 11 rows, 9 labelled (7 scored, 2 repeats), 2 skipped (2 empty); ")
    assert line.endswith(f"-> {out}") and "headlines/s" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labelled.parquet", "news.csv"]  # the parts are gone


def test_explain_adds_each_headlines_top_words_as_json_and_keeps_its_probabilities(tmp_path, news, evaluated):
    from finsent.space.classifier import load_classifier
    from finsent.space.explain import classifier_scorer, explain

    plain, why = tmp_path / "plain.parquet", tmp_path / "why.parquet"
    assert run(tmp_path, news, plain, evaluated, "--chunk_rows", "3") == 0
    assert run(tmp_path, news, why, evaluated, "--chunk_rows", "3", "--explain", "2") == 0
    table, before = pq.read_table(why), pq.read_table(plain)
    assert table.column_names == ["id", "text", "source", *ADDED, "explanation"]
    probs = np.stack([table.column(label).to_numpy(zero_copy_only=False) for label in LABELS], axis=1)
    probs_before = np.stack([before.column(label).to_numpy(zero_copy_only=False) for label in LABELS], axis=1)
    assert np.allclose(probs, probs_before, atol=1e-5, equal_nan=True)  # fp32: one batch or another, the same
    texts, status = table.column("text").to_pylist(), table.column("status").to_pylist()
    explanations = table.column("explanation").to_pylist()
    assert [e is None for e in explanations] == [s != "" for s in status]  # the empty rows: none
    assert explanations[9] == explanations[1] and explanations[10] == explanations[0]  # repeats: the first one's
    from finsent.eval.evaluate import adapter_base

    scorer = load_classifier(adapter_base(str(evaluated)), str(evaluated), load_in_4bit="false", dtype="float32")
    for row in (0, 2, 5):
        words = json.loads(explanations[row])
        assert len(words) == 2 and words[0]["weight"] >= words[1]["weight"]
        assert all(texts[row][w["start"]:w["end"]] == w["word"] for w in words)
        expected = explain(texts[row], classifier_scorer(scorer))
        assert [w["word"] for w in words] == [w.text for w in expected.top(2)]
        assert [w["weight"] for w in words] == pytest.approx([expected.weight(w) for w in expected.top(2)], abs=1e-4)


def test_app_evaluate_and_classify_give_the_same_probabilities(tmp_path, tiny_phi, evaluated):
    """One scorer: with a temperature and a skewed training mix to shift, the three agree to the last bit."""
    import shutil

    from finsent.eval import evaluate
    from finsent.space.app import Service, Settings

    adapter = tmp_path / "adapter"
    shutil.copytree(evaluated, adapter)
    info = json.loads((adapter / "finsent.json").read_text())
    info.update(temperature=1.7, train_label_counts={"negative": 30, "neutral": 200, "positive": 70})
    (adapter / "finsent.json").write_text(json.dumps(info))
    texts = HEADLINES[:5]

    app = Service(Settings(base_model=str(tiny_phi), adapter=str(adapter), load_in_4bit="false"))
    from_app = np.array([[probs[label] for label in LABELS] for probs in app.classify_many(texts)[0]])
    args = evaluate.make_parser().parse_args(["--adapter", str(adapter)])
    _, _, from_evaluate = evaluate.predict_run(args, str(tiny_phi), str(adapter), texts, ["neutral"] * 5)
    out = tmp_path / "out.parquet"
    assert classify_script.main([write_csv(tmp_path / "in.csv", enumerate(texts), ("id", "text")).as_posix(),
                                 "-o", str(out), "--adapter", str(adapter), "--load_in_4bit", "false", "--quiet"]) == 0
    table = pq.read_table(out)
    from_classify = np.stack([table.column(label).to_numpy() for label in LABELS], axis=1)
    assert np.array_equal(from_app, from_evaluate) and np.array_equal(from_app, from_classify)
    assert read_provenance(out)["temperature"] == 1.7 and read_provenance(out)["log_prior_shift"] is not None
    plain = Classifier(app.classifier.model, app.classifier.tokenizer).predict_proba(texts)
    assert not np.allclose(plain, from_classify, atol=1e-3)  # the temperature and the shift did move the scores


@pytest.mark.parametrize("suffix", [".tsv", ".jsonl", ".parquet", ".txt", "save_to_disk"])
def test_every_input_format_gives_the_labels_the_csv_gives(tmp_path, evaluated, suffix):
    import pandas as pd

    frame = pd.DataFrame({"id": [str(i) for i in range(len(HEADLINES))], "text": HEADLINES})
    source = tmp_path / f"news{suffix}"
    if suffix == ".tsv":
        frame.to_csv(source, sep="\t", index=False)
    elif suffix == ".jsonl":
        frame.to_json(source, orient="records", lines=True)
    elif suffix == ".parquet":  # odd row groups, and the headlines as a pandas category (dictionary-encoded)
        categorical = frame.assign(text=frame["text"].astype("category"))
        pq.write_table(pa.Table.from_pandas(categorical, preserve_index=False), source, row_group_size=3)
    elif suffix == ".txt":
        source.write_text("\n".join(HEADLINES) + "\n")
        frame = frame[["text"]]
    else:
        import datasets

        datasets.Dataset.from_pandas(frame).save_to_disk(str(source))
    reference = write_csv(tmp_path / "reference.csv", frame.itertuples(index=False), tuple(frame.columns))
    assert run(tmp_path, reference, tmp_path / "reference.parquet", evaluated, "--chunk_rows", "4") == 0
    assert run(tmp_path, source, tmp_path / "out.parquet", evaluated, "--chunk_rows", "4") == 0
    got, expected = pq.read_table(tmp_path / "out.parquet"), pq.read_table(tmp_path / "reference.parquet")
    assert got.column_names == expected.column_names == [*frame.columns, *ADDED]
    for name in got.column_names:
        assert got.column(name).to_pylist() == expected.column(name).to_pylist(), name


def test_json_lines_cells_that_are_not_headlines_get_a_status_and_keep_their_values(tmp_path, evaluated):
    lines = [{"text": HEADLINES[0], "score": 1, "tags": ["a"]}, {"text": 42, "score": 2.5}, {"text": None},
             {"score": 3}, {"text": "", "tags": {"k": "v"}}]
    source = tmp_path / "feed.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert run(tmp_path, source, tmp_path / "out.csv", evaluated) == 0
    with open(tmp_path / "out.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["text", "score", "tags", *ADDED]
    assert [row["status"] for row in rows] == ["", "not text", "missing", "missing", "empty"]
    assert [row["label"] for row in rows][1:] == [""] * 4 and rows[0]["label"] in LABELS
    assert [row["text"] for row in rows] == [HEADLINES[0], "42", "", "", ""]
    assert [row["score"] for row in rows] == ["1.0", "2.5", "", "3.0", ""]  # one column kind: float
    assert [row["tags"] for row in rows] == ['["a"]', "", "", "", '{"k": "v"}']  # mixed: JSON text
    assert json.loads((tmp_path / "out.csv.json").read_text())["counts"]["not text"] == 1


def test_standard_input_to_standard_output(tiny_phi, evaluated):
    command = [sys.executable, "eval/classify.py", "-", "-o", "-", "--adapter", str(evaluated),
               "--load_in_4bit", "false", "--dtype", "float32", "--quiet"]
    done = subprocess.run(command, cwd=REPO, input="\n".join(HEADLINES[:3]) + "\n\nNorvale Group to cut 450 jobs\n",
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(csv.DictReader(done.stdout.splitlines()))
    assert [row["text"] for row in rows] == [*HEADLINES[:3], "", "Norvale Group to cut 450 jobs"]
    assert [row["status"] for row in rows] == ["", "", "", "empty", ""]
    assert done.stderr.strip().splitlines()[-1].startswith("classify: 5 rows, 4 labelled")
    assert done.stderr.strip().endswith("-> standard output")


def test_a_hub_dataset_id_is_read_as_the_training_readers_read_it(local_hub, tmp_path, evaluated):
    import huggingface_hub

    buffer = pa.BufferOutputStream()
    pq.write_table(pa.table({"sentence": HEADLINES[:3], "desk": ["a", "b", "c"]}), buffer)
    huggingface_hub.create_repo("tester/feed", repo_type="dataset")
    huggingface_hub.upload_file(path_or_fileobj=buffer.getvalue().to_pybytes(), repo_id="tester/feed",
                                path_in_repo="data/train-00000-of-00001.parquet", repo_type="dataset")
    assert run(tmp_path, "tester/feed", tmp_path / "out.parquet", evaluated) == 0
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column("sentence").to_pylist() == HEADLINES[:3] and table.column_names[:2] == ["sentence", "desk"]
    assert read_provenance(tmp_path / "out.parquet")["text_column"] == "sentence"


def scored_texts(monkeypatch) -> list[str]:
    """Every headline the model is asked to score, in order."""
    calls = []
    original = Classifier.predict_proba

    def recording(self, texts, *args, **kwargs):
        calls.extend(texts)
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(Classifier, "predict_proba", recording)
    return calls


def test_repeats_across_chunks_are_scored_once(tmp_path, evaluated, monkeypatch):
    texts = [HEADLINES[i % 3] if i % 2 else HEADLINES[i % 3].upper() for i in range(12)] + HEADLINES[3:]
    source = write_csv(tmp_path / "in.csv", enumerate(texts), ("id", "text"))
    calls = scored_texts(monkeypatch)
    assert run(tmp_path, source, tmp_path / "out.parquet", evaluated, "--chunk_rows", "5") == 0
    assert sorted(map(text_key, calls)) == sorted({text_key(t) for t in texts})  # each distinct headline once
    table = pq.read_table(tmp_path / "out.parquet")
    first = {}
    for key, *probs in zip(map(text_key, texts), *(table.column(label).to_pylist() for label in LABELS), strict=True):
        assert first.setdefault(key, probs) == probs  # a repeat has its first occurrence's scores, exactly
    assert read_provenance(tmp_path / "out.parquet")["counts"]["repeats"] == len(texts) - len(first)


class Stop(Exception):
    """A run that stops in the middle of scoring."""


def test_a_stopped_run_resumes_without_scoring_a_finished_chunk_again(tmp_path, evaluated, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    texts = [f"{name} reports sales of EUR {n} million" for n in range(6) for name in ("Kestrel", "Norvale", "Ferrow")]
    source = write_csv(tmp_path / "in.csv", enumerate(texts), ("id", "text"))
    assert run(tmp_path, source, tmp_path / "whole.parquet", evaluated, "--chunk_rows", "4") == 0

    calls = scored_texts(monkeypatch)
    original = Classifier.predict_proba
    monkeypatch.setattr(Classifier, "predict_proba",
                        lambda self, batch, *a, **k: (_ for _ in ()).throw(Stop()) if len(calls) >= 8
                        else original(self, batch, *a, **k))
    out = tmp_path / "out.parquet"
    with pytest.raises(Stop):  # stopped in the third chunk: two are done
        run(tmp_path, source, out, evaluated, "--chunk_rows", "4")
    assert not out.exists() and len(list((tmp_path / ".out.parquet.parts").glob("part-*.parquet"))) == 2
    monkeypatch.setattr(Classifier, "predict_proba", original)
    calls = scored_texts(monkeypatch)
    assert run(tmp_path, source, out, evaluated, "--chunk_rows", "4") == 0
    assert calls == texts[8:]  # the two finished chunks were not scored again
    assert out.read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    assert not (tmp_path / ".out.parquet.parts").exists()


def test_a_run_stopped_while_writing_the_output_leaves_none_and_scores_nothing_again(tmp_path, evaluated, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    source = write_csv(tmp_path / "in.csv", enumerate(HEADLINES), ("id", "text"))
    assert run(tmp_path, source, tmp_path / "whole.csv", evaluated, "--chunk_rows", "2") == 0
    original = classify_script.fill_repeats
    merged = []
    monkeypatch.setattr(classify_script, "fill_repeats", lambda *args: (_ for _ in ()).throw(Stop()) if len(merged)
                        == 2 else merged.append(1) or original(*args))
    out = tmp_path / "out.csv"
    with pytest.raises(Stop):  # two chunks of the output written, into the parts folder
        run(tmp_path, source, out, evaluated, "--chunk_rows", "2")
    assert not out.exists() and not (tmp_path / "out.csv.json").exists()
    monkeypatch.setattr(classify_script, "fill_repeats", original)
    calls = scored_texts(monkeypatch)
    assert run(tmp_path, source, out, evaluated, "--chunk_rows", "2") == 0
    assert calls == [] and out.read_bytes() == (tmp_path / "whole.csv").read_bytes()


def classify_command(source, out, adapter, *extra):
    return [sys.executable, "eval/classify.py", str(source), "-o", str(out), "--adapter", str(adapter),
            "--load_in_4bit", "false", "--dtype", "float32", "--quiet", "--chunk_rows", "8", *extra]


def test_a_killed_run_started_again_gives_the_uninterrupted_runs_bytes(tmp_path, evaluated):
    """SIGKILL at two moments; the output never exists half-written, and the last run completes it."""
    texts = [f"{name} {verb} {n} %" for n in range(15) for name in ("Kestrel", "Norvale")
             for verb in ("lifts sales by", "cuts costs by", "sees margin of")]
    source = write_csv(tmp_path / "in.csv", enumerate(texts), ("id", "text"))
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    whole = subprocess.run(classify_command(source, tmp_path / "whole.csv", evaluated), cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr[-2000:]
    out, parts = tmp_path / "out.csv", tmp_path / ".out.csv.parts"
    for wanted in (1, 6):  # kill once this many parts are written (of 12)
        run_ = subprocess.Popen(classify_command(source, out, evaluated), cwd=REPO, env=env,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 240
        while len(list(parts.glob("part-*.parquet"))) < wanted and run_.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        run_.send_signal(signal.SIGKILL)
        run_.wait()
        assert not out.exists() or run_.returncode == 0  # complete, or not there at all
    last = subprocess.run(classify_command(source, out, evaluated), cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert last.returncode == 0 or "exists" in last.stderr, last.stderr[-2000:]
    assert out.read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert (tmp_path / "out.csv.json").read_text() == (tmp_path / "whole.csv.json").read_text().replace(
        str(tmp_path / "whole.csv"), str(out))
    assert not parts.exists()


def test_two_processes_give_one_process_output(tmp_path, evaluated):
    """accelerate launch shards the chunks over 2 CPU processes (gloo); the merge is in input order.

    Each shard process runs 1 thread (torchrun's default), so the 1-process run does too: the thread
    count moves a score's last bits (~2e-7 seen), as the split of a matrix product's sums follows it.
    """
    texts = [f"{name} {verb} {n}" for n in range(10) for name in ("Kestrel", "Norvale", "Ferrow")
             for verb in ("orders rise", "profit falls")]
    source = write_csv(tmp_path / "in.csv", enumerate(texts + texts[:7]), ("id", "text"))
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    one = subprocess.run(classify_command(source, tmp_path / "one.parquet", evaluated), cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    two = subprocess.run(launch + classify_command(source, tmp_path / "two.parquet", evaluated)[1:], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    assert (tmp_path / "two.parquet").read_bytes() == (tmp_path / "one.parquet").read_bytes()
    assert read_provenance(tmp_path / "two.parquet")["counts"]["repeats"] == 7


@pytest.mark.parametrize("name, content, extra, message", [
    ("in.csv", b"id,body\n1,Kestrel up\n", [], "no text/headline/sentence column; its columns are ['id', 'body']: "
     "name the headline column with --text_column"),
    ("in.csv", b"id,text\n1,Kestrel up\n", ["--text_column", "title"], "no column 'title'"),
    ("in.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", [], "neither UTF-8 nor Latin-1 text; re-save the file as UTF-8"),
    ("in.csv", b"text\nKestrel\x00 up\n", [], "NUL byte at line 2: this is not a text file"),
    ("in.csv", b'text\n"Kestrel up\n', [], "malformed CSV"),
    ("in.csv", b"", [], "the file is empty"),
    ("in.csv", b"text\n", [], "no rows to label"),
    ("in.parquet", b"PAR1 not really", [], "not a readable Parquet file"),
    ("in.jsonl", b'{"text": "Kestrel up"}\n[1, 2]\n', [], "line 2: a JSON list, not an object"),
    ("in.jsonl", b'{"text": "Kestrel up"}\n{"text": \n', [], "line 2: not JSON"),
    ("in.xlsx", b"PK", [], "unknown format '.xlsx'"),
    ("in.csv", b"text,label\nKestrel up,positive\n", [], "it already has column(s) ['label']; pass --prefix pred_"),
    ("in.csv", b"text\nKestrel up\n", ["--chunk_rows", "0"], "--chunk_rows 0: give a whole number of 1 or more"),
    ("in.csv", b"text\nKestrel up\n", ["--explain", "-1"], "--explain -1: give how many words to list"),
    ("in.csv", b"text,explanation\nKestrel up,x\n", ["--explain", "3"], "already has column(s) ['explanation']"),
    ("missing.csv", None, [], "missing.csv: no such file"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, evaluated, capsys, name, content, extra, message):
    source = tmp_path / name
    if content is not None:
        source.write_bytes(content)
    before = sorted(tmp_path.iterdir())
    assert run(tmp_path, source, tmp_path / "out.parquet", evaluated, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err, err
    assert sorted(tmp_path.iterdir()) == before


def test_an_existing_output_is_refused_unless_overwrite_and_prefix_keeps_input_columns(tmp_path, evaluated, capsys):
    source = write_csv(tmp_path / "in.csv", [("Kestrel up", "positive")], ("text", "label"))
    out = tmp_path / "out.csv"
    out.write_text("keep me\n")
    assert run(tmp_path, source, out, evaluated, "--prefix", "pred_") == 2
    assert "out.csv: it exists; pass --overwrite" in capsys.readouterr().err and out.read_text() == "keep me\n"
    assert run(tmp_path, source, out, evaluated, "--prefix", "pred_", "--overwrite") == 0
    assert out.read_text().splitlines()[0] == "text,label,pred_label,pred_negative,pred_neutral,pred_positive,pred_status"


class Terminal:
    """Standard error as a terminal: what classify draws its progress bar on."""

    def __init__(self):
        import io

        self.buffer = io.StringIO()

    def isatty(self):
        return True

    def write(self, text):
        return self.buffer.write(text)

    def flush(self):
        pass


@pytest.mark.parametrize("quiet", [False, True])
def test_a_progress_bar_with_rate_and_eta_on_a_terminal_unless_quiet(tmp_path, evaluated, monkeypatch, quiet):
    source = write_csv(tmp_path / "in.csv", enumerate(HEADLINES), ("id", "text"))
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    argv = [str(source), "-o", str(tmp_path / "out.csv"), "--adapter", str(evaluated), "--load_in_4bit", "false",
            "--chunk_rows", "3"]
    assert classify_script.main(argv + (["--quiet"] if quiet else [])) == 0
    shown = terminal.buffer.getvalue()
    assert ("classify:" in shown and f"{len(HEADLINES)}/{len(HEADLINES)} [" in shown and "row/s]" in shown) != quiet
    assert shown.rstrip().splitlines()[-1].startswith(f"classify: {len(HEADLINES)} rows, ")


@pytest.mark.slow
@needs_embedded
def test_the_default_labels_clear_headlines_as_the_shipped_adapter_does(tmp_path):
    """No --adapter, no --base_model: the shipped adapter on the embedded SmolLM2, as the app serves it."""
    texts = [text for label in LABELS for text in CLEAR[label]]
    source = write_csv(tmp_path / "in.csv", enumerate(texts), ("id", "text"))
    assert classify_script.main([str(source), "-o", str(tmp_path / "out.csv"), "--quiet"]) == 0
    with open(tmp_path / "out.csv", newline="") as handle:
        assert [row["label"] for row in csv.DictReader(handle)] == [label for label in LABELS for _ in CLEAR[label]]
    provenance = read_provenance(tmp_path / "out.csv")
    assert provenance["adapter_weights_sha256"] == weights_sha256(REPO / "space" / "default-adapter")
    assert provenance["temperature"] == read_info(str(REPO / "space" / "default-adapter"))["temperature"]
    assert provenance["label_prior"] == "balanced"
