"""Peak memory of `finsent classify` against the size of the file: flat, as streaming promises.

    python eval/bench_stream.py --rows 10000 1000000 --json runs/bench_stream.json

Each size runs in a fresh process of its own (a process's peak resident memory is its own), on N
distinct fictional headlines (bench_classify.make_headlines: templates, never PhraseBank text) in
a CSV, labelled into Parquet by eval/classify.py as shipped (chunks of 4,096 rows, batch 32) on
the tests' tiny random Phi (train/tiny_model.py). A million rows through the real model take
hours on 2 cores; what grows with the file is not the model but what is around it (reading,
digests, the store of headlines seen, part files, the merge), and that is what this measures.
Per size: seconds, rows/s, peak RSS and the output's size. The runs use one thread (ONE_THREAD).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The tiny model's matrices are too small for two threads to share: on 2 busy cores they only wait on
# each other (56 rows/s against about 570 with one, seen here), and the speed is not what is measured.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 1_000_000], help="file sizes to run")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--scorer", choices=("model", "constant"), default="model",
                        help="constant: every headline gets 1/3 each without a model call, which leaves what is "
                        "around the model (reading, digests, seen store, parts, merge) to measure alone")
    parser.add_argument("--child", nargs=4, metavar=("SOURCE", "OUTPUT", "MODEL", "SCORER"), help=argparse.SUPPRESS)
    return parser


def child(source: str, output: str, model: str, scorer: str) -> None:
    """One classify run in this process; prints its peak RSS (MiB) as JSON."""
    from finsent.eval import classify

    if scorer == "constant":
        import numpy as np

        from finsent.space.classifier import Classifier

        Classifier.predict_proba = lambda self, texts, batch_size=32, progress=False: np.full((len(texts), 3), 1 / 3)

    code = classify.main([source, "-o", output, "--adapter", "none", "--base_model", model, "--quiet"])
    print(json.dumps({"code": code, "peak_rss_mib": peak_rss_kib() / 1024}))


def peak_rss_kib() -> int:
    """This process's own peak RSS: VmHWM. Not getrusage's ru_maxrss, which Linux carries across fork and exec, so
    that a child's figure is at least its parent's resident size when it was started (here the parent holds the
    million headlines it wrote: ru_maxrss said 869 MiB for a child whose own peak was far lower)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    from finsent.eval.bench_classify import make_headlines, write_csv
    from finsent.train.bench_throughput import machine
    from finsent.train.tiny_model import save_tiny_phi

    results = {"machine": machine(), "model": "tiny random Phi (train/tiny_model.py)", "scorer": args.scorer,
               "sizes": []}
    with tempfile.TemporaryDirectory(prefix="finsent-bench-stream-") as tmp:
        model = save_tiny_phi(Path(tmp) / "tiny-phi")
        for rows in args.rows:
            source = write_csv(Path(tmp) / f"news-{rows}.csv", make_headlines(rows))
            output = Path(tmp) / f"labelled-{rows}.parquet"
            start = time.perf_counter()
            done = subprocess.run([sys.executable, __file__, "--child", str(source), str(output), str(model),
                                   args.scorer],
                                  capture_output=True, text=True, check=True, env={**os.environ, **ONE_THREAD})
            seconds = time.perf_counter() - start
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            entry = {"rows": rows, "seconds": round(seconds, 1), "rows_per_s": round(rows / seconds, 1),
                     "peak_rss_mib": round(measured["peak_rss_mib"], 1),
                     "input_mib": round(source.stat().st_size / 2**20, 1),
                     "output_mib": round(output.stat().st_size / 2**20, 1), "closing_line": done.stderr.strip()}
            results["sizes"].append(entry)
            print(json.dumps(entry), flush=True)
            source.unlink()
            output.unlink()
    print(f"\n{json.dumps(results['machine'])}\n")
    print("| rows | seconds (whole command) | rows/s | peak RSS (MiB) | input (MiB) | output (MiB) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for e in results["sizes"]:
        print(f"| {e['rows']:,} | {e['seconds']} | {e['rows_per_s']} | {e['peak_rss_mib']} | {e['input_mib']} | "
              f"{e['output_mib']} |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
