"""`finsent classify --by_sentence`: each text scored by sentence, and `--sentences OUT`, every sentence's row.

    finsent classify articles.csv -o scored.parquet --by_sentence --sentences sentences.parquet

eval/classify.py runs it as it runs headlines (chunks, parts, resuming, repeats); this module holds what differs.
Each text is split into sentences, an over-long one into pieces that fit the model, none cut (space/article.py);
the distinct sentences of a chunk's texts are scored together, in predict_proba's batches, and each text gets
space/article.py's summary. A text that repeats one met before, character for character, is scored once: its
summary and its sentences are its first occurrence's, and so are their offsets.

The sentences' output holds one row a sentence, in input order: `row` (its text's row in the input and in the
output, counted from 0, so `labelled.iloc[row]` in pandas), `sentence` (its place in the text, from 0), `start`
and `end` (character offsets: text[start:end] is the sentence), `text`, `label`, the probability of each label
and `score` (P(positive) - P(negative)). It is written whole or not at all, before the texts' output, with the
run's provenance (the Parquet file's metadata, or OUTPUT.json beside a CSV).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from finsent.eval.headline_tables import OUTPUT_FORMATS, write_table
from finsent.space.article import scores, split, summarize
from finsent.space.classifier import LABELS
from finsent.train.data import UsageError

SCHEMA = pa.schema([("row", pa.int64()), ("sentence", pa.int64()), ("start", pa.int64()), ("end", pa.int64()),
                    ("text", pa.string()), ("label", pa.string()), *((label, pa.float64()) for label in LABELS),
                    ("score", pa.float64())])
TARGET = "sentences-target"  # in the parts folder: the --sentences file this run writes (check_flags)


def check_flags(args, parts: Path) -> None:
    """--by_sentence's and --sentences' refusals, before anything is written; `parts`: the run's parts folder."""
    if args.by_sentence and args.explain:
        raise UsageError("--explain: not with --by_sentence (it explains headlines; explain a sentence in the app's "
                         "Headline tab)")
    if args.sentences is None:
        return
    if not args.by_sentence:
        raise UsageError(f"--sentences {args.sentences}: only with --by_sentence (it writes each text's sentences)")
    if args.sentences == "-" or Path(args.sentences).suffix.lower() not in OUTPUT_FORMATS:
        raise UsageError(f"--sentences {args.sentences}: write a .parquet or .csv file (by extension)")
    target = Path(args.sentences).resolve()
    if args.output != "-" and target == Path(args.output).resolve():
        raise UsageError(f"--sentences {args.sentences}: the same file as -o; give each its own")
    marker = parts / TARGET  # an interrupted run of this command wrote it, between its two outputs
    ours = marker.is_file() and marker.read_text() == str(target)
    if target.exists() and not args.overwrite and not ours:
        raise UsageError(f"--sentences {args.sentences}: it exists; pass --overwrite to replace it, or write elsewhere")


def score_texts(texts: list[str], classifier, batch_size: int) -> tuple[list[dict], list[list[tuple]]]:
    """Each text's added columns (space/article.py's summary, status "") and its sentences' rows (SCHEMA's, but
    `row`); every distinct sentence of the texts is scored once, all in one predict_proba call."""
    split_texts = [split(text, lambda piece: not classifier.fit(piece)[1]) for text in texts]
    distinct = list(dict.fromkeys(sentence.text for sentences in split_texts for sentence in sentences))
    probabilities = classifier.predict_proba(distinct, batch_size=batch_size) if distinct \
        else np.zeros((0, len(LABELS)))
    at = {text: i for i, text in enumerate(distinct)}
    found, rows = [], []
    for sentences in split_texts:
        probs = probabilities[[at[sentence.text] for sentence in sentences]]
        found.append({**summarize([sentence.text for sentence in sentences], probs), "status": ""})
        rows.append([(i, sentence.start, sentence.end, sentence.text, LABELS[int(p.argmax())], *map(float, p),
                      float(score)) for i, (sentence, p, score) in enumerate(zip(sentences, probs, scores(probs),
                                                                                 strict=True))])
    return found, rows


def chunk_sentences(sentences: list[list[tuple]], texts: list[int | None], offset: int) -> pa.Table:
    """A chunk's sentences: for each of its rows, those of texts[row] (an index into `sentences`; None: none here),
    the chunk's first row being the input's `offset`."""
    rows = [(offset + row, *sentence) for row, text in enumerate(texts) if text is not None
            for sentence in sentences[text]]
    return pa.Table.from_pylist([dict(zip(SCHEMA.names, row, strict=True)) for row in rows], schema=SCHEMA)


def write_sentences(target: str, parts, rows: int, chunk_rows: int, provenance: dict) -> None:
    """The sentences of every text, repeats' too, into `target` (.parquet or .csv), whole or not at all."""
    (parts.folder / TARGET).write_text(str(Path(target).resolve()))
    counts = Counter()
    parent = Path(target).resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    scratch = parts.folder if os.stat(parts.folder).st_dev == os.stat(parent).st_dev else parent  # renamed from
    write_table(target, merged(parts, rows, chunk_rows, counts),
                lambda: {**provenance, "sentences": counts["sentences"]}, scratch)


def merged(parts, rows: int, chunk_rows: int, counts: Counter) -> Iterator[pa.Table]:
    """The chunks' sentences in input order, a repeat of an earlier chunk's text given that text's sentences."""
    from finsent.eval.classify import KEY, PENDING, select_keys  # here: classify imports this module

    with closing(sqlite3.connect(parts.folder / "sentences.db")) as db:  # a text's digest -> its sentences, JSON
        db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; DROP TABLE IF EXISTS texts; "
                         "CREATE TABLE texts (k BLOB PRIMARY KEY, v TEXT)")
        for index in range((rows + chunk_rows - 1) // chunk_rows):
            texts = pq.read_table(parts.path(index), columns=[KEY, PENDING])
            keys, pending = texts.column(KEY).to_pylist(), texts.column(PENDING).to_pylist()
            offset = index * chunk_rows
            by_row = {}
            for sentence in pq.read_table(parts.sentences(index)).to_pylist():
                by_row.setdefault(sentence["row"] - offset, []).append(sentence)
            db.executemany("INSERT OR IGNORE INTO texts VALUES (?, ?)",
                           ((keys[row], json.dumps(found)) for row, found in by_row.items()))
            earlier = {k: json.loads(v) for k, v in select_keys(db, "SELECT k, v FROM texts",
                                                                {k for k, wait in zip(keys, pending, strict=True)
                                                                 if wait})}
            out = []
            for row, (key, wait) in enumerate(zip(keys, pending, strict=True)):
                out += [{**sentence, "row": offset + row} for sentence in (earlier[key] if wait else
                                                                           by_row.get(row, []))]
            counts["sentences"] += len(out)
            yield pa.Table.from_pylist(out, schema=SCHEMA)
