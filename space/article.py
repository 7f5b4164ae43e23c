"""Long texts scored by sentence: the split, and one summary per document from its sentences' probabilities.

`finsent classify --by_sentence` (eval/classify.py) and the app's Article tab (article_tab.py) both use it.

Split: pysbd (rule-based, offline; it keeps "Inc.", "E.U." and "5.2 %" inside a sentence), with each sentence's
character offsets in the text as given, so `text[s.start:s.end] == s.text` (the whitespace around it left out).
A line break ends a sentence, as in pysbd (unwrap hard-wrapped text first). Text that pysbd returns in no
sentence (it drops a span it cannot find again) becomes a sentence of its own, so the sentences cover every
character that is not whitespace.

A sentence longer than the model's window is never cut: it is split into consecutive pieces, each the longest
run of whole words from where the last one ended that the model takes whole (`fits`: Classifier.fit cuts
nothing), and a word too long alone, between characters; each piece is scored as a sentence of its own. So a
piece is at most MAX_CHARS (2,000) characters and the model's token limit, and no text is left unscored.

Summary of a document: each sentence's score is P(positive) - P(negative), in [-1, 1]; the document's
probabilities are its sentences' means, its label the most probable of those, its score the mean of the
sentences' scores; it counts the sentences by label and names the one with the lowest and the highest score
(the first of equals).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import version

try:  # inside the project: finsent.space; deployed alone as a Space: top-level modules
    from .classifier import LABELS
except ImportError:
    from classifier import LABELS

COUNTS = tuple(f"n_{label}" for label in LABELS)  # sentences with each label
SUMMARY = ("label", *LABELS, "score", "sentences", *COUNTS, "most_negative", "most_positive")  # a document's
WORD = re.compile(r"\S+")
LINE = re.compile(r"[^\r\n]+")
WINDOW = 10_000  # characters of one line given to pysbd at a time (_sentence_spans)


def splitter() -> str:
    """The splitter and its version, as a run's provenance records it."""
    return f"pysbd {version('pysbd')}"


@dataclass(frozen=True)
class Sentence:
    start: int  # character offsets into the text as given: text[start:end] == the sentence
    end: int
    text: str


def split(text: str, fits: Callable[[str], bool] | None = None) -> list[Sentence]:
    """The sentences of `text` in order, each cut into pieces that `fits` (None: any length fits)."""
    spans = []
    for line in LINE.finditer(text):  # pysbd ends a sentence at a line break anyway
        cursor = line.start()
        for begin, stop in _sentence_spans(line.group()):
            begin, stop = max(line.start() + begin, cursor), max(line.start() + stop, cursor)
            spans += [(cursor, begin), (begin, stop)]  # and what pysbd skipped before it, if anything
            cursor = stop
        spans.append((cursor, line.end()))  # what follows the last sentence pysbd found
    sentences = []
    for start, end in spans:
        words = [word.span() for word in WORD.finditer(text, start, end)]
        if words:
            start, end = words[0][0], words[-1][1]
            sentences += [Sentence(a, b, text[a:b]) for a, b in pieces(text, start, end, fits)]
    return sentences


def _sentence_spans(line: str) -> Iterator[tuple[int, int]]:
    """pysbd's sentences of one line as (start, end) offsets, WINDOW characters at a time: its time grows with the
    square of the text it is given (a line of 84 kB took 2 s, the same in lines of 84 characters 0.25 s). Each
    window's last sentence, which may go on past it, begins the next window."""
    import pysbd

    offset = 0
    while offset < len(line):
        window = line[offset : offset + WINDOW]
        # A new segmenter each time: it keeps the text on itself, so one shared by the app's threads would mix them.
        found = [(s.start, s.end) for s in pysbd.Segmenter(language="en", clean=False, char_span=True).segment(window)]
        advance = len(window)
        if offset + advance < len(line):  # more of the line follows
            if len(found) > 1:  # the last sentence may go on past the window
                found, advance = found[:-1], found[-1][0] or advance
            else:  # one sentence longer than the window (cut into pieces anyway): go on after its last space
                advance = window.rfind(" ") + 1 or advance
                found = [(0, advance)]
        yield from ((offset + begin, offset + stop) for begin, stop in found)
        offset += advance


def pieces(text: str, start: int, end: int, fits: Callable[[str], bool] | None) -> list[tuple[int, int]]:
    """text[start:end] as consecutive (start, end) spans that each fit: as many whole words as fit, from the
    first word not yet taken; a word that does not fit alone, as many characters as fit."""
    if fits is None or fits(text[start:end]):
        return [(start, end)]
    spans = []
    while start < end:
        ends = [word.end() for word in WORD.finditer(text, start, end)]
        taken = _longest(text, start, ends, fits)
        if taken is None:  # one word longer than the window: cut it between characters
            taken = _longest(text, start, range(start + 1, ends[0] + 1), fits) or start + 1
        spans.append((start, taken))
        following = WORD.search(text, taken, end)
        start = following.start() if following else end
    return spans


def _longest(text: str, start: int, stops: Sequence[int], fits: Callable[[str], bool]) -> int | None:
    """The last of the ascending `stops` for which text[start:stop] fits (a longer text never fits where a
    shorter one did not), found by bisection; None when the first does not."""
    low, high = 0, len(stops)  # stops[:low] fit; stops[high:] do not
    while low < high:
        middle = (low + high) // 2
        if fits(text[start : stops[middle]]):
            low = middle + 1
        else:
            high = middle
    return stops[low - 1] if low else None


def scores(probabilities):
    """Each row's P(positive) - P(negative): an (N,) array from (N, 3) probabilities in LABELS order."""
    return probabilities[:, LABELS.index("positive")] - probabilities[:, LABELS.index("negative")]


def summarize(texts: Sequence[str], probabilities) -> dict:
    """One document from its sentences' texts and (N, 3) probabilities (N >= 1): the SUMMARY columns."""
    import numpy as np

    probabilities = np.asarray(probabilities, dtype=np.float64)
    mean = probabilities.mean(axis=0)
    each = scores(probabilities)
    labels = probabilities.argmax(axis=1)
    return {
        "label": LABELS[int(mean.argmax())],
        **{label: float(p) for label, p in zip(LABELS, mean, strict=True)},
        "score": float(each.mean()),
        "sentences": len(texts),
        **{name: int((labels == j).sum()) for j, name in enumerate(COUNTS)},
        "most_negative": texts[int(each.argmin())],
        "most_positive": texts[int(each.argmax())],
    }
