"""Turn labelled headlines into a signal: per company and period, the mean score with its 95 % interval.

    finsent classify space/examples/feed.csv -o labelled.parquet
    finsent signal labelled.parquet -o signal.csv --by ticker --freq W --chart signal.html
    python eval/aggregate.py labelled.parquet -o signal.parquet --by ticker --time date --freq M --tz Europe/Helsinki

LABELLED is `finsent classify`'s output (.parquet or .csv; `--prefix` as classify was given it), or any table
with a date column and either classify's probability columns or a `score` column. A table with a text column
and no scores is scored first, by classify with the shipped model (or --adapter/--base_model) into a temporary
file; to keep the labels or choose classify's other settings, run `finsent classify` first.

The output has one row per group and period: the group (the --by column; without --by, `group` = all), `period`
(its first day), `count`, `score` (the mean of P(positive) - P(negative)), `score_low` and `score_high` (its 95 %
interval, a normal approximation with Student's t: space/signals.py says why), `share_negative`,
`share_neutral`, `share_positive` and `bullishness` (Antweiler & Frank 2004). The input is read in chunks, so
memory stays flat in its rows. The output is written beside its place and renamed, never half-written;
--chart writes the chart as HTML, and as PNG beside it where a Chrome/Chromium is installed (eval/plots.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import pyarrow as pa

from finsent.eval.headline_tables import output_format, read_provenance, write_table
from finsent.space.classifier import TEXT_COLUMNS
from finsent.space.errors import first_line
from finsent.space.signals import FREQS, Counts, SignalError, Spec, aggregate, read_labelled, scoring, signal_chart
from finsent.train.data import UsageError

logger = logging.getLogger("finsent.signal")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", metavar="LABELLED", help="classify's output: a .parquet or .csv file")
    parser.add_argument("-o", "--output", required=True, help="a .parquet or .csv file, or - for standard output (CSV)")
    parser.add_argument("--by", help="the grouping column, e.g. ticker (default: none, one group named all)")
    parser.add_argument("--time", default="date", help="the date column (default: date): ISO 8601 text, such as "
                        "2026-01-05 or 2026-01-05T09:30:00+02:00, or a Parquet date or timestamp")
    parser.add_argument("--freq", default="D", choices=tuple(FREQS),
                        help="the period: D (day, the default), W (week from Monday) or M (calendar month)")
    parser.add_argument("--tz", default="UTC", help="dates with a UTC offset are converted to this zone before their "
                        "day is taken (default: UTC); dates without one are taken as written")
    parser.add_argument("--prefix", default="", help="the prefix classify put before its column names (--prefix)")
    parser.add_argument("--chart", metavar="FILE.html", help="also draw the signal: an HTML chart, and a PNG beside "
                        "it where a Chrome/Chromium is installed")
    parser.add_argument("--text_column", help="a table without scores: its text column, scored first (default: text, "
                        "headline or sentence)")
    parser.add_argument("--adapter", default="default", help="a table without scores: the adapter classify scores it "
                        "with (default: the shipped one)")
    parser.add_argument("--base_model", help="a table without scores: classify's --base_model")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output (and chart)")
    parser.add_argument("--quiet", action="store_true", help="no log; the closing line stays")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        level=logging.WARNING if args.quiet else logging.INFO)
    try:
        summary = signal(args)
    except (UsageError, SignalError) as err:  # the user's to fix: one line, no traceback, nothing written
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary, file=sys.stderr, flush=True)
    return 0


def signal(args: argparse.Namespace) -> str:
    start = time.perf_counter()
    spec = Spec(time=args.time, by=args.by, freq=args.freq, tz=args.tz, prefix=args.prefix)
    check_flags(args)
    logger.info("signal: %s", json.dumps({k: v for k, v in vars(args).items() if v is not None}))
    with tempfile.TemporaryDirectory(prefix="finsent-signal-") as scratch:
        source = scored_input(args, spec, Path(scratch))
        table, counts = aggregate(read_labelled(source, spec), spec, args.input)
        if counts.scored == 0:
            raise UsageError(f"{args.input}: no scored rows ({counts.rows:,} rows, none with a score); nothing to "
                             "aggregate")
        provenance = {"finsent_version": version("finsent"), "input": args.input, "by": args.by, "time": args.time,
                      "freq": args.freq, "tz": args.tz, "prefix": args.prefix, "rows": counts.rows,
                      "scored": counts.scored, "unscored": counts.unscored,
                      "interval": "95 %, normal approximation with Student's t (space/signals.py)",
                      "classify": read_provenance(source)}  # the model and settings that scored it, where recorded
        write_table(args.output, iter([pa.Table.from_pandas(table, preserve_index=False)]), lambda: provenance,
                    Path(args.output).parent if args.output != "-" else Path(scratch))
    chart = write_chart(table, spec, args.chart) if args.chart else ""
    return closing_line(args, table, counts, chart, time.perf_counter() - start)


def check_flags(args) -> None:
    """Refuse what would fail late, before anything is read."""
    output_format(args.output)
    if args.output != "-" and Path(args.output).exists() and not args.overwrite:
        raise UsageError(f"-o {args.output}: it exists; pass --overwrite to replace it, or write elsewhere")
    if args.chart:
        if Path(args.chart).suffix.lower() != ".html":
            raise UsageError(f"--chart {args.chart}: name it .html (a .png beside it follows where Chromium is "
                             "installed)")
        if Path(args.chart).exists() and not args.overwrite:
            raise UsageError(f"--chart {args.chart}: it exists; pass --overwrite to replace it, or write elsewhere")
    if not Path(args.input).is_file():
        raise UsageError(f"{args.input}: no such file; pass classify's output, a .parquet or .csv file")
    if Path(args.input).suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise UsageError(f"{args.input}: read .parquet or .csv files (by extension)")


def scored_input(args, spec: Spec, scratch: Path) -> str:
    """The input, or where it has texts and no scores, its copy scored by classify (eval/classify.py) in `scratch`."""
    columns = columns_of(args.input)
    if not scoring(columns, spec)[1]:
        return args.input
    text = args.text_column or next((name for name in TEXT_COLUMNS if name in columns), None)
    if text is None or text not in columns:
        raise UsageError(f"{args.input}: not classify's output and no text column to score (no score, "
                         f"{'/'.join(spec.column(n) for n in ('negative', 'neutral', 'positive'))} or "
                         f"{args.text_column or '/'.join(TEXT_COLUMNS)} column; its columns are {columns[:8]})")
    for name in (spec.time, spec.by):  # before minutes of scoring
        if name and name not in columns:
            raise UsageError(f"{args.input}: no {name!r} column (its columns are {columns[:8]}); name it with "
                             f"--{'time' if name == spec.time else 'by'}")
    from finsent.eval import classify

    labelled = scratch / "labelled.parquet"
    logger.info("%s has texts and no scores: classify scores its %r column first", args.input, text)
    argv = [args.input, "-o", str(labelled), "--text_column", text, "--adapter", args.adapter, "--prefix", args.prefix,
            *(["--base_model", args.base_model] if args.base_model else []), *(["--quiet"] if args.quiet else [])]
    logger.info(classify.classify(classify.make_parser().parse_args(argv)))  # its UsageError is ours: one line
    return str(labelled)


def columns_of(path: str) -> list[str]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        if Path(path).suffix.lower() == ".csv":
            return pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16)).schema.names
        return pq.ParquetFile(path).schema_arrow.names
    except (pa.ArrowException, OSError) as err:
        raise UsageError(f"{path}: not a readable file ({first_line(err)})") from None


def write_chart(table, spec: Spec, path: str) -> str:
    from finsent.eval.plots import write_figure

    written = write_figure(signal_chart(table, spec), Path(path).with_suffix(""))
    return " and ".join(str(p) for p in written.values())


def closing_line(args, table, counts: Counts, chart: str, seconds: float) -> str:
    groups = table.iloc[:, 0].nunique()
    skipped = f", {counts.unscored:,} without a score left out" if counts.unscored else ""
    where = "standard output" if args.output == "-" else args.output
    return (f"signal: {counts.rows:,} rows, {counts.scored:,} scored{skipped}; {groups:,} group(s) x "
            f"{table['period'].nunique():,} {FREQS[args.freq].split(' ')[0]}(s) = {len(table):,} rows, "
            f"{seconds:,.1f} s -> {where}" + (f"; chart: {chart}" if chart else ""))


if __name__ == "__main__":
    raise SystemExit(main())
