"""Headline tables read and written in chunks, so that memory does not grow with the file.

    from finsent.eval.headline_tables import open_table, write_table
    table = open_table("news.csv")                # checked through once: encoding, rows, columns
    for chunk in table.chunks(4096):              # Chunk(rows, texts, status), 4096 rows each (the last: fewer)
        ...

Formats, by extension or `fmt`: csv, tsv, jsonl (one JSON object a line), parquet, lines (one
headline a line, as column `text`; `.txt`), a `save_to_disk` folder, or a Hub dataset id (read
as the training readers read one, train/data.py). `-` is standard input, one headline a line,
copied to a temporary file first and then read like any file. Text files are UTF-8, else Latin-1.

A file is read through once before anything is scored (its encoding, its CSV structure, its
JSON), so a malformed file is refused with one line before any work is done. The rows of a chunk
keep every input column as it was; the headline cell of each row is a text, or has a `status`
saying why not: `missing`, `empty` or `not text`.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from finsent.space.classifier import TEXT_COLUMNS
from finsent.train.data import C1_CONTROLS, HUB_ID, UsageError

logger = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".parquet": "parquet", ".pq": "parquet", ".txt": "lines"}
OUTPUT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
BLOCK = 1 << 20  # bytes decoded at a time by the check
NOT_LATIN1_TEXT = re.compile(f"\x00|{C1_CONTROLS.pattern}")  # NUL, or what binary bytes become in Latin-1
PROVENANCE_KEY = b"finsent"  # the Parquet key-value metadata that holds the run's provenance


@dataclass
class Chunk:
    rows: pa.Table  # every input column, as read
    texts: list[str | None]  # the headline of each row, None where status says why not
    status: list[str]  # "" for a headline, else missing | empty | not text


@dataclass
class Table:
    """An input checked through once; `chunks` reads it again, a chunk at a time."""

    source: str
    fmt: str
    text_column: str
    columns: list[str]
    rows: int
    _path: Path | None = None
    _encoding: str = "utf-8"
    _json_kinds: dict[str, str] = field(default_factory=dict)  # jsonl: column -> arrow kind
    _dataset: object = None  # a datasets.Dataset (a folder or a Hub id)
    _dataset_config: str | None = None  # a Hub dataset's files under this folder
    _spool: tempfile.TemporaryDirectory | None = None  # standard input's copy

    def chunks(self, size: int) -> Iterator[Chunk]:
        batches = {"csv": self._csv, "tsv": self._csv, "lines": self._lines, "jsonl": self._jsonl,
                   "parquet": self._parquet, "dataset": self._arrow}[self.fmt]
        for rows in rechunk(batches(size), size):
            yield self._chunk(rows)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.cleanup()

    def _chunk(self, rows: pa.Table) -> Chunk:
        cells = rows.column(self.text_column)
        not_text = [not _is_text(cells.type)] * len(rows)
        if NOT_TEXT in rows.column_names:  # JSON Lines: which cells of a mixed column were not strings
            not_text = rows.column(NOT_TEXT).to_pylist()
            rows = rows.drop_columns([NOT_TEXT])
        texts, status = [], []
        for value, other in zip(cells.to_pylist(), not_text, strict=True):
            reason = ("missing" if value is None else "not text" if other or not isinstance(value, str)
                      else "empty" if not value.strip() else "")
            texts.append(None if reason else value)
            status.append(reason)
        return Chunk(rows, texts, status)

    def _csv(self, size: int) -> Iterator[pa.Table]:
        import pandas as pd

        sep = "\t" if self.fmt == "tsv" else ","
        with pd.read_csv(self._path, sep=sep, dtype=str, keep_default_na=False, encoding=self._encoding,
                         chunksize=size) as reader:
            for frame in reader:
                yield pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)

    def _lines(self, size: int) -> Iterator[pa.Table]:
        batch = []
        with open(self._path, encoding=self._encoding, newline="") as handle:
            for line in _lines(handle):
                batch.append(line)
                if len(batch) == size:
                    yield pa.table({"text": pa.array(batch, pa.large_string())})
                    batch = []
        if batch:
            yield pa.table({"text": pa.array(batch, pa.large_string())})

    def _jsonl(self, size: int) -> Iterator[pa.Table]:
        kinds = self._json_kinds
        mixed = kinds[self.text_column] != "string"  # then say which of its cells were not strings
        schema = pa.schema([(name, KINDS[kind]) for name, kind in kinds.items()]
                           + ([(NOT_TEXT, pa.bool_())] if mixed else []))
        batch = []
        with open(self._path, encoding=self._encoding) as handle:
            for line in handle:
                if not line.strip():
                    continue
                obj = json.loads(line)
                row = {name: _to_kind(obj.get(name), kind) for name, kind in kinds.items()}
                if mixed:
                    row[NOT_TEXT] = not isinstance(obj.get(self.text_column), str | None)
                batch.append(row)
                if len(batch) == size:
                    yield pa.Table.from_pylist(batch, schema=schema)
                    batch = []
        if batch:
            yield pa.Table.from_pylist(batch, schema=schema)

    def _parquet(self, size: int) -> Iterator[pa.Table]:
        # not pre-buffered: pyarrow then keeps what it read ahead, and memory grows with the file (bench_signal.py)
        for batch in pq.ParquetFile(self._path, pre_buffer=False).iter_batches(batch_size=size):
            yield pa.Table.from_batches([batch]).replace_schema_metadata(None)

    def _arrow(self, size: int) -> Iterator[pa.Table]:
        yield from self._dataset.with_format("arrow").iter(batch_size=size)


def rechunk(tables: Iterator[pa.Table], size: int) -> Iterator[pa.Table]:
    """Tables of exactly `size` rows (the last: what is left), whatever sizes the reader gave."""
    pending, held = [], 0
    for table in tables:
        pending.append(table)
        held += len(table)
        while held >= size:
            whole = pa.concat_tables(pending)
            yield whole.slice(0, size).combine_chunks()
            rest = whole.slice(size)
            pending, held = ([rest] if len(rest) else []), len(rest)
    if held:
        yield pa.concat_tables(pending).combine_chunks()


def open_table(source: str, fmt: str | None = None, text_column: str | None = None,
               dataset_config: str | None = None) -> Table:
    """The input checked through once; a problem is a UsageError naming it and the fix."""
    spool = None
    if source == "-":
        spool, source, fmt = _spool_stdin(), "-", fmt or "lines"
    path = Path(spool.name) / "stdin.txt" if spool else Path(source)
    if fmt is None:
        fmt = "dataset" if path.is_dir() or (HUB_ID.match(source) and not path.exists()) else \
            FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise UsageError(f"{source}: unknown format {path.suffix or '(no extension)'!r}; name the file .csv, "
                             f".tsv, .jsonl, .parquet or .txt (one headline a line), or pass --format")
    if fmt != "dataset" and not path.is_file():
        raise UsageError(f"{source}: no such file; pass a .csv, .tsv, .jsonl, .parquet or .txt file, a save_to_disk "
                         "folder, a Hub dataset id (owner/name), or - for standard input")
    table = Table(source, fmt, "", [], 0, _path=path, _spool=spool, _dataset_config=dataset_config)
    try:
        _check(table)
    except BaseException:
        table.close()
        raise
    table.text_column = _text_column(table, text_column)
    return table


def _check(table: Table) -> None:
    """Read the input through once: encoding, structure, columns and the number of rows."""
    source, path = table.source, table._path
    if table.fmt == "parquet":
        try:
            meta = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as err:
            raise UsageError(f"{source}: not a readable Parquet file ({str(err).splitlines()[0]}); "
                             "pass a Parquet file, or name the format with --format") from None
        table.columns, table.rows = meta.schema_arrow.names, meta.metadata.num_rows
        return
    if table.fmt == "dataset":
        from finsent.train.data import _load_hub, _load_saved

        dataset = _load_saved(path) if path.is_dir() else _load_hub(source, table._dataset_config)
        table._dataset, table.columns, table.rows = dataset, list(dataset.column_names), len(dataset)
        return
    table._encoding = _encoding(path, source)
    if table.fmt in ("csv", "tsv"):
        table.columns, table.rows = _check_csv(table)
    elif table.fmt == "jsonl":
        table._json_kinds, table.rows = _check_jsonl(table)
        table.columns = list(table._json_kinds)
    else:
        with open(path, encoding=table._encoding, newline="") as handle:
            table.columns, table.rows = ["text"], sum(1 for _ in _lines(handle))


def _encoding(path: Path, source: str) -> str:
    """utf-8 (with or without a byte order mark), else latin-1 where that reads as text; else a UsageError."""
    line = 1
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            try:
                text = decoder.decode(block)
            except UnicodeDecodeError:
                return _latin1(path, source)
            if "\x00" in text:
                line += text.count("\n", 0, text.index("\x00"))
                raise UsageError(f"{source}: NUL byte at line {line}: this is not a text file (binary, or "
                                 "UTF-16); re-save it as UTF-8, or pass --format parquet for a Parquet file")
            line += text.count("\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return _latin1(path, source)
    return "utf-8-sig"


def _latin1(path: Path, source: str) -> str:
    line = 1
    with open(path, encoding="latin-1", newline="") as handle:
        while block := handle.read(BLOCK):
            bad = NOT_LATIN1_TEXT.search(block)
            if bad:
                line += block.count("\n", 0, bad.start())
                raise UsageError(f"{source}: undecodable bytes at line {line}: byte 0x{ord(bad.group()):02x} is "
                                 "neither UTF-8 nor Latin-1 text; re-save the file as UTF-8")
            line += block.count("\n")
    return "latin-1"


def _check_csv(table: Table) -> tuple[list[str], int]:
    import pandas as pd

    rows, columns = 0, None
    try:
        for frame in table._csv(1 << 16):
            columns = columns or frame.column_names
            rows += len(frame)
        if columns is None:  # a header and no rows
            columns = list(pd.read_csv(table._path, sep="\t" if table.fmt == "tsv" else ",", dtype=str, nrows=0,
                                       encoding=table._encoding).columns)
    except pd.errors.EmptyDataError:
        raise UsageError(f"{table.source}: the file is empty; write a header row naming a `text` column, "
                         "then one headline a row") from None
    except (pd.errors.ParserError, ValueError) as err:
        raise UsageError(f"{table.source}: malformed {table.fmt.upper()} ({str(err).strip().splitlines()[0]}); "
                         "check the quoting on that line") from None
    return columns, rows


KINDS = {"string": pa.large_string(), "bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(),
         "json": pa.large_string()}
NOT_TEXT = "\x00not text"  # a column of the reader's own, dropped before the chunk is handed out


def _check_jsonl(table: Table) -> tuple[dict[str, str], int]:
    """Each column's kind over the whole file: one Python type (or int and float), else JSON text."""
    seen: dict[str, set] = {}
    rows = 0
    with open(table._path, encoding=table._encoding) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise UsageError(f"{table.source}: line {number}: not JSON ({err.msg}); write one JSON object a "
                                 "line (JSON Lines)") from None
            if not isinstance(obj, dict):
                raise UsageError(f"{table.source}: line {number}: a JSON {type(obj).__name__}, not an object; "
                                 'write one object a line, e.g. {"text": "..."}')
            rows += 1
            for name, value in obj.items():
                seen.setdefault(name, set()).add(type(value))
    kinds = {}
    for name, types in seen.items():
        types.discard(type(None))
        kinds[name] = ("string" if types <= {str} else "bool" if types == {bool} else "int" if types == {int}
                       else "float" if types <= {int, float} and bool not in types else "json")
    return kinds, rows


def _to_kind(value, kind: str):
    """A JSON value as its column's kind holds it: a column of mixed types keeps its non-strings as JSON text."""
    if kind == "json":
        return None if value is None else value if isinstance(value, str) else json.dumps(value)
    return float(value) if kind == "float" and value is not None else value


def _is_text(kind: pa.DataType) -> bool:
    """A column of strings: plain, large, or dictionary-encoded (a pandas category written to Parquet)."""
    if pa.types.is_dictionary(kind):
        return _is_text(kind.value_type)
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


def _lines(handle) -> Iterator[str]:
    """One headline a line, line ends stripped; a last newline does not make an empty row."""
    for line in handle:
        yield line.rstrip("\r\n")


def _text_column(table: Table, name: str | None) -> str:
    if name is not None and name in table.columns:
        return name
    if name is None:
        found = next((column for column in TEXT_COLUMNS if column in table.columns), None)
        if found:
            return found
    named = f"no column {name!r}" if name else f"no {'/'.join(TEXT_COLUMNS)} column"
    raise UsageError(f"{table.source}: {named}; its columns are {table.columns[:8]}: name the headline column "
                     "with --text_column" + (", or pass --format lines for one headline a line" if table.fmt in
                                              ("csv", "tsv") else ""))


def _spool_stdin() -> tempfile.TemporaryDirectory:
    spool = tempfile.TemporaryDirectory(prefix="finsent-stdin-")
    with open(Path(spool.name) / "stdin.txt", "wb") as copy:
        shutil.copyfileobj(sys.stdin.buffer, copy, BLOCK)
    return spool


def output_format(target: str) -> str:
    if target == "-":
        return "stdout"
    fmt = OUTPUT_FORMATS.get(Path(target).suffix.lower())
    if fmt is None:
        raise UsageError(f"-o {target}: write .parquet or .csv (by extension), or - for standard output")
    return fmt


def sidecar(target: str | os.PathLike) -> Path:
    """Where a CSV's provenance goes: OUTPUT.json beside it."""
    return Path(f"{target}.json")


def write_table(target: str, tables: Iterator[pa.Table], provenance: Callable[[], dict], scratch: Path) -> None:
    """Write the chunks to `target` (.parquet, .csv or - for standard output) whole or not at all.

    The file is written into `scratch` (a folder on the target's file system) and renamed into place,
    so `target` is never half-written.
    `provenance()`, called once every chunk is written, goes into the Parquet file's key-value
    metadata (key `finsent`), or into OUTPUT.json beside a CSV (standard output: nowhere).
    """
    fmt = output_format(target)
    if fmt == "stdout":
        for i, table in enumerate(tables):
            table.to_pandas().to_csv(sys.stdout, header=i == 0, index=False)
        sys.stdout.flush()
        logger.info("provenance: %s", json.dumps(provenance()))
        return
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(scratch) / f"{final.name}.tmp"
    try:
        if fmt == "parquet":
            _write_parquet(tmp, tables, provenance)
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as out:
                for i, table in enumerate(tables):
                    table.to_pandas().to_csv(out, header=i == 0, index=False)
            side = sidecar(final)
            side_tmp = Path(scratch) / f"{side.name}.tmp"
            side_tmp.write_text(json.dumps(provenance(), indent=2) + "\n")
            side_tmp.replace(side)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def _write_parquet(path: Path, tables: Iterator[pa.Table], provenance: Callable[[], dict]) -> None:
    writer = None
    try:
        for table in tables:  # a row group a chunk
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        writer.add_key_value_metadata({PROVENANCE_KEY: json.dumps(provenance())})
    finally:
        if writer is not None:
            writer.close()


def read_provenance(path: str | os.PathLike) -> dict | None:
    """The provenance classify wrote: a Parquet file's metadata, or the OUTPUT.json beside a CSV."""
    path = Path(path)
    if OUTPUT_FORMATS.get(path.suffix.lower()) == "parquet":
        metadata = pq.ParquetFile(path).metadata.metadata or {}
        return json.loads(metadata[PROVENANCE_KEY]) if PROVENANCE_KEY in metadata else None
    return json.loads(sidecar(path).read_text()) if sidecar(path).is_file() else None
