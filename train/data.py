"""Read labelled headlines, split them without leakage, and shape them for TRL.

    from finsent.train.data import SplitSizes, read_labelled, split_dataset, write_split
    df = read_labelled("../shared/data/financial_phrasebank/all-data.csv")
    splits, summary = split_dataset(df, SplitSizes(train=None))
    write_split(splits, summary, "runs/demo")

Sources: a CSV file (`sentiment,text`, header optional: Kaggle's `all-data.csv`
has none), a Financial PhraseBank `.txt` file (`sentence@label` per line), a
`save_to_disk` directory, or the id of a Hub dataset stored as parquet/CSV/JSON files (or, for a
script dataset such as `takala/financial_phrasebank`, the Hub's parquet conversion of it).
Every problem in a file is a `DataError` that names the file, the line, the
problem and the fix; nothing is returned or written for a rejected file.

Splitting keeps every distinct text on one side only. Texts are compared by
`text_key` (Unicode NFKC, whitespace collapsed, casefolded). Repeats with the
same label collapse to their first row. Repeats whose labels conflict are
dropped entirely: the ground truth is ambiguous, so they would be noise in
train and an unfair question in test. The summary counts them and names the
labels involved, never the texts. On the 50Agree PhraseBank this finds 8
repeated texts, 2 of them conflicting (neutral vs positive).

Per label the test rows are drawn first, then the eval (validation) rows, then
the train rows, so the test and eval sets do not move when the train size
changes and trials of any train size are compared on the same validation rows.
A label too small for all three gets its train rows first and eval takes what
is left: the defaults (300 test, 300 train, 50 eval) leave 50Agree's 604
negatives 4 eval rows. The original notebook drew its 50 with replacement from
those 4, repeating them; here the eval set simply holds 4 negatives and the
summary says so (`eval_short`). With `train=None` (`--train_size all`) train
takes every row left after test and eval.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import yaml

from finsent.space.classifier import LABELS, build_completion, build_prompt
from finsent.space.feedback import text_key  # how texts are compared: one home, beside the app's corrections

logger = logging.getLogger(__name__)

COLUMNS = ("sentiment", "text")
SPLITS = ("train", "eval", "test")
LABEL_NAMES = ("sentiment", "label")  # accepted header names, first is canonical
TEXT_NAMES = ("text", "sentence")
MAX_PROBLEMS = 5  # problems quoted in one error message; the rest are counted
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
C1_CONTROLS = re.compile("[\x80-\x9f]")  # what cp1252 text or binary bytes become when read as Latin-1


class UsageError(ValueError):
    """A mistake the user must fix (a flag, a folder, a file): scripts print it as one line, no traceback."""


class DataError(UsageError):
    """A mistake in a data file: the message names the file, the line, the problem and the fix."""


@dataclass(frozen=True)
class SplitSizes:
    """Rows per label on each side; `train=None` takes every distinct row left after test and eval."""

    train: int | None = 300
    test: int = 300
    eval: int = 50

    def __post_init__(self) -> None:
        for name, value in (("train", self.train), ("test", self.test), ("eval", self.eval)):
            if value is not None and value < 0:
                raise ValueError(f"--{name}_size must be 0 or more (train also accepts 'all'), got {value}")


Record = tuple[str, object, object]  # (where, e.g. "line 3", raw label, raw text)
Problem = str  # where, what and the fix, e.g. "line 3: no '@'; expected sentence@label"


def read_labelled(
    source: str, *, dataset_config: str | None = None, encoding: str = "auto", skip_malformed: bool = False
) -> pd.DataFrame:
    """Rows of `source` as columns sentiment,text (str): file order, labels normalised, texts stripped.

    `dataset_config` is for a Hub id only; `encoding` is for files ("auto": UTF-8, else Latin-1).
    A malformed row (no '@', an unknown label, no text) rejects the whole file, unless
    `skip_malformed`: then it is left out, logged, and listed in `df.attrs["skipped"]`.
    """
    path = Path(source)
    if path.is_dir():
        records, problems = _dataset_records(str(source), _load_saved(path))
    elif path.is_file():
        text = _decode(path, encoding)
        is_phrasebank = path.suffix.lower() == ".txt"
        records, problems = _phrasebank_records(text) if is_phrasebank else _csv_records(path, text)
    elif HUB_ID.match(str(source)) and path.suffix.lower() not in (".csv", ".txt"):
        records, problems = _dataset_records(str(source), _load_hub(str(source), dataset_config))
    else:
        raise DataError(
            f"{source}: no such file or directory; pass a .csv file (sentiment,text), "
            "a PhraseBank .txt file, a save_to_disk directory or a Hub dataset id (owner/name)"
        )
    df = _validate(str(source), records, problems, skip_malformed)
    logger.info("read %d rows from %s: %s", len(df), source, df["sentiment"].value_counts().to_dict())
    return df


def _line_of(text: str | bytes, offset: int) -> int:
    return text.count("\n" if isinstance(text, str) else b"\n", 0, offset) + 1


def _decode(path: Path, encoding: str) -> str:
    raw = path.read_bytes()
    if encoding == "auto":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")  # decodes any byte, so check that the result is text
            bad = C1_CONTROLS.search(text)
            if bad:
                raise DataError(
                    f"{path}: undecodable bytes at line {_line_of(text, bad.start())}: "
                    f"byte 0x{ord(bad.group()):02x} is neither UTF-8 nor Latin-1 text; "
                    "re-save it as UTF-8 (or pass --encoding cp1252)"
                ) from None
    else:
        try:
            text = raw.decode(encoding)
        except LookupError:
            raise DataError(
                f"{path}: unknown encoding {encoding!r}; pass --encoding auto, utf-8, latin-1 or cp1252"
            ) from None
        except UnicodeDecodeError as e:
            raise DataError(
                f"{path}: line {_line_of(raw, e.start)}: bytes {e.object[e.start:e.end]!r} are not valid "
                f"{encoding}; re-save the file as UTF-8, or pass its real encoding with --encoding "
                "(e.g. latin-1, cp1252)"
            ) from None
    if "\x00" in text:
        raise DataError(
            f"{path}: NUL byte at line {_line_of(text, text.index(chr(0)))}: this is not a text file "
            "(binary, or UTF-16); re-save it as UTF-8"
        )
    return text.removeprefix("\ufeff")  # a UTF-8 byte order mark


def _phrasebank_records(text: str) -> tuple[list[Record], list[Problem]]:
    records: list[Record] = []
    problems: list[Problem] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        if "@" not in line:
            problems.append(f"line {number}: no '@'; expected sentence@label, or delete the line")
            continue
        sentence, label = line.rsplit("@", 1)  # split on the last @: a sentence may hold one
        records.append((f"line {number}", label, sentence))
    return records, problems


def _csv_records(path: Path, text: str) -> tuple[list[Record], list[Problem]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    records: list[Record] = []
    problems: list[Problem] = []
    columns: tuple[int, int] | None = None  # (sentiment, text) positions once the first row is seen
    start = 1
    try:
        for row in reader:
            where, start = f"line {start}", reader.line_num + 1  # a quoted field may span lines
            if not any(cell.strip() for cell in row):
                continue
            if columns is None:
                columns, is_header = _columns(path, where, row)
                if is_header:
                    continue
                if row[0].strip().lower() not in LABELS:  # perhaps a header with other names
                    where += " (no header naming 'sentiment' and 'text' columns, so read as data)"
            if len(row) <= max(columns):
                problems.append(
                    f"{where}: {len(row)} field(s), expected {max(columns) + 1}; "
                    "quote a text that holds commas"
                )
            else:
                records.append((where, row[columns[0]], row[columns[1]]))
    except csv.Error as e:
        raise DataError(
            f"{path}: line {reader.line_num}: malformed CSV ({e}); check the quoting on that line"
        ) from None
    return records, problems


def _columns(path: Path, where: str, first_row: list[str]) -> tuple[tuple[int, int], bool]:
    """Where sentiment and text are, and whether `first_row` is a header."""
    cells = [cell.strip().lower() for cell in first_row]
    if not set(cells) & set(LABEL_NAMES + TEXT_NAMES):
        return (0, 1), False  # no header: the first two columns are sentiment,text
    label_at = next((cells.index(name) for name in LABEL_NAMES if name in cells), None)
    text_at = next((cells.index(name) for name in TEXT_NAMES if name in cells), None)
    if label_at is None or text_at is None:
        raise DataError(
            f"{path}: {where}: the header has columns {first_row}; expected a 'sentiment' (or 'label') "
            "column and a 'text' (or 'sentence') column; rename them, or drop the header and put "
            "sentiment,text first"
        )
    return (label_at, text_at), True


def _load_saved(path: Path) -> datasets.Dataset:
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as e:  # any failure here means: not a readable save_to_disk directory
        raise DataError(
            f"{path}: not a dataset saved with save_to_disk ({type(e).__name__}: {e}); "
            "pass a .csv file instead"
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        if "train" in loaded:
            return loaded["train"]
        if len(loaded) != 1:
            raise DataError(
                f"{path}: the DatasetDict has splits {list(loaded)} and no 'train'; "
                "save the split to use on its own"
            )
        return next(iter(loaded.values()))
    return loaded


DATA_SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json"}
PARQUET_CONVERSION = "refs/convert/parquet"  # the Hub's parquet copy of a dataset, script datasets included


def _hub_data_files(files: list[str], config: str | None) -> list[str]:
    """The training split's data files among a dataset repo's files: under `config/` when given, `train` ones
    when some are (else all), of one format (parquet first)."""
    def in_config(name: str) -> bool:
        return config is None or name.startswith(f"{config}/") or f"/{config}/" in name
    data = [f for f in files if Path(f).suffix.lower() in DATA_SUFFIXES and in_config(f)]
    train = [f for f in data if "train" in Path(f).name or "/train/" in f or f.startswith("train/")]
    data = train or data
    for suffix in DATA_SUFFIXES:  # one format: the first found in this order
        chosen = sorted(f for f in data if Path(f).suffix.lower() == suffix)
        if chosen:
            return chosen
    return []


def _load_hub(name: str, config: str | None) -> datasets.Dataset:
    """A Hub dataset stored as data files (parquet, CSV, JSON): its files, downloaded and read here; for a dataset
    with no data files (a loading script, which datasets >= 4 cannot run), the Hub's parquet conversion of it."""
    from huggingface_hub import HfApi, hf_hub_download

    try:
        for revision in (None, PARQUET_CONVERSION):
            chosen = _hub_data_files(HfApi().list_repo_files(name, repo_type="dataset", revision=revision), config)
            if chosen:
                local = [hf_hub_download(name, f, repo_type="dataset", revision=revision) for f in chosen]
                return datasets.load_dataset(DATA_SUFFIXES[Path(chosen[0]).suffix.lower()], data_files=local,
                                             split="train")
    except Exception as e:  # offline, unknown id, no conversion: all mean "use a local file"
        raise DataError(
            f"{name}: the dataset could not be loaded from the Hugging Face Hub ({type(e).__name__}: "
            f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}); check the id and --dataset_config, or "
            "download it and pass a local .csv/.txt file or save_to_disk directory"
        ) from None
    where = f" under {config}/" if config else ""
    raise DataError(f"{name}: no parquet, CSV or JSON data files{where} in the dataset or in its Hub parquet "
                    f"conversion; check --dataset_config, or pass a local .csv/.txt file")


def _dataset_records(source: str, ds: datasets.Dataset) -> tuple[list[Record], list[Problem]]:
    names = ds.column_names
    text_col = next((n for n in TEXT_NAMES if n in names), None)
    label_col = next((n for n in ("label", "sentiment") if n in names), None)
    if text_col is None or label_col is None:
        raise DataError(
            f"{source}: the dataset has columns {names}; expected text in 'sentence' or 'text' "
            "and label in 'label' or 'sentiment'"
        )
    labels = list(ds[label_col])
    feature = ds.features[label_col]
    # A ClassLabel stores ints: takala/financial_phrasebank has 0 negative, 1 neutral, 2 positive.
    if isinstance(feature, datasets.ClassLabel):
        labels = [feature.int2str(value) for value in labels]
    rows = enumerate(zip(labels, ds[text_col], strict=True), start=1)
    return [(f"row {i}", label, text) for i, (label, text) in rows], []


def _validate(source: str, records: list[Record], problems: list[Problem], skip_malformed: bool) -> pd.DataFrame:
    """All problems of the file in one message, or the rows as a frame (bad rows left out if `skip_malformed`)."""
    problems, rows = list(problems), []
    for where, label, text in records:
        label = str(label).strip().lower()
        text = "" if text is None else str(text).strip()
        found = []
        if label not in LABELS:
            found.append(f"{where}: unknown label {label[:40]!r}; allowed labels: {', '.join(LABELS)}")
        if not text:
            found.append(f"{where}: empty text; write the headline or delete the row")
        problems += found
        if not found:
            rows.append((label, text))
    if problems and skip_malformed:
        logger.warning("%s: skipped %d malformed row(s): %s", source, len(problems), "; ".join(problems))
    elif problems:
        more = f"; and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
        count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
        raise DataError(f"{source}: {count}: {'; '.join(problems[:MAX_PROBLEMS])}{more} "
                        "(or pass --skip_malformed to leave such rows out)")
    if not rows:
        raise DataError(
            f"{source}: no data rows; expected rows of sentiment,text (labels {', '.join(LABELS)})"
        )
    df = pd.DataFrame(rows, columns=list(COLUMNS)).astype(str)
    df.attrs["skipped"] = problems
    return df


def split_dataset(
    df: pd.DataFrame, sizes: SplitSizes, seed: int = 42
) -> tuple[dict[str, pd.DataFrame], dict]:
    """({"train", "eval", "test"} frames, summary): per label test, train and eval rows
    from one seeded shuffle of its distinct texts; see the module docstring for the order and repeats."""
    df = df.reset_index(drop=True)
    keys = df["text"].map(text_key)
    labels_per_key = df.groupby(keys)["sentiment"].agg(lambda s: tuple(sorted(set(s))))
    conflicting = labels_per_key[labels_per_key.map(len) > 1]
    kept = df[~keys.isin(conflicting.index)]
    distinct = kept[~keys[kept.index].duplicated(keep="first")]

    problems, parts, eval_short = [], {side: [] for side in SPLITS}, {}
    for index, label in enumerate(LABELS):
        rows = distinct[distinct["sentiment"] == label]
        # Test first, then eval, then train; where all three do not fit, test and train are exact
        # and eval takes what is left. With train=None, train takes the rest after test and eval.
        if sizes.train is None:
            needed, need_text = sizes.test + sizes.eval + 1, f"test {sizes.test} + eval {sizes.eval} + 1 for train"
        else:
            needed, need_text = sizes.test + sizes.train, f"test {sizes.test} + train {sizes.train}"
        if len(rows) < needed:
            problems.append(f"'{label}' has {len(rows)} distinct rows, the sizes need {needed} ({need_text})")
            continue
        rows = rows.iloc[np.random.default_rng([seed, index]).permutation(len(rows))]
        # Test first: the test set does not change when --train_size does.
        test, rest = rows.iloc[: sizes.test], rows.iloc[sizes.test :]
        if sizes.train is None:
            evaluation, train = rest.iloc[: sizes.eval], rest.iloc[sizes.eval :]
        elif len(rest) >= sizes.eval + sizes.train:
            evaluation, train = rest.iloc[: sizes.eval], rest.iloc[sizes.eval : sizes.eval + sizes.train]
        else:
            train, evaluation = rest.iloc[: sizes.train], rest.iloc[sizes.train : sizes.train + sizes.eval]
        if len(evaluation) < sizes.eval:
            eval_short[label] = len(evaluation)
        for side, part in (("test", test), ("eval", evaluation), ("train", train)):
            parts[side].append(part)
    if problems:
        raise DataError(
            f"class too small: {'; '.join(problems)}; lower --train_size, --test_size or --eval_size "
            "(per label), or pass --train_size all to train on whatever is left after test and eval"
        )

    splits = {}
    for index, side in enumerate(SPLITS, start=len(LABELS)):  # seeds distinct from the per-label ones
        side_df = pd.concat(parts[side])
        order = np.random.default_rng([seed, index]).permutation(len(side_df))
        splits[side] = side_df.iloc[order].reset_index(drop=True)[list(COLUMNS)]

    summary = {
        "seed": seed,
        "sizes_per_label": asdict(sizes),
        "rows_read": len(df),
        "distinct_texts": int(keys.nunique()),
        "distinct_texts_kept": len(distinct),
        "duplicate_rows_removed": len(kept) - len(distinct),
        "eval_short": eval_short,  # labels with fewer eval rows than asked: all that was left
        "conflicting_texts_dropped": {
            "texts": len(conflicting),
            "rows": len(df) - len(kept),
            "labels": sorted(list(labels) for labels in conflicting),
        },
        "counts": {
            side: {label: int((splits[side]["sentiment"] == label).sum()) for label in LABELS}
            for side in SPLITS
        },
    }
    if eval_short:
        logger.warning("eval set short of %d per label (nothing else left): %s", sizes.eval, eval_short)
    if len(conflicting):
        dropped = len(df) - len(kept)
        logger.warning("dropped %d texts that repeat with different labels (%d rows)", len(conflicting), dropped)
    logger.info("split %d distinct rows: %s", len(distinct), {side: len(splits[side]) for side in SPLITS})
    return splits, summary


def _csv_bytes(df: pd.DataFrame) -> bytes:
    """A split file's bytes: header sentiment,text, UTF-8, quoted as needed."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(df[list(COLUMNS)].itertuples(index=False, name=None))
    return buffer.getvalue().encode("utf-8")


def rows_sha256(df: pd.DataFrame) -> str:
    """sha256 of rows as a split file holds them (`write_split`), without writing them."""
    return hashlib.sha256(_csv_bytes(df)).hexdigest()


def split_digests(splits: dict[str, pd.DataFrame]) -> dict[str, str]:
    """sha256 of each split file as `write_split` writes it, without writing it."""
    return {f"{side}.csv": rows_sha256(splits[side]) for side in SPLITS}


def write_split(splits: dict[str, pd.DataFrame], summary: dict, output_dir: str | Path) -> Path:
    """Write output_dir/split/{train,eval,test}.csv and summary.json (plus the CSVs' sha256), all or nothing.

    The files go into a temporary directory beside `split/` that is renamed into place, so a failure
    leaves no half-written split (and an existing one as it was). `summary` itself is not changed.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    final = output_dir / "split"
    tmp = Path(tempfile.mkdtemp(prefix=".split-", dir=output_dir))
    try:
        for side in SPLITS:
            (tmp / f"{side}.csv").write_bytes(_csv_bytes(splits[side]))
        text = json.dumps({**summary, "sha256": split_digests(splits)}, indent=2, ensure_ascii=False)
        (tmp / "summary.json").write_text(text + "\n", encoding="utf-8")
        if final.exists():  # a directory cannot be renamed over a full one: move the old aside first
            old = Path(tempfile.mkdtemp(prefix=".split-old-", dir=output_dir))
            final.rename(old / "split")
            tmp.rename(final)
            shutil.rmtree(old)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote the split to %s", final)
    return final


def load_split(run_dir: str | Path) -> dict[str, pd.DataFrame]:
    """A run's train/eval/test rows: its split/*.csv, or, where those were left out (a shipped
    adapter carries no data set text), the same split drawn again from the source and seed its
    summary.json records. Either way the rows must match the sha256 recorded at training."""
    run_dir = Path(run_dir)
    summary_path = run_dir / "split" / "summary.json"
    if not summary_path.is_file():
        raise DataError(f"{run_dir}: no split/summary.json; pass --data_file (the run's split is unknown)")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    files = {side: run_dir / "split" / f"{side}.csv" for side in SPLITS}
    if all(path.is_file() for path in files.values()):
        splits = {side: read_side(path) for side, path in files.items()}
        how = f"{run_dir / 'split'}"
    else:
        source = summary.get("source")
        if not source or not (Path(source).exists() or HUB_ID.match(source)):
            raise DataError(f"{run_dir}: its split's CSVs are not here and its source {source!r} cannot be read "
                            "from here; run from the folder it was trained in, or pass --data_file")
        config_path = run_dir / "training_config.yaml"
        script = yaml.safe_load(config_path.read_text())["script"] if config_path.is_file() else {}
        table = read_labelled(source, dataset_config=script.get("dataset_config"),
                              encoding=script.get("encoding", "auto"), skip_malformed=script.get("skip_malformed", False))
        sizes = SplitSizes(**summary["sizes_per_label"])
        splits, _ = split_dataset(table, sizes, seed=summary["seed"])
        how = f"{source}, drawn again with seed {summary['seed']}"
    if split_digests(splits) != summary.get("sha256"):
        raise DataError(f"{run_dir}: the split read from {how} does not match the sha256 in {summary_path} "
                        "(the data changed since training); pass --data_file to evaluate on another file")
    logger.info("split of %s from %s: %s", run_dir, how, {side: len(df) for side, df in splits.items()})
    return splits


def read_side(path: Path) -> pd.DataFrame:
    """One split file as write_split wrote it; a side drawn empty (--eval_size 0) holds its header alone."""
    if path.read_bytes() == _csv_bytes(pd.DataFrame(columns=list(COLUMNS))):
        return pd.DataFrame(columns=list(COLUMNS))
    return read_labelled(str(path))


def to_prompt_completion(df: pd.DataFrame) -> datasets.Dataset:
    """TRL's prompt-completion format: the prompt ends where the label's completion starts."""
    return datasets.Dataset.from_dict(
        {
            "prompt": [build_prompt(text) for text in df["text"]],
            "completion": [build_completion(label) for label in df["sentiment"]],
        }
    )


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
