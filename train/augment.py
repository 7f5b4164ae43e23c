"""Templated training rows for the capabilities the behaviour suite finds failing (issue 22): `--augment N`.

    from finsent.train.augment import draw_rows
    rows = draw_rows(100)  # 100 rows per capability, 600 in all: columns sentiment, text, capability

`finsent train --augment N` adds N rows per capability (6 capabilities, so 6 x N rows) to the training
split only, after the split is drawn: the test and eval rows, and the split's sha256 in summary.json,
are the real data's alone. The rows come from train/augment_templates.py, written apart from the
suite's test templates (eval/behaviour_cases.py). They are the same for the same N and seed, no text
twice (compared by text_key, as the split compares texts), and nested: each capability's rows for
a smaller N are the first of its rows for a larger one, so trials of several N differ by rows added.

Before anything trains, `for_training` refuses (UsageError) rows that are behaviour test cases, as
`finsent evaluate --behaviour` draws them and in a larger draw, or test or eval rows of the split:
otherwise the suite, or the test split, would measure memorised sentences.
"""

from __future__ import annotations

import random
import re

import numpy as np
import pandas as pd

from finsent.eval.behaviour import CASES, SEED, draw_suite, fields, fill
from finsent.eval.behaviour import draw_values as _draw_values
from finsent.space.classifier import LABELS
from finsent.train import augment_templates
from finsent.train.augment_templates import CAPABILITIES
from finsent.train.data import COLUMNS, UsageError, rows_sha256, text_key

TEMPLATES = "finsent training templates, v3"  # change it when the templates change: the rows change with them
TRIES = 50  # draws per row wanted, before a capability counts as out of distinct rows
MAX_PER_CAPABILITY = 5000  # every capability's templates make at least this many distinct rows (tested)
# The behaviour suites no templated row may be part of, as (cases per capability, seed): evaluate's, and a
# larger draw of other values from the same test templates.
SUITE_DRAWS = ((CASES, SEED), (2000, SEED + 1))


def draw_rows(per_capability: int, seed: int = 0) -> pd.DataFrame:
    """`per_capability` rows for each capability of the training templates: columns sentiment, text, capability.
    A UsageError where the templates cannot make that many distinct rows for one of them."""
    if not 0 <= per_capability <= MAX_PER_CAPABILITY:
        raise UsageError(f"--augment {per_capability}: give 0 (no templated rows) or a number of rows per capability "
                         f"up to {MAX_PER_CAPABILITY}")
    seen, rows = set(), []
    for name, frames in CAPABILITIES.items():
        rng = random.Random(f"{TEMPLATES}/{seed}/{name}")
        drawn = 0
        for _ in range(per_capability * TRIES):
            if drawn == per_capability:
                break
            template, label = rng.choice(frames)
            text = fill(template, _draw_values(fields(template), rng, augment_templates))
            if text_key(text) in seen:
                continue
            seen.add(text_key(text))
            rows.append((label, text, name))
            drawn += 1
        if drawn < per_capability:
            raise UsageError(f"--augment {per_capability}: the training templates make only {drawn} distinct rows "
                             f"for {name}; give a smaller number")
    return pd.DataFrame(rows, columns=[*COLUMNS, "capability"])


def resemblance(texts: list[str], rows: list[str]) -> np.ndarray:
    """How much each of `texts` looks like its nearest of `rows`: the cosine of their TF-IDF word 1-2-grams, after
    masking what templates fill in at random (capitalised words: names, months, cities, currency codes; and
    numbers), so that it compares frames, verbs and metrics."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    def frame(text: str) -> str:
        return re.sub(r"\b[A-Z][\w'-]*|\d[\d.,]*", " ", text).lower()

    vectors = TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b", preprocessor=frame)
    vectors.fit([*rows, *texts])
    return cosine_similarity(vectors.transform(texts), vectors.transform(rows)).max(axis=1)


def suite_keys() -> set[str]:
    """Every sentence of the behaviour suites in SUITE_DRAWS, as text_key compares them."""
    return {text_key(text) for cases, seed in SUITE_DRAWS for case in draw_suite(cases, seed) for text in case.texts}


def check_leakage(rows: pd.DataFrame, splits: dict[str, pd.DataFrame], per_capability: int) -> None:
    """Refuse templated rows that are behaviour test cases, or test or eval rows of the split (text_key)."""
    keys = rows["text"].map(text_key)
    for what, taken in (("behaviour test cases", suite_keys()),
                        ("rows of the test or eval split", set(pd.concat([splits["test"]["text"],
                                                                          splits["eval"]["text"]]).map(text_key)))):
        leaked = rows[keys.isin(taken)]
        if len(leaked):
            raise UsageError(f"--augment {per_capability}: {len(leaked)} templated training row(s) are {what} "
                             f"(e.g. {leaked['text'].iloc[0]!r}); keep train/augment_templates.py apart from "
                             "eval/behaviour_cases.py")


def for_training(per_capability: int, seed: int, splits: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict | None]:
    """(the templated rows to add to the training split, what summary.json and finsent.json record of them),
    checked for leakage; no rows and None when `per_capability` is 0."""
    rows = draw_rows(per_capability, seed)
    if not per_capability:
        return rows, None
    check_leakage(rows, splits, per_capability)
    return rows, {
        "templates": TEMPLATES,
        "rows_per_capability": per_capability,
        "seed": seed,
        "rows": len(rows),
        "counts": {label: int((rows["sentiment"] == label).sum()) for label in LABELS},
        "capabilities": list(CAPABILITIES),
        "sha256": rows_sha256(rows),  # of the rows as a split file (sentiment,text) would hold them
        "checked_apart_from": {"behaviour_suites": [{"cases_per_capability": c, "seed": s} for c, s in SUITE_DRAWS],
                               "splits": ["test", "eval"]},
    }
