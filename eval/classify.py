"""Label the sentiment of every headline in a file of any size: streamed, resumable, repeats scored once.

    finsent classify news.csv -o labelled.parquet       # or: python eval/classify.py news.csv -o labelled.parquet
    cat headlines.txt | finsent classify - -o -         # one headline a line in, CSV out
    finsent classify news.csv -o why.csv --explain 3     # and the 3 words that drove each label (space/explain.py)
    finsent classify articles.csv -o scored.parquet --by_sentence --sentences sentences.parquet   # long texts
    accelerate launch --num_processes 2 eval/classify.py news.parquet -o labelled.parquet   # sharded over processes

The input is read in chunks (--chunk_rows) and each chunk's scores are written to a part file in
a folder beside the output (`.OUTPUT.parts/`), so memory does not grow with the file and a run
that is stopped, killed included, continues where it stopped when the same command runs again:
no finished chunk is scored twice, and the output is byte-identical to an uninterrupted run's.
The output is written beside its place and renamed into it at the end, so it is never a
half-written file. A headline that repeats one met before in the run (compared as the split
compares texts: Unicode NFKC, whitespace and case folded) is scored once and its scores copied.

The output holds every input column in input order, then `label`, the probability of each label
and `status` (empty for a labelled row; truncated: labelled on its beginning; missing, empty or
not text: no label); with `--explain K`, an `explanation` column: a JSON list of the K words that
pushed most toward the label, [{"word", "start", "end", "weight"}], weight being how much the label's
probability falls when the word is left out (each headline and its variants are scored packed in one call,
which then gives its label and probabilities too; a repeat carries its first occurrence's words and
offsets). With `--by_sentence`, each text is scored by sentence and summarised (eval/classify_sentences.py).
The run's provenance (models, adapter digest, prompt version, prior,
temperature, finsent version, date, counts) is in the Parquet file's key-value metadata, or in
OUTPUT.json beside a CSV. The scorer is the app's and eval/evaluate.py's (classifier.py), with
the adapter's temperature and the label prior as there. SOURCE_DATE_EPOCH, if set, is the date
recorded (reproducible outputs).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import logging
import math
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from finsent.eval import classify_sentences
from finsent.eval.evaluate import adapter_base, get_classifier, parse_prior
from finsent.eval.headline_tables import Chunk, open_table, output_format, write_table
from finsent.space.adapter_info import local_weights, weights_sha256
from finsent.space.article import COUNTS, SUMMARY, splitter
from finsent.space.classifier import DEFAULT_ADAPTER, LABELS, PROMPT_VERSION
from finsent.space.embedded import EMBEDDED_MODEL_ID
from finsent.space.explain import classifier_scorer, explain
from finsent.train.data import UsageError, text_key

logger = logging.getLogger("finsent.classify")

LABELLED = ("", "truncated")  # statuses of rows that get a label
KEY, PENDING = "\x00key", "\x00pending"  # columns of the part files only: a row's headline digest; a repeat
ADDED = ("label", *LABELS, "status")  # the columns classify adds, named "\x00label" & co. in the part files
EXPLANATION = "explanation"  # added after them with --explain
BY_SENTENCE = (*SUMMARY, "status")  # the columns --by_sentence adds instead (space/article.py)
TEXTS, WHOLE = {"label", "status", EXPLANATION, "most_negative", "most_positive"}, {"sentences", *COUNTS}  # else: floats
IN_CLAUSE = 500  # digests looked up in one SQL statement


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="a .csv, .tsv, .jsonl, .parquet or .txt (one headline a line) file, a "
                        "save_to_disk folder, a Hub dataset id, or - for standard input (one headline a line)")
    parser.add_argument("-o", "--output", required=True, help="a .parquet or .csv file, or - for standard output (CSV)")
    parser.add_argument("--adapter", default="default", help="a LoRA adapter folder or Hub id; `none` for the base "
                        f"alone (default: the shipped {DEFAULT_ADAPTER.name}/, as in the app)")
    parser.add_argument("--base_model", help=f"base model id or folder (default: the adapter's own base, else "
                        f"{EMBEDDED_MODEL_ID})")
    parser.add_argument("--text_column", help="the headline column (default: text, headline or sentence)")
    parser.add_argument("--format", choices=("csv", "tsv", "jsonl", "parquet", "lines"),
                        help="the input's format (default: by its extension)")
    parser.add_argument("--dataset_config", help="with a Hub dataset id: its files under this folder")
    parser.add_argument("--label_prior", default="balanced",
                        help="label mix to decide for: balanced (equal priors, the default, as the app), train (the "
                        "adapter's training mix), shares such as negative=0.12,neutral=0.6,positive=0.28, or a "
                        "labelled file whose label mix to take")
    parser.add_argument("--prefix", default="", help="put before the added column names (label, negative, neutral, "
                        "positive, status) where the input has columns of those names, e.g. pred_")
    parser.add_argument("--explain", type=int, default=0, metavar="K",
                        help="add an `explanation` column: the K words that pushed most toward each label, with their "
                        "weights, as JSON (several times slower: BENCHMARKS.md, Explanations)")
    parser.add_argument("--by_sentence", action="store_true", help="long texts: score each sentence, cut none, and "
                        "give each text the sentences' mean probabilities and score, the count of each label and its "
                        "most negative and most positive sentence (docs/classify.md, Articles)")
    parser.add_argument("--sentences", metavar="OUT", help="with --by_sentence: also write every sentence, with its "
                        "text's row (from 0), offsets, label and probabilities, to this .parquet or .csv file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no log; the closing line stays")
    parser.add_argument("--batch_size", type=int, default=32, help="headlines per model call")
    parser.add_argument("--chunk_rows", type=int, default=4096,
                        help="rows read, scored and saved at a time (what a resumed run does not redo)")
    parser.add_argument("--load_in_4bit", choices=("auto", "true", "false"), default="auto",
                        help="auto (default): the base quantized as the adapter trained; true/false force it")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"),
                        help="compute precision (default: as the app: bf16 where the hardware has it, else fp32)")
    parser.add_argument("--allow_other_base", action="store_true",
                        help="load the adapter on a base whose weights differ from those it was trained on")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        level=logging.WARNING if args.quiet else logging.INFO)
    if args.quiet:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # its "Loading weights" bar
    try:
        summary = classify(args)
    except UsageError as err:  # the user's to fix: one line, no traceback, nothing written
        print(f"error: {err}", file=sys.stderr)
        return 2
    if summary:
        print(summary, file=sys.stderr, flush=True)
    return 0


def classify(args: argparse.Namespace) -> str | None:
    """Label every row of args.input into args.output; the closing line (None in processes other than the first)."""
    import torch
    from accelerate import PartialState

    start = time.perf_counter()
    check_flags(args)
    state = PartialState(cpu=not torch.cuda.is_available())  # CPU processes join over gloo, as in training
    if state.num_processes > 1 and "-" in (args.input, args.output):
        raise UsageError("with several processes, read from a file and write to a file (not -): each process "
                         "reads the input and the first one writes the output")
    prior = parse_prior(args.label_prior)
    base, adapter = models(args)
    table = open_table(args.input, args.format, args.text_column, args.dataset_config)
    try:
        clash = [args.prefix + name for name in added(args) if args.prefix + name in table.columns]
        if clash:
            raise UsageError(f"{args.input}: it already has column(s) {clash}; pass --prefix pred_ (or rename them)")
        if table.rows == 0:
            raise UsageError(f"{args.input}: no rows to label; write one headline a row")
        classifier = get_classifier(base, adapter, load_in_4bit=args.load_in_4bit, dtype=args.dtype,
                                    device=str(state.device), label_prior=prior,
                                    allow_other_base=args.allow_other_base)
        provenance = settings(base, adapter, prior, classifier, table, args, state)
        with Parts(args.output, provenance, state) as parts:
            done = score_chunks(table, classifier, parts, args, state)
            state.wait_for_everyone()
            if not state.is_main_process:
                return None
            provenance = {**provenance, "input": args.input, "rows": table.rows, "created": parts.created}
            counts = Counter()
            if args.sentences:  # first: the documents' output, written last, is the sign that the run finished
                classify_sentences.write_sentences(args.sentences, parts, table.rows, args.chunk_rows, provenance)
            write_table(args.output, parts.merged(table.rows, args.chunk_rows, args.prefix, counts, added(args)),
                        lambda: {**provenance, "counts": dict(counts)}, parts.folder)
    finally:
        table.close()
    return closing_line(args.output, table.rows, counts, done, time.perf_counter() - start, args.by_sentence)


def added(args) -> tuple[str, ...]:
    """The columns this run adds, in order."""
    return BY_SENTENCE if args.by_sentence else (*ADDED, EXPLANATION) if args.explain else ADDED


def models(args) -> tuple[str, str | None]:
    """(base model, adapter or None) as the flags name them: the shipped adapter and its base by default."""
    if args.adapter.lower() == "none":
        return args.base_model or EMBEDDED_MODEL_ID, None
    if args.adapter == "default" and not (DEFAULT_ADAPTER / "adapter_config.json").is_file():
        raise UsageError(f"the shipped adapter {DEFAULT_ADAPTER} is missing; pass --adapter FOLDER or --adapter none")
    adapter = str(DEFAULT_ADAPTER) if args.adapter == "default" else args.adapter
    return args.base_model or adapter_base(adapter), adapter


def settings(base, adapter, prior, classifier, table, args, state) -> dict:
    """What the scores depend on: a run's provenance, and what parts of an earlier run must match to be reused."""
    return {
        "finsent_version": version("finsent"),
        "base_model": base,
        "adapter": adapter,
        "adapter_weights_sha256": weights_sha256(local_weights(adapter)) if adapter else None,
        "prompt_version": PROMPT_VERSION,
        "labels": list(LABELS),
        "label_prior": prior,
        "log_prior_shift": classifier.log_prior_shift,
        "temperature": classifier.temperature,
        "precision": classifier.precision,
        "device": state.device.type,
        "text_column": table.text_column,
        "chunk_rows": args.chunk_rows,
        "batch_size": args.batch_size,  # which headlines share a model call moves the last bits of a score
        **({"explain": args.explain} if args.explain else {}),  # explained: each headline with its variants
        **({"by_sentence": True, "splitter": splitter()} if args.by_sentence else {}),
    }


def check_flags(args) -> None:
    output_format(args.output)
    for name in ("batch_size", "chunk_rows"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} {getattr(args, name)}: give a whole number of 1 or more")
    if args.explain < 0:
        raise UsageError(f"--explain {args.explain}: give how many words to list, 1 or more (0: no explanation)")
    if args.output != "-" and Path(args.output).exists() and not args.overwrite:
        raise UsageError(f"-o {args.output}: it exists; pass --overwrite to replace it, or write elsewhere")
    classify_sentences.check_flags(args, parts_folder(args.output))


def score_chunks(table, classifier, parts: Parts, args, state) -> int:
    """Score this process's chunks that no earlier run finished; the number of chunks found done."""
    from tqdm.auto import tqdm

    mine = [i for i in range(math.ceil(table.rows / args.chunk_rows)) if i % state.num_processes == state.process_index]
    bar = tqdm(total=sum(min(args.chunk_rows, table.rows - i * args.chunk_rows) for i in mine), unit="row",
               desc="classify", disable=args.quiet or not sys.stderr.isatty() or not state.is_main_process)
    done, chain = 0, hashlib.sha256()
    with Seen(parts.folder / f"seen-{state.process_index}.db") as seen:
        for index, chunk in enumerate(table.chunks(args.chunk_rows)):
            keys = [digest(text, exact=args.by_sentence) if text is not None else None for text in chunk.texts]
            earlier = seen.known({k for k in keys if k is not None})
            first = {}  # headline digest -> its first row in this chunk, for headlines new to the run
            for row, key in enumerate(keys):
                if key is not None and key not in earlier and key not in first:
                    first[key] = row
            seen.add(first)
            chain.update(content_digest(chunk))  # the input up to here: a part is only right after the same rows
            if index % state.num_processes != state.process_index:
                continue
            if parts.done(index, chain.hexdigest()):
                done += 1
            else:
                parts.write(index, chain.hexdigest(), *scored_part(chunk, keys, earlier, first, classifier, args,
                                                                   index * args.chunk_rows))
            bar.update(len(chunk.texts))
    bar.close()
    if done:
        logger.info("%d chunk(s) were done by an earlier run; not scored again", done)
    return done


def scored_part(chunk: Chunk, keys, earlier: set, first: dict, classifier, args, offset: int):
    """The chunk's rows with what this run adds (repeats of earlier chunks left to the merge), and with
    --by_sentence the sentences of its rows (the chunk's first row is the input's `offset`), else None."""
    texts = [chunk.texts[row] for row in first.values()]
    sentences = None
    if args.by_sentence:
        found, sentences = classify_sentences.score_texts(texts, classifier, args.batch_size)
    elif args.explain:  # each headline's own batch with its variants gives its probabilities too
        fitted = [classifier.fit(text) for text in texts]
        explained = [explain(text, classifier_scorer(classifier), cut) for text, cut in fitted]
        found = [{**labelled([e.probabilities[label] for label in LABELS], cut),
                  EXPLANATION: json.dumps(e.as_dict(top=args.explain)["words"], ensure_ascii=False)}
                 for e, (_, cut) in zip(explained, fitted, strict=True)]
    else:
        fitted = [classifier.fit(text) for text in texts]
        probs = classifier.predict_proba([text for text, _ in fitted], batch_size=args.batch_size) if fitted \
            else np.zeros((0, len(LABELS)))
        found = [labelled(p, cut) for p, (_, cut) in zip(probs, fitted, strict=True)]
    where = {key: i for i, key in enumerate(first)}
    names = added(args)
    values = [found[where[key]] if key in where else {"label": "", "status": status}
              for key, status in zip(keys, chunk.status, strict=True)]
    pending = [key not in where and key in earlier for key in keys]  # met in an earlier chunk, scored there
    rows = chunk.rows
    for name in names:
        rows = rows.append_column(f"\x00{name}", pa.array([v.get(name) for v in values], column_type(name)))
    rows = rows.append_column(KEY, pa.array([k or b"" for k in keys])).append_column(PENDING, pa.array(pending))
    if sentences is not None:
        sentences = classify_sentences.chunk_sentences(sentences, [where.get(key) for key in keys], offset)
    return rows, sentences


def labelled(probabilities, truncated: bool) -> dict:
    """A headline's added columns: its label, the probability of each label, its status."""
    return {"label": LABELS[int(np.argmax(probabilities))], **dict(zip(LABELS, map(float, probabilities),
                                                                          strict=True)),
            "status": "truncated" if truncated else ""}


def column_type(name: str) -> pa.DataType:
    """An added column's type: text, whole number or probability (null where there is no label)."""
    return pa.string() if name in TEXTS else pa.int64() if name in WHOLE else pa.float64()


def digest(text: str, exact: bool = False) -> bytes:
    """A headline as the split compares texts (text_key), in 16 bytes; `exact`: the text as it is (--by_sentence:
    a repeat's sentences and their offsets are its first occurrence's, so it must be the same text)."""
    return hashlib.blake2b((text if exact else text_key(text)).encode(), digest_size=16).digest()


def content_digest(chunk: Chunk) -> bytes:
    return hashlib.sha256(repr(chunk.rows.to_pylist()).encode()).digest()


def select_keys(db, select: str, keys) -> Iterator[tuple]:
    """The rows of `select` (a query on a table keyed by `k`) whose key is among `keys`, IN_CLAUSE keys a statement."""
    keys = list(keys)
    for i in range(0, len(keys), IN_CLAUSE):
        part = keys[i : i + IN_CLAUSE]
        yield from db.execute(f"{select} WHERE k IN ({','.join('?' * len(part))})", part)


class Seen:
    """The headline digests met so far in the run, on disk (SQLite), so memory stays flat on any file."""

    def __init__(self, path: Path):
        path.unlink(missing_ok=True)
        self.db = sqlite3.connect(path)
        self.db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; CREATE TABLE seen (k BLOB PRIMARY KEY)")

    def known(self, keys: set[bytes]) -> set[bytes]:
        return {k for (k,) in select_keys(self.db, "SELECT k FROM seen", keys)}

    def add(self, keys) -> None:
        self.db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", ((k,) for k in keys))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.db.close()


class Parts:
    """The run's finished chunks, a Parquet file each, in `.OUTPUT.parts/` beside the output: what a rerun resumes.

    A part counts as done when it exists (each is written beside its place and renamed) and was made
    by the same settings (run.json) from the same input up to and including its chunk (a running
    digest of the chunks' content, in its metadata). Parts of other settings are removed.
    """

    def __init__(self, output: str, settings: dict, state):
        self.state = state
        self._temporary = tempfile.TemporaryDirectory(prefix="finsent-classify-") if output == "-" else None
        self.folder = Path(self._temporary.name) if self._temporary else parts_folder(output)
        manifest = self.folder / "run.json"
        if state.is_main_process:
            old = json.loads(manifest.read_text()) if manifest.is_file() else None
            if old is None or old.get("settings") != settings:
                if old is not None:
                    logger.info("%s holds parts of a run with other settings; starting again", self.folder)
                shutil.rmtree(self.folder, ignore_errors=True)
                self.folder.mkdir(parents=True)
                old = {"settings": settings, "created": created()}
                tmp = manifest.with_suffix(".tmp")
                tmp.write_text(json.dumps(old, indent=2) + "\n")
                tmp.replace(manifest)
            logger.info("parts in %s (a rerun of the same command resumes from them)", self.folder)
        state.wait_for_everyone()
        self.created = json.loads(manifest.read_text())["created"]

    def path(self, index: int) -> Path:
        return self.folder / f"part-{index:07d}.parquet"

    def done(self, index: int, chain: str) -> bool:
        try:
            metadata = pq.read_schema(self.path(index)).metadata or {}
        except (OSError, pa.ArrowException):
            return False
        return metadata.get(b"input_sha256") == chain.encode()

    def sentences(self, index: int) -> Path:
        """The chunk's sentences (--by_sentence), written before its part: where the part is, they are."""
        return self.folder / f"sentences-{index:07d}.parquet"

    def write(self, index: int, chain: str, rows: pa.Table, sentences: pa.Table | None = None) -> None:
        if sentences is not None:
            tmp = self.sentences(index).with_suffix(f".tmp{self.state.process_index}")
            pq.write_table(sentences, tmp)
            tmp.replace(self.sentences(index))
        tmp = self.path(index).with_suffix(f".tmp{self.state.process_index}")
        pq.write_table(rows.replace_schema_metadata({b"input_sha256": chain.encode()}), tmp)
        tmp.replace(self.path(index))

    def merged(self, rows: int, chunk_rows: int, prefix: str, counts: Counter, names=ADDED):
        """The parts in input order, repeats filled from their first occurrence; counts what it yields."""
        with closing(sqlite3.connect(self.folder / "merge.db")) as db:
            db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; DROP TABLE IF EXISTS scores; "
                             "CREATE TABLE scores (k BLOB PRIMARY KEY, v TEXT)")  # v: the added values, JSON
            for index in range(math.ceil(rows / chunk_rows)):
                part = pq.read_table(self.path(index)).replace_schema_metadata(None)
                yield fill_repeats(part, db, prefix, counts, names)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if self._temporary is not None:
            self._temporary.cleanup()
        elif kind is None and self.state.is_main_process:
            shutil.rmtree(self.folder, ignore_errors=True)


def fill_repeats(part: pa.Table, db, prefix: str, counts: Counter, names=ADDED) -> pa.Table:
    keys, pending = part.column(KEY).to_pylist(), part.column(PENDING).to_pylist()
    columns = {name: part.column(f"\x00{name}").to_pylist() for name in names}
    status = columns["status"]
    new = [(k, json.dumps([columns[name][row] for name in names])) for row, (k, wait) in
           enumerate(zip(keys, pending, strict=True)) if status[row] in LABELLED and not wait]
    db.executemany("INSERT OR IGNORE INTO scores VALUES (?, ?)", new)  # floats go through JSON exactly (repr)
    counts["scored"] += len({row[0] for row in new})
    wanted = {k for k, wait in zip(keys, pending, strict=True) if wait}
    found = {k: json.loads(v) for k, v in select_keys(db, "SELECT k, v FROM scores", wanted)}
    for row, (key, wait) in enumerate(zip(keys, pending, strict=True)):
        if wait:
            for name, value in zip(names, found[key], strict=True):
                columns[name][row] = value
    for value in status:
        counts[value or "labelled"] += 1
    counts["repeats"] = counts["labelled"] + counts["truncated"] - counts["scored"]
    if "sentences" in names:
        counts["sentences"] += sum(n for n in columns["sentences"] if n)
    part = part.drop_columns([*(f"\x00{name}" for name in names), KEY, PENDING])
    for name in names:
        part = part.append_column(prefix + name, pa.array(columns[name], column_type(name)))
    return part


def parts_folder(output: str) -> Path:
    """Where a run's finished chunks wait (Parts): `.OUTPUT.parts/` beside the output."""
    return Path(output).parent / f".{Path(output).name}.parts"


def created() -> str:
    """Now (UTC), or SOURCE_DATE_EPOCH where set: the date a run records."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch else \
        datetime.datetime.now(datetime.timezone.utc)
    return moment.isoformat(timespec="seconds")


def closing_line(output: str, rows: int, counts: Counter, done: int, seconds: float, by_sentence=False) -> str:
    labelled = counts["labelled"] + counts["truncated"]
    skipped = {reason: counts[reason] for reason in ("missing", "empty", "not text") if counts[reason]}
    why = f" ({', '.join(f'{n:,} {reason}' for reason, n in skipped.items())})" if skipped else ""
    cut = f", {counts['truncated']:,} truncated" if counts["truncated"] else ""
    sentences = f", {counts['sentences']:,} sentences" if by_sentence else ""
    resumed = f"; {done} chunk(s) done by an earlier run" if done else ""
    where = "standard output" if output == "-" else output
    return (f"classify: {rows:,} rows, {labelled:,} labelled ({counts['scored']:,} scored, {counts['repeats']:,} "
            f"repeats{cut}), {sum(skipped.values()):,} skipped{why}{sentences}; {rows / seconds:,.1f} "
            f"{'texts' if by_sentence else 'headlines'}/s, {seconds:,.1f} s{resumed} -> {where}")


if __name__ == "__main__":
    raise SystemExit(main())
