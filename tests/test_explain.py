"""The explainer (space/explain.py): its words, its arithmetic on a scripted scorer, and its one call on a real
scorer (the tiny Phi, its texts packed) against scoring each variant alone."""

from __future__ import annotations

import numpy as np
import pytest

from finsent.space.classifier import LABELS, load_classifier
from finsent.space.explain import MAX_UNITS, batch_scorer, classifier_scorer, explain, explain_many, units, without


def words(text):
    return [text[start:end] for start, end in units(text)]


@pytest.mark.parametrize("text, expected", [
    ("Kessel Bank set aside another EUR 300 million for loan losses.",
     ["Kessel", "Bank", "set", "aside", "another", "EUR 300 million", "for", "loan", "losses."]),
    ("Sales up 12.5 % - margin down 40 basis points",
     ["Sales", "up", "12.5 % -", "margin", "down", "40 basis points"]),
    ("Profit rose to $3.2bn, beating forecasts", ["Profit", "rose", "to", "$3.2bn,", "beating", "forecasts"]),
    ("Net sales 5 million, euros higher", ["Net", "sales", "5 million,", "euros", "higher"]),  # a comma ends it
    ("Orders: 120 units", ["Orders:", "120", "units"]),
    ("Margin 5 per cent, EUR 2 per share", ["Margin", "5 per cent,", "EUR 2", "per", "share"]),
    ("- Norvale cuts jobs", ["- Norvale", "cuts", "jobs"]),
    ("Up", ["Up"]),
    ("", []),
])
def test_numbers_keep_their_units_and_punctuation_its_word(text, expected):
    assert words(text) == expected


def test_a_long_text_is_explained_by_at_most_max_units_phrases_covering_it():
    text = " ".join(f"word{i}" for i in range(3 * MAX_UNITS + 7))
    spans = units(text)
    assert len(spans) == MAX_UNITS
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False))  # in order, apart
    assert " ".join(text[s:e] for s, e in spans) == text  # every word in exactly one phrase


def test_leaving_a_word_out_keeps_one_space():
    text = "Kessel  Bank set aside"
    assert without(text, [(8, 12)]) == "Kessel set aside"
    assert without(text, [(0, 6)]) == "Bank set aside"
    assert without("Up", [(0, 2)]) == ""


def scripted_proba(texts):
    """One word decides: 'plunges' makes it negative (0.9), otherwise neutral (0.8); 'Norvale' nudges positive."""
    rows = []
    for text in texts:
        if "plunges" in text.split():
            row = [0.9, 0.07, 0.03]
        else:
            row = [0.1, 0.8, 0.1]
        if "Norvale" in text.split():
            row = [row[0] - 0.02, row[1], row[2] + 0.02]
        rows.append(row)
    return np.array(rows)


scripted = batch_scorer(scripted_proba)


def test_the_deciding_word_weighs_most_and_leaving_it_out_flips_the_label():
    explained = explain("Norvale profit plunges after a weak quarter", scripted)
    assert explained.label == "negative"
    top = explained.top(1)[0]
    assert top.text == "plunges" and explained.weight(top) == pytest.approx(0.8)
    assert top.change == pytest.approx({"negative": 0.8, "neutral": -0.73, "positive": -0.07})
    others = [explained.weight(w) for w in explained.words if w is not top]
    assert max(others) < explained.weight(top) and max(map(abs, others)) < 0.05
    flipped = scripted_proba([without(explained.text, [(top.start, top.end)])])[0]
    assert LABELS[int(np.argmax(flipped))] != explained.label


def test_the_answer_as_data_and_as_highlighted_text():
    explained = explain("Norvale  profit plunges", scripted)
    data = explained.as_dict()
    assert data["label"] == "negative" and set(data["probabilities"]) == set(LABELS)
    assert [w["word"] for w in data["words"]] == ["Norvale", "profit", "plunges"]
    assert all(explained.text[w["start"]:w["end"]] == w["word"] for w in data["words"])
    assert data["words"][2]["weight"] == pytest.approx(0.8)
    pieces = explained.highlighted()
    assert "".join(piece for piece, _ in pieces) == explained.text  # the text whole, spaces unweighted
    assert pieces[1] == ("  ", None)


def test_the_text_and_its_variants_go_to_the_scorer_in_one_call():
    calls = []

    def counting(text, texts):
        calls.append((text, len(texts)))
        return scripted(text, texts)

    assert len(explain("Kestrel wins an order", counting).words) == 4
    assert len(explain("Up", counting).words) == 1
    assert calls == [("Kestrel wins an order", 4), ("Up", 1)]


@pytest.fixture(scope="module")
def tiny_classifier(tiny_phi):
    return load_classifier(str(tiny_phi), dtype="float32")


@pytest.mark.parametrize("text", [
    "Kessel Bank set aside another EUR 300 million for loan losses in the third quarter",
    "Up",
    "Norvale " * 60,  # more words than MAX_UNITS: phrases
])
def test_one_call_gives_what_each_variant_scores_alone_in_fp32(tiny_classifier, text):
    text = text.strip()
    explained = explain(text, classifier_scorer(tiny_classifier))
    spans = units(text)
    alone = np.stack([tiny_classifier.predict_proba([t], batch_size=1)[0]
                      for t in [text, *(without(text, [s]) for s in spans)]])
    assert np.abs(alone[0] - [explained.probabilities[k] for k in LABELS]).max() < 1e-5
    for i, word in enumerate(explained.words):
        change = alone[0] - alone[1 + i]
        assert np.abs(change - [word.change[k] for k in LABELS]).max() < 1e-5, word.text
    assert max(abs(explained.weight(w)) for w in explained.words) > 1e-4  # the random model does react to words


def test_several_texts_explained_in_one_call_as_each_alone(tiny_classifier):
    texts = ["Kestrel Oyj lifts its outlook", "Up", "Norvale cuts 40 jobs as orders slump"]
    calls = []

    def predict_proba(rows):
        calls.append(len(rows))
        return tiny_classifier.predict_proba(rows, packed=True)

    together = explain_many(texts, predict_proba, [False, True, False])
    assert calls == [sum(len(units(t)) + 1 for t in texts)]
    assert [e.truncated for e in together] == [False, True, False]
    for text, explained in zip(texts, together, strict=True):
        alone = explain(text, classifier_scorer(tiny_classifier))
        assert [w.text for w in explained.words] == [w.text for w in alone.words]
        assert [explained.probabilities[k] for k in LABELS] == pytest.approx([alone.probabilities[k] for k in LABELS],
                                                                              abs=1e-5)
        for word, single in zip(explained.words, alone.words, strict=True):
            assert [word.change[k] for k in LABELS] == pytest.approx([single.change[k] for k in LABELS], abs=1e-5)
