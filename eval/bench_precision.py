"""The default model in bf16 and in fp32 on this CPU, with oneDNN's ISA as it is and capped below bf16.

    python eval/bench_precision.py --json runs/bench_precision.json      # ~5 minutes on 2 cores

For each ONEDNN_MAX_CPU_ISA value (--isa; "" is none: the CPU's own ISA), a fresh process loads the shipped adapter
on the embedded SmolLM2 twice, in bfloat16 and in float32, and scores eval/modern_headlines.csv (270 fictional
headlines, batch 32) with each, alternating, for --rounds rounds after one warm-up. It reports the median
headlines/s of each dtype, bf16's speed-up, the accuracy of each, how often they agree, and what
space/precision.py decides for that process. AVX512_CORE imitates the AVX-512 Xeons without BF16 (Skylake to
Ice Lake); AVX2 a CPU without AVX-512.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEADLINES = Path(__file__).resolve().parent / "modern_headlines.csv"


def measure(adapter: str, rounds: int) -> dict:
    """In this process: both dtypes, alternated; the median of `rounds` timed rounds."""
    from finsent.space.classifier import LABELS, load_classifier
    from finsent.space.embedded import EMBEDDED_MODEL_ID
    from finsent.space.precision import this_machine
    from finsent.train.bench_throughput import machine

    rows = list(csv.DictReader(HEADLINES.open(encoding="utf-8")))
    texts, truth = [r["text"] for r in rows], [r["sentiment"] for r in rows]
    models = {dtype: load_classifier(EMBEDDED_MODEL_ID, adapter, dtype=dtype) for dtype in ("bfloat16", "float32")}
    seconds, labels = {dtype: [] for dtype in models}, {}
    for round_ in range(rounds + 1):
        for dtype, model in models.items():
            start = time.perf_counter()
            probs = model.predict_proba(texts, batch_size=32)
            if round_:  # the first round warms up
                seconds[dtype].append(time.perf_counter() - start)
            labels[dtype] = [LABELS[int(p.argmax())] for p in probs]
    speed = {dtype: len(texts) / statistics.median(s) for dtype, s in seconds.items()}
    return {"machine": machine(), "isa_cap": os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
            "decided": this_machine("cpu").reason, "rows": len(texts), "rounds": rounds,
            "headlines_per_s": speed, "bf16_speedup": speed["bfloat16"] / speed["float32"],
            "accuracy": {dtype: sum(a == b for a, b in zip(pred, truth, strict=True)) / len(truth)
                         for dtype, pred in labels.items()},
            "agreement": sum(a == b for a, b in zip(labels["bfloat16"], labels["float32"], strict=True)) / len(truth)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", default="space/default-adapter")
    parser.add_argument("--isa", nargs="+", default=["", "AVX512_CORE"], help='ONEDNN_MAX_CPU_ISA values; "": none')
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child process: measure, print JSON
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.adapter, args.rounds)))
        return 0
    results = []
    for cap in args.isa:
        env = {key: value for key, value in os.environ.items() if key != "ONEDNN_MAX_CPU_ISA"}
        if cap:
            env["ONEDNN_MAX_CPU_ISA"] = cap
        out = subprocess.run([sys.executable, __file__, "--one", "--adapter", args.adapter, "--rounds",
                              str(args.rounds)], env=env, capture_output=True, text=True, check=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    print(json.dumps(results[0]["machine"]) + "\n")
    print("| ONEDNN_MAX_CPU_ISA | precision.py decides | bf16 headlines/s | fp32 headlines/s | bf16 speed-up | "
          "accuracy bf16 / fp32 | labels agree |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        speed, acc = r["headlines_per_s"], r["accuracy"]
        print(f"| {r['isa_cap'] or '(none)'} | {r['decided']} | {speed['bfloat16']:.1f} | {speed['float32']:.1f} | "
              f"{r['bf16_speedup']:.2f}x | {acc['bfloat16']:.3f} / {acc['float32']:.3f} | {r['agreement']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
