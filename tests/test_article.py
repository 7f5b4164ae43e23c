"""Long texts scored by sentence: the split (space/article.py), the summary, `finsent classify --by_sentence`
with `--sentences`, and the app's Article tab. The articles are fictional, written for these tests."""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_classify import EPOCH, Stop, scored_texts, write_csv
from test_classify import run as run_classify
from test_default_adapter import needs_embedded

from finsent.eval import classify as classify_script
from finsent.eval import classify_sentences
from finsent.eval.headline_tables import read_provenance
from finsent.space.article import SUMMARY, pieces, split, splitter, summarize
from finsent.space.classifier import LABELS, Classifier

ARTICLES = [
    "Kestrel Oyj raised its full-year forecast. Net sales rose 18 % to EUR 412 million.",
    "Norvale Group will cut 450 jobs as orders slump. Its E.U. unit swung to a loss of EUR 3.5 mln.\n\n"
    "Norvale Corp. will publish its interim report on 28 April.",
    "Ferrow Bank N.V. keeps its dividend unchanged",
]


@pytest.mark.parametrize("text, expected", [
    ("Q3 E.U. sales rose 5.2 %. Shares fell.", ["Q3 E.U. sales rose 5.2 %.", "Shares fell."]),
    ("Kestrel Inc. raised its forecast. Norvale Corp. cut 450 jobs! Why?",
     ["Kestrel Inc. raised its forecast.", "Norvale Corp. cut 450 jobs!", "Why?"]),
    ("  Dr. Vance of Ilvento Ltd. said sales rose 1,234.5 mn vs. 1,100.0 mn.\n\nThe U.S. unit grew  ",
     ["Dr. Vance of Ilvento Ltd. said sales rose 1,234.5 mn vs. 1,100.0 mn.", "The U.S. unit grew"]),
    ("Tundra wins an order\nHalvard raises its outlook", ["Tundra wins an order", "Halvard raises its outlook"]),
    (" \n\t ", []),
])
def test_sentences_and_their_offsets_map_back_to_the_text(text, expected):
    sentences = split(text)
    assert [s.text for s in sentences] == expected
    assert all(text[s.start:s.end] == s.text for s in sentences)
    assert "".join("".join(s.text.split()) for s in sentences) == "".join(text.split())  # all but spaces, in order


def test_a_long_line_is_split_in_windows_as_it_is_whole(monkeypatch):
    from finsent.space import article

    text = "Kestrel Oyj raised its forecast. Norvale cut 450 jobs as orders slumped. " * 40  # 2,920 characters
    whole = split(text)
    monkeypatch.setattr(article, "WINDOW", 500)  # pysbd's time grows with the square of what it is given
    assert split(text) == whole and len(whole) == 80


def test_an_over_long_sentence_is_split_into_pieces_that_fit_and_cover_it():
    text = "Kestrel Oyj said " + "that orders rose again " * 12 + "and " + "x" * 70 + " in all."
    fits = lambda piece: len(piece) <= 40  # noqa: E731 - the model's window, in characters here
    sentences = split(text, fits)
    assert len(sentences) > 1 and all(fits(s.text) for s in sentences)
    assert all(text[s.start:s.end] == s.text for s in sentences)
    assert "".join("".join(s.text.split()) for s in sentences) == "".join(text.split())  # all, once, in order
    assert all(len(a.text) + 1 + len(b.text.split()[0]) > 40 for a, b in zip(sentences, sentences[1:], strict=False))
    assert sentences[-3].text.endswith(" and") and [s.text for s in sentences[-2:]] == ["x" * 40, "x" * 30 + " in all."]
    assert pieces(text, 0, 5, None) == [(0, 5)]


def test_pieces_fit_the_tiny_models_window(tiny_phi):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    classifier = Classifier(AutoModelForCausalLM.from_pretrained(tiny_phi), AutoTokenizer.from_pretrained(tiny_phi))
    text = " ".join(f"orders{i}" for i in range(600)) + "."  # over 384 tokens: cut, were it one sentence
    assert classifier.fit(text)[1]
    sentences = split(text, lambda piece: not classifier.fit(piece)[1])
    assert len(sentences) > 1 and not any(classifier.fit(s.text)[1] for s in sentences)
    assert " ".join(s.text for s in sentences) == text  # whole words, none lost
    longest = max(len(classifier.tokenizer(s.text).input_ids) for s in sentences[:-1])
    assert longest > 300  # each as long as fits, not a little piece


def test_the_summary_of_hand_made_probabilities():
    probs = [[0.7, 0.2, 0.1],   # score -0.6
             [0.1, 0.3, 0.6],   # score +0.5
             [0.2, 0.7, 0.1],   # score -0.1
             [0.6, 0.2, 0.2]]   # score -0.4
    summary = summarize(["a", "b", "c", "d"], probs)
    assert list(summary) == list(SUMMARY)
    # means: negative (0.7+0.1+0.2+0.6)/4 = 0.4, neutral 1.4/4 = 0.35, positive 1.0/4 = 0.25
    assert summary["label"] == "negative"
    assert [summary[label] for label in LABELS] == pytest.approx([0.4, 0.35, 0.25])
    assert summary["score"] == pytest.approx((-0.6 + 0.5 - 0.1 - 0.4) / 4)  # -0.15 = 0.25 - 0.4
    assert (summary["sentences"], summary["n_negative"], summary["n_neutral"], summary["n_positive"]) == (4, 2, 1, 1)
    assert (summary["most_negative"], summary["most_positive"]) == ("a", "b")
    one = summarize(["only"], [[0.2, 0.5, 0.3]])
    assert (one["label"], one["score"], one["most_negative"], one["most_positive"]) == ("neutral", pytest.approx(0.1),
                                                                                         "only", "only")


@pytest.fixture
def articles(tmp_path):
    """Articles, an empty cell, an exact repeat, a repeat in other case (another text here) and one sentence of 600
    words: over the tiny model's window."""
    texts = [*ARTICLES, "", ARTICLES[1], ARTICLES[0].upper(), "Orders rose " + "and rose " * 300 + "again."]
    return write_csv(tmp_path / "articles.csv", enumerate(texts), ("id", "text")), texts


def run(tmp_path, source, output, adapter, *extra) -> int:
    return run_classify(tmp_path, source, output, adapter, *map(str, extra))


def read(path):
    return pq.read_table(path).to_pylist() if str(path).endswith(".parquet") else list(csv.DictReader(open(path)))


def test_by_sentence_scores_each_sentence_and_summarises_each_text(tmp_path, articles, evaluated, monkeypatch,
                                                                    capsys):
    source, texts = articles
    out, sentences_out = tmp_path / "scored.parquet", tmp_path / "sentences.parquet"
    calls = scored_texts(monkeypatch)
    assert run(tmp_path, source, out, evaluated, "--by_sentence", "--sentences", sentences_out,
               "--chunk_rows", "4") == 0
    docs, sentences = read(out), read(sentences_out)
    assert pq.read_table(out).column_names == ["id", "text", *SUMMARY, "status"]
    assert [d["status"] for d in docs] == ["", "", "", "empty", "", "", ""]  # never truncated
    assert sorted(calls) == sorted({s["text"] for s in sentences})  # each distinct sentence once...
    assert len(calls) == len(set(calls))
    assert [s["row"] for s in sentences] == sorted(s["row"] for s in sentences)
    for row, doc in enumerate(docs):
        mine = [s for s in sentences if s["row"] == row]
        if doc["status"]:
            assert mine == [] and doc["label"] == "" and doc["score"] is None and doc["sentences"] is None
            continue
        assert [s["sentence"] for s in mine] == list(range(len(mine))) and doc["sentences"] == len(mine)
        assert all(texts[row][s["start"]:s["end"]] == s["text"] for s in mine)
        probs = np.array([[s[label] for label in LABELS] for s in mine])
        assert np.allclose(probs.sum(axis=1), 1)
        expected = summarize([s["text"] for s in mine], probs)
        assert {name: doc[name] for name in SUMMARY} == pytest.approx(expected)
        assert [s["score"] for s in mine] == pytest.approx(list(probs[:, 2] - probs[:, 0]))
        assert [s["label"] for s in mine] == [LABELS[i] for i in probs.argmax(axis=1)]
    assert [s["text"] for s in sentences if s["row"] == 1][:2] == ["Norvale Group will cut 450 jobs as orders slump.",
                                                                 "Its E.U. unit swung to a loss of EUR 3.5 mln."]
    assert docs[4] == {**docs[1], "id": "4"}  # the exact repeat: its first occurrence's summary, its own id
    assert [{**s, "row": 1} for s in sentences if s["row"] == 4] == [s for s in sentences if s["row"] == 1]
    assert docs[5]["sentences"] == 2 and docs[6]["sentences"] > 1  # the upper-case copy is a text of its own
    provenance = read_provenance(out)
    assert provenance["by_sentence"] is True and provenance["splitter"] == splitter() == "pysbd 0.3.4"
    assert provenance["counts"] == {"labelled": 6, "scored": 5, "repeats": 1, "empty": 1,
                                    "sentences": len(sentences)}
    assert read_provenance(sentences_out)["sentences"] == len(sentences)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"classify: 7 rows, 6 labelled (5 scored, 1 repeats), 1 skipped (1 empty), "
                           f"{len(sentences)} sentences; ") and "texts/s" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["articles.csv", "scored.parquet", "sentences.parquet"]


def test_the_long_sentence_is_scored_in_pieces_that_fit(tmp_path, articles, evaluated):
    from finsent.eval.evaluate import adapter_base
    from finsent.space.classifier import load_classifier

    source, texts = articles
    assert run(tmp_path, source, tmp_path / "out.csv", evaluated, "--by_sentence", "--sentences",
               tmp_path / "sentences.csv") == 0
    pieces_ = [s for s in read(tmp_path / "sentences.csv") if s["row"] == "6"]
    classifier = load_classifier(adapter_base(str(evaluated)), str(evaluated), load_in_4bit="false",
                                 dtype="float32")
    assert classifier.fit(texts[6])[1] and len(pieces_) > 1  # cut were it scored whole
    assert not any(classifier.fit(s["text"])[1] for s in pieces_)
    assert " ".join(s["text"] for s in pieces_) == texts[6]
    assert read(tmp_path / "out.csv")[6]["status"] == ""


def test_a_stopped_run_resumes_to_the_same_bytes_in_both_outputs(tmp_path, evaluated, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    texts = [f"{name} reports sales of EUR {n} million. Its outlook is {mood}." for n in range(3)
             for name in ("Kestrel", "Norvale") for mood in ("unchanged", "raised")]
    source = write_csv(tmp_path / "in.csv", enumerate(texts + texts[:3]), ("id", "text"))
    flags = ["--by_sentence", "--chunk_rows", "4"]
    assert run(tmp_path, source, tmp_path / "whole.csv", evaluated, *flags, "--sentences",
               tmp_path / "whole-sentences.csv") == 0

    calls = scored_texts(monkeypatch)
    original = Classifier.predict_proba
    monkeypatch.setattr(Classifier, "predict_proba", lambda self, batch, *a, **k: (_ for _ in ()).throw(Stop())
                        if len(calls) >= 8 else original(self, batch, *a, **k))
    out, sentences = tmp_path / "out.csv", tmp_path / "sentences.csv"
    with pytest.raises(Stop):  # stopped in the third chunk: two are done
        run(tmp_path, source, out, evaluated, *flags, "--sentences", sentences)
    assert not out.exists() and not sentences.exists()
    assert len(list((tmp_path / ".out.csv.parts").glob("part-*.parquet"))) == 2

    monkeypatch.setattr(Classifier, "predict_proba", original)
    monkeypatch.setattr(classify_script, "write_table", lambda *args: (_ for _ in ()).throw(Stop()))
    with pytest.raises(Stop):  # the sentences written, not the texts
        run(tmp_path, source, out, evaluated, *flags, "--sentences", sentences)
    assert sentences.exists() and not out.exists()
    monkeypatch.undo()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    calls = scored_texts(monkeypatch)
    assert run(tmp_path, source, out, evaluated, *flags, "--sentences", sentences) == 0  # this run's own: no refusal
    assert calls == []
    assert out.read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert sentences.read_bytes() == (tmp_path / "whole-sentences.csv").read_bytes()
    assert json.loads((tmp_path / "sentences.csv.json").read_text())["sentences"] == 2 * len(texts + texts[:3])
    assert not (tmp_path / ".out.csv.parts").exists()


@pytest.mark.parametrize("extra, message", [
    (["--sentences", "s.parquet"], "--sentences s.parquet: only with --by_sentence"),
    (["--by_sentence", "--explain", "3"], "--explain: not with --by_sentence"),
    (["--by_sentence", "--sentences", "out.parquet"], "the same file as -o"),
    (["--by_sentence", "--sentences", "s.xlsx"], "write a .parquet or .csv file"),
    (["--by_sentence", "--sentences", "-"], "write a .parquet or .csv file"),
    (["--by_sentence", "--sentences", "kept.csv"], "--sentences kept.csv: it exists; pass --overwrite"),
])
def test_bad_flags_are_one_line_exit_2_and_nothing_written(tmp_path, evaluated, capsys, monkeypatch, extra,
                                                           message):
    monkeypatch.chdir(tmp_path)
    source = write_csv(tmp_path / "in.csv", enumerate(ARTICLES), ("id", "text"))
    (tmp_path / "kept.csv").write_text("keep me\n")
    before = sorted(tmp_path.iterdir())
    assert run(tmp_path, source, "out.parquet", evaluated, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err, err
    assert sorted(tmp_path.iterdir()) == before and (tmp_path / "kept.csv").read_text() == "keep me\n"


def test_the_article_tab_highlights_each_sentence_in_one_call(service, monkeypatch):
    from finsent.space.article_tab import EXAMPLE_ARTICLE, score_article

    calls, predict = [], service.predict
    monkeypatch.setattr(service, "predict", lambda rows, *a, **k: calls.append(list(rows)) or predict(rows, *a, **k))
    pieces_, summary, rows = score_article(service, EXAMPLE_ARTICLE)
    sentences = split(EXAMPLE_ARTICLE)
    assert calls == [[s.text for s in sentences]]  # every sentence in one call
    assert "".join(piece for piece, _ in pieces_) == EXAMPLE_ARTICLE  # the whole text, as pasted
    assert [(piece, label) for piece, label in pieces_ if label] == [(row[1], row[2]) for row in rows]
    assert all(label in LABELS for _, label in pieces_ if label) and len(rows) == len(sentences) == 4
    probs = np.array([row[3:6] for row in rows])
    expected = summarize([row[1] for row in rows], predict([row[1] for row in rows]))
    assert f"score **{expected['score']:+.2f}**" in summary and f"over {len(rows)} sentences" in summary
    assert f"**{expected['label'].capitalize()}**" in summary and np.allclose(probs.sum(axis=1), 1, atol=1e-3)


def test_the_article_tab_refuses_an_empty_or_over_long_text(service):
    import gradio as gr

    from finsent.space.article_tab import MAX_ARTICLE_CHARS, score_article

    with pytest.raises(gr.Error, match="Paste an article first"):
        score_article(service, "  \n")
    with pytest.raises(gr.Error, match=f"At most {MAX_ARTICLE_CHARS:,} characters an article; this one has 10,001"):
        score_article(service, "x" * (MAX_ARTICLE_CHARS + 1))


def test_the_article_tab_through_gradio_client(tiny_phi, evaluated):
    from gradio_client import Client

    from conftest import free_port
    from finsent.space.app import Settings, build_app

    app = build_app(Settings(base_model=str(tiny_phi), adapter=str(evaluated), load_in_4bit="false"))
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, analytics_enabled=False)
        highlighted, summary, table = client.predict(ARTICLES[1], api_name="/score_article")
        assert [row[1] for row in table["data"]] == [s.text for s in split(ARTICLES[1])]
        assert {piece["class_or_confidence"] for piece in highlighted} <= {*LABELS, None}
        assert "over 3 sentences" in summary
        assert "score_article" not in json.dumps(client.view_api(return_format="dict")["named_endpoints"])
    finally:
        app.close()


@pytest.mark.slow
@needs_embedded
def test_the_shipped_model_finds_the_most_negative_and_most_positive_sentences(tmp_path):
    text = ("Ferrow Bank will publish its interim report on 28 April. Norvale Group will cut 450 jobs as orders "
            "slump. Tundra Robotics won a EUR 40 million order from a Nordic utility. The annual general meeting "
            "will be held in Espoo.")
    source = write_csv(tmp_path / "in.csv", [(0, text)], ("id", "text"))
    assert classify_script.main([str(source), "-o", str(tmp_path / "out.parquet"), "--by_sentence", "--quiet"]) == 0
    [doc] = read(tmp_path / "out.parquet")
    assert doc["sentences"] == 4 and doc["status"] == ""
    assert doc["most_negative"] == "Norvale Group will cut 450 jobs as orders slump."
    assert doc["most_positive"] == "Tundra Robotics won a EUR 40 million order from a Nordic utility."


@pytest.fixture(scope="module")
def service(tiny_phi, evaluated):
    from finsent.space.app import Service, Settings

    return Service(Settings(base_model=str(tiny_phi), adapter=str(evaluated), load_in_4bit="false"))


def test_classify_sentences_help_names_it():
    assert "--by_sentence" in classify_script.make_parser().format_help()
    assert classify_sentences.SCHEMA.names[:4] == ["row", "sentence", "start", "end"]
