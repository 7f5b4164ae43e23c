"""The TF-IDF baseline on invented headlines whose sentiment words are plain."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from finsent.eval.baseline import tfidf_baseline
from finsent.space.classifier import LABELS

PHRASES = {
    "negative": [
        "profit falls", "loss widens", "sales drop sharply", "shares plunge after warning", "cuts 500 jobs",
        "misses forecasts", "net loss deepens", "revenue declines", "issues profit warning", "shares fall",
    ],
    "neutral": [
        "publishes annual report", "announces date of general meeting", "appoints new board secretary",
        "publishes interim report", "moves headquarters to new address", "announces meeting schedule",
        "publishes financial calendar", "names auditor for the period", "report is available online",
        "announces annual general meeting",
    ],
    "positive": [
        "profit rises", "sales grow strongly", "wins large order", "shares rise after results", "beats forecasts",
        "net profit increases", "revenue grows", "raises outlook", "operating profit rises", "shares jump",
    ],
}
TRAIN_COMPANIES = ["Nokia", "Fiskars", "Kone", "Wartsila", "Stora Enso"]
TEST_COMPANIES = ["Outokumpu", "Elisa"]  # unseen names: only the sentiment words carry over


def frame(companies: list[str]) -> pd.DataFrame:
    rows = [
        (label, f"{companies[i % len(companies)]} {phrase}")
        for label, phrases in PHRASES.items()
        for i, phrase in enumerate(phrases)
    ]
    return pd.DataFrame(rows, columns=["sentiment", "text"])


def test_baseline_beats_chance_on_easy_headlines():
    train, test = frame(TRAIN_COMPANIES), frame(TEST_COMPANIES)  # 10 headlines per label in each
    predictions, info = tfidf_baseline(train, test)
    assert len(predictions) == len(test) == 30
    assert set(predictions) <= set(LABELS) and all(type(p) is str for p in predictions)
    accuracy = sum(p == t for p, t in zip(predictions, test["sentiment"], strict=True)) / len(test)
    assert accuracy >= 0.8  # chance is 1/3; the test phrases are the training phrases under other names
    assert info["model"] == "TF-IDF (1-2 grams) + logistic regression"
    assert info["train_rows"] == 30
    assert tfidf_baseline(train, test, seed=42)[0] == predictions  # deterministic


def test_baseline_predicts_unseen_wording():
    train = frame(TRAIN_COMPANIES)
    test = pd.DataFrame({"text": ["Kone profit rises again", "Nokia loss widens again", "Elisa publishes report"]})
    predictions, _ = tfidf_baseline(train, test)  # test needs no sentiment column
    assert predictions == ["positive", "negative", "neutral"]


@pytest.mark.parametrize(
    ("train", "message"),
    [
        (pd.DataFrame({"text": ["profit rises"]}), "train frame lacks column(s) sentiment"),
        (pd.DataFrame({"sentiment": ["good"], "text": ["profit rises"]}), "train labels ['good']"),
    ],
)
def test_baseline_refuses_bad_frames(train, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        tfidf_baseline(train, frame(TEST_COMPANIES))
