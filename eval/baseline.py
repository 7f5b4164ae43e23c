"""A classical baseline for context: TF-IDF over word 1-2 grams and a logistic regression.

    from finsent.eval.baseline import fit_tfidf, tfidf_baseline
    predictions, info = tfidf_baseline(splits["train"], splits["test"])
    probabilities = fit_tfidf(splits["train"]).predict_proba(splits["test"]["text"])  # (n, 3), as Classifier's

Frames have columns sentiment,text, as `finsent.train.data` produces them. The model
sees the same training rows as the fine-tuned one and, like it, decides for equal
label priors (its classes weighted to balance, which changes nothing on a balanced
training set), so the comparison is fair: it shows how much of the score word
counts alone already reach.
"""

from __future__ import annotations

import logging
import time

import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from finsent.space.classifier import LABELS

logger = logging.getLogger(__name__)

MODEL = "TF-IDF (1-2 grams) + logistic regression"


def fit_tfidf(train: pd.DataFrame, seed: int = 42):
    """The pipeline fitted on `train`: `predict(texts)` gives labels, `predict_proba(texts)` an (n, 3) array in
    LABELS order where `train` holds all three (its columns are the labels seen, sorted, as LABELS are)."""
    check_training_rows(train)
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
        LogisticRegression(max_iter=1000, class_weight="balanced", random_state=seed),
    )
    model.fit(train["text"].tolist(), train["sentiment"].tolist())
    return model


def tfidf_baseline(train: pd.DataFrame, test: pd.DataFrame, seed: int = 42) -> tuple[list[str], dict]:
    """Fit on `train`, predict `test["text"]`; return (predictions, info: the model's name, rows and seconds, and
    the fitted `pipeline` for more predictions)."""
    _check_columns("test", test, ("text",))
    start = time.perf_counter()
    model = fit_tfidf(train, seed)
    predictions = [str(label) for label in model.predict(test["text"].tolist())]
    seconds = time.perf_counter() - start
    logger.info("%s: fitted on %d rows, predicted %d in %.2fs", MODEL, len(train), len(test), seconds)
    return predictions, {"model": MODEL, "train_rows": len(train), "seconds": seconds, "pipeline": model}


def check_training_rows(train: pd.DataFrame) -> None:
    """A ValueError unless `train` has columns sentiment,text and only LABELS as labels."""
    _check_columns("train", train, ("sentiment", "text"))
    unknown = sorted(set(train["sentiment"]) - set(LABELS))
    if unknown:
        raise ValueError(f"train labels {unknown} are not in {', '.join(LABELS)}")


def _check_columns(name: str, frame: pd.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"the {name} frame lacks column(s) {', '.join(missing)}; expected sentiment,text")
