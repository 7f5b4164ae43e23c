"""Peak memory and time of `finsent signal` against the size of the file: flat, as reading in chunks promises.

    python eval/bench_signal.py --rows 100000 1000000 --repeat 3 --json runs/bench_signal.json

For each size and format (Parquet, CSV) a synthetic table shaped like `finsent classify`'s output is written
(date with a UTC offset over a year, one of 50 tickers, a short fictional headline, label, the three
probabilities drawn from a Dirichlet, status), and eval/aggregate.py's `main` runs on it in a fresh process of
its own (a process's peak resident memory is its own: bench_stream.py's peak_rss_kib, VmHWM), grouping by
ticker and day (50 x 365 = 18,250 groups and periods, what the accumulators hold). Per size and format: the
median seconds of the whole command and the median peak RSS over --repeat runs, and the file's size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from finsent.eval.bench_stream import ONE_THREAD, peak_rss_kib

TICKERS = 50
DAYS = 365
BLOCK = 100_000  # rows written at a time


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000], help="table sizes to run")
    parser.add_argument("--formats", nargs="+", choices=("parquet", "csv"), default=["parquet", "csv"])
    parser.add_argument("--repeat", type=int, default=3, help="runs per size and format; medians are reported")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--child", nargs=2, metavar=("SOURCE", "OUTPUT"), help=argparse.SUPPRESS)
    return parser


def child(source: str, output: str) -> None:
    """One `finsent signal` run in this process; prints its exit code and peak RSS (MiB) as JSON."""
    from finsent.eval import aggregate

    code = aggregate.main([source, "-o", output, "--by", "ticker", "--freq", "D", "--quiet"])
    print(json.dumps({"code": code, "peak_rss_mib": peak_rss_kib() / 1024}))


def write_table(path: Path, rows: int, seed: int = 0) -> Path:
    """A classify-like table of `rows` rows, written BLOCK rows at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    writer = None
    start = np.datetime64("2026-01-01T00:00:00")
    try:
        for first in range(0, rows, BLOCK):
            n = min(BLOCK, rows - first)
            seconds = rng.integers(0, DAYS * 86_400, n)
            dates = np.datetime_as_string(start + seconds.astype("timedelta64[s]")).astype(object) + "+02:00"
            tickers = np.char.add("T", rng.integers(0, TICKERS, n).astype(str)).astype(object)
            probs = rng.dirichlet([1.0, 2.0, 1.5], n)
            labels = np.array(["negative", "neutral", "positive"], dtype=object)[probs.argmax(axis=1)]
            texts = np.char.add("Fictional Holdings reports its results, item ", (first + np.arange(n)).astype(str))
            table = pa.table({"date": dates, "ticker": tickers, "text": texts.astype(object), "label": labels,
                              "negative": probs[:, 0], "neutral": probs[:, 1], "positive": probs[:, 2],
                              "status": np.full(n, "", dtype=object)})
            if path.suffix == ".parquet":
                writer = writer or pq.ParquetWriter(path, table.schema)
                writer.write_table(table)
            else:
                writer = writer or pacsv.CSVWriter(path, table.schema)
                writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return path


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    from finsent.train.bench_throughput import machine

    results = {"machine": machine(), "groups": f"{TICKERS} tickers x {DAYS} days", "runs": []}
    with tempfile.TemporaryDirectory(prefix="finsent-bench-signal-") as tmp:
        for rows in args.rows:
            for fmt in args.formats:
                source = write_table(Path(tmp) / f"labelled-{rows}.{fmt}", rows)
                runs = []
                for i in range(args.repeat):
                    output = Path(tmp) / f"signal-{rows}-{i}.parquet"
                    start = time.perf_counter()
                    done = subprocess.run([sys.executable, __file__, "--child", str(source), str(output)],
                                          capture_output=True, text=True, check=True,
                                          env={**os.environ, **ONE_THREAD})
                    seconds = time.perf_counter() - start
                    measured = json.loads(done.stdout.strip().splitlines()[-1])
                    assert measured["code"] == 0, done.stderr
                    runs.append({"seconds": round(seconds, 2), "peak_rss_mib": round(measured["peak_rss_mib"], 1),
                                 "closing_line": done.stderr.strip().splitlines()[-1]})
                    output.unlink()
                entry = {"rows": rows, "format": fmt, "input_mib": round(source.stat().st_size / 2**20, 1),
                         "seconds_median": statistics.median(r["seconds"] for r in runs),
                         "peak_rss_mib_median": statistics.median(r["peak_rss_mib"] for r in runs), "runs": runs}
                results["runs"].append(entry)
                print(json.dumps(entry), flush=True)
                source.unlink()
    print(f"\n{json.dumps(results['machine'])}\n")
    print("| rows | format | input (MiB) | seconds (whole command, median) | peak RSS (MiB, median) | runs |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for e in results["runs"]:
        print(f"| {e['rows']:,} | {e['format']} | {e['input_mib']} | {e['seconds_median']} | "
              f"{e['peak_rss_mib_median']} | {len(e['runs'])} |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
