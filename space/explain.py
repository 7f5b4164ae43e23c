"""Why a label: each word's share in it, by occlusion through the same scorer.

Each word of the headline is left out in turn and every variant is scored with the headline itself
in one call, by the scorer the user's answer came from (classifier.py: the shared prefix cache, the
adapter's temperature, the label prior). A word's weight for a label is how much that label's
probability falls when the word is left out: P(label | headline) - P(label | headline without it).
A positive weight for the predicted label means the word pushed toward it.

A "word" is a run of text between spaces, with two groupings a finance reader expects: a number keeps
its currency and units ("EUR 300 million", "12.5 %", "40 basis points"), and a lone punctuation mark
stays with the word before it. A text of more than MAX_UNITS words is explained by MAX_UNITS runs of
neighbouring words (phrases), so the cost stays bounded: one call of at most MAX_UNITS + 1 texts.

Faithfulness (ERASER's comprehensiveness and sufficiency) and the speed against a gradient method
are measured by eval/bench_explain.py (BENCHMARKS.md, "Explanations").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

try:  # inside the project: finsent.space; deployed alone as a Space: top-level modules
    from .classifier import LABELS
except ImportError:
    from classifier import LABELS

MAX_UNITS = 40  # words (or phrases) explained per text: 41 texts in the batch at most

# What a number carries with it. Compared lower-case, without the punctuation around them.
CURRENCIES = {"eur", "usd", "gbp", "sek", "nok", "dkk", "chf", "jpy", "cny", "rub", "pln", "isk", "cad", "aud",
              "us$", "$", "€", "£", "¥", "euro", "euros", "dollar", "dollars", "pounds", "kronor", "crowns", "yen"}
SCALES = {"thousand", "million", "millions", "mln", "mn", "m", "billion", "billions", "bln", "bn", "b", "trillion",
          "tn", "k", "percent", "cent", "pct", "%", "pc", "percentage", "basis", "points", "point", "pp",
          "bps", "bp", "times", "x", "cents", "pence"}
_EDGE = "\"'“”‘’()[]{},.;:!?"


def _core(token: str) -> str:
    return token.strip(_EDGE).lower()


def _is_number(token: str) -> bool:
    return any(ch.isdigit() for ch in token)


def units(text: str) -> list[tuple[int, int]]:
    """The character spans of the words to explain, in order (see the module's docstring)."""
    tokens = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    spans: list[list[int]] = []
    i = 0
    while i < len(tokens):
        start, end = tokens[i]
        word = text[start:end]
        if not any(ch.isalnum() for ch in word) and spans:  # a lone "-" or ":" goes with the word before
            spans[-1][1] = end
            i += 1
            continue
        if _is_number(word):
            if spans and _core(text[slice(*spans[-1])]) in CURRENCIES and not text[slice(*spans[-1])].endswith(
                    tuple(",.;:")):  # "EUR 300": the currency before its number
                start = spans.pop()[0]
            while i + 1 < len(tokens) and not text[tokens[i][0]:tokens[i][1]].endswith(tuple(",;:")):
                following = [_core(text[slice(*t)]) for t in tokens[i + 1 : i + 3]]
                if following[:2] == ["per", "cent"]:  # "5 per cent"; not "EUR 5 per share"
                    i += 1
                elif following[0] not in SCALES | CURRENCIES:  # "300 million euros", "5 %"
                    break
                i += 1
                end = tokens[i][1]
        spans.append([start, end])
        i += 1
    if spans and not any(ch.isalnum() for ch in text[slice(*spans[0])]) and len(spans) > 1:  # punctuation first
        first = spans.pop(0)
        spans[0][0] = first[0]
    return [tuple(span) for span in _grouped(spans, MAX_UNITS)]


def _grouped(spans: list[list[int]], most: int) -> list[list[int]]:
    """At most `most` spans: neighbours joined into runs of near-equal length."""
    if len(spans) <= most:
        return spans
    bounds = [round(i * len(spans) / most) for i in range(most + 1)]
    return [[spans[a][0], spans[b - 1][1]] for a, b in zip(bounds, bounds[1:], strict=False)]


def without(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """The text with these spans left out, and one space where each stood between two words."""
    out, last = [], 0
    for start, end in sorted(spans):
        out.append(text[last:start])
        last = end
    out.append(text[last:])
    pieces = [piece for piece in out if piece.strip()]
    return " ".join(piece.strip() for piece in pieces)


def only(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """The text of these spans alone, in their order, joined by spaces."""
    return " ".join(text[start:end] for start, end in sorted(spans))


@dataclass(frozen=True)
class Word:
    text: str
    start: int  # character offsets into the text explained
    end: int
    change: dict[str, float]  # label -> P(label | text) - P(label | text without this word)


@dataclass(frozen=True)
class Explanation:
    text: str  # as scored: a text too long for the model is explained on the beginning it reads
    probabilities: dict[str, float]
    words: list[Word]
    truncated: bool = False

    @property
    def label(self) -> str:
        return max(self.probabilities, key=self.probabilities.get)

    def weight(self, word: Word) -> float:
        """The word's push toward the predicted label (negative: away from it)."""
        return word.change[self.label]

    def top(self, k: int, label: str | None = None) -> list[Word]:
        """The k words that pushed most toward `label` (default: the predicted one), strongest first."""
        label = label or self.label
        return sorted(self.words, key=lambda word: word.change[label], reverse=True)[:k]

    def as_dict(self, digits: int = 4, top: int | None = None) -> dict:
        """{label, probabilities, words: [{word, start, end, weight}]}: what the API and MCP send; with `top`, only
        the `top` words that pushed most toward the label, strongest first."""
        words = self.top(top) if top else self.words
        return {"label": self.label,
                "probabilities": {label: round(p, digits) for label, p in self.probabilities.items()},
                "words": [{"word": w.text, "start": w.start, "end": w.end, "weight": round(self.weight(w), digits)}
                          for w in words]}

    def highlighted(self) -> list[tuple[str, float | None]]:
        """The text as (piece, weight) pairs for gr.HighlightedText, the spaces between words unweighted."""
        pieces, last = [], 0
        for word in self.words:
            if word.start > last:
                pieces.append((self.text[last:word.start], None))
            pieces.append((word.text, self.weight(word)))
            last = word.end
        if last < len(self.text):
            pieces.append((self.text[last:], None))
        return pieces


# (text, its variants) -> a (1 + N, 3) array of P(label) in LABELS' order: the text's row, then each variant's
Scorer = Callable[[str, list[str]], "object"]


def variants(text: str) -> tuple[list[tuple[int, int]], list[str]]:
    """The words' spans, and the text without each word in turn."""
    spans = units(text)
    return spans, [without(text, [span]) for span in spans]


def explain(text: str, score: Scorer, truncated: bool = False) -> Explanation:
    """One text's explanation: the text and each variant without one word, in one call of `score`.

    `text` is as the model should read it (already fitted to its window). A word that is the whole text
    is weighed against the empty headline.
    """
    spans, texts = variants(text)
    return _explanation(text, spans, score(text, texts), truncated)


def explain_many(texts: Sequence[str], predict_proba, truncated: Sequence[bool] | None = None) -> list[Explanation]:
    """Several texts' explanations from one call of `predict_proba` (texts -> (N, 3) array) on every text and its
    variants: the app's queued requests in one pass, packed where the scorer packs (Classifier.predict_proba)."""
    parts = [variants(text) for text in texts]
    probs = predict_proba([row for text, (_, others) in zip(texts, parts, strict=True) for row in (text, *others)])
    explained, at = [], 0
    for i, (text, (spans, _)) in enumerate(zip(texts, parts, strict=True)):
        explained.append(_explanation(text, spans, probs[at : at + 1 + len(spans)], bool(truncated and truncated[i])))
        at += 1 + len(spans)
    return explained


def _explanation(text: str, spans: list[tuple[int, int]], probs, truncated: bool) -> Explanation:
    """From the text's probabilities (probs[0]) and each variant's (probs[1:], in the order of spans)."""
    full = dict(zip(LABELS, map(float, probs[0]), strict=True))
    words = [Word(text[start:end], start, end,
                  {label: float(probs[0][j] - probs[1 + i][j]) for j, label in enumerate(LABELS)})
             for i, (start, end) in enumerate(spans)]
    return Explanation(text, full, words, truncated)


def batch_scorer(predict_proba) -> Scorer:
    """A texts -> (N, 3) function as a Scorer: the text and its variants in one call."""
    return lambda text, texts: predict_proba([text, *texts])


def classifier_scorer(classifier) -> Scorer:
    """A Classifier as a Scorer: the text and its variants packed as one tree (Classifier.predict_proba's `packed`),
    so the words before each left-out word, shared with the text, are computed once."""
    return batch_scorer(lambda texts: classifier.predict_proba(texts, packed=True))
