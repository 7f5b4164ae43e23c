"""How far the shipped default's scores move from its recorded results, by dtype and oneDNN ISA: the tolerances'
source for tests/test_behaviour.py and tests/test_default_adapter.py.

    python eval/bench_record.py --json runs/bench_record.json                     # ~10 minutes on 2 cores
    python eval/bench_record.py --isa AVX2 --dtype float32 --evaluate             # one setting, with the re-evaluation

space/default-adapter/eval_results.json was recorded in bf16 on one CPU. For each ONEDNN_MAX_CPU_ISA value (--isa;
"" is none: the CPU's own ISA) and dtype (--dtype), a fresh process loads the shipped adapter on the embedded
SmolLM2 in that dtype and scores the behaviour suite's draw in one call, as the suite does. It reports the largest
move, against the record, of a quoted failing case's probability and of its explanation's word weights, and each
capability's failure count's. With --evaluate it also runs `finsent evaluate` on the shipped adapter again (the
test split drawn from the PhraseBank in ../shared) and counts, per run (base, fine_tuned), the labels that moved
and the accuracy's change. bf16 where the CPU only emulates it is slow (minutes per setting, more with --evaluate).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT = REPO / "space" / "default-adapter"


def measure(dtype: str, evaluate: bool) -> dict:
    """In this process: the moves of the behaviour suite's quoted cases (and of a re-evaluation) from the record."""
    from finsent.eval.behaviour import draw_suite, run_suite, why
    from finsent.space.classifier import LABELS, load_classifier
    from finsent.space.embedded import EMBEDDED_MODEL_ID
    from finsent.space.precision import this_machine
    from finsent.train.bench_throughput import machine

    results = json.loads((DEFAULT / "eval_results.json").read_text())
    recorded = results["runs"]["fine_tuned"]["behaviour"]
    classifier = load_classifier(EMBEDDED_MODEL_ID, str(DEFAULT), dtype=dtype)
    drawn = draw_suite(results["behaviour"]["cases_per_capability"], results["behaviour"]["seed"])
    texts = sorted({t for case in drawn for t in case.texts})
    scored = dict(zip(texts, classifier.predict_proba(texts), strict=True))  # one call, as the suite scores

    class Scripted:
        def predict_proba(self, batch, batch_size=32):
            import numpy as np

            return np.array([scored[t] for t in batch])

    again = run_suite(Scripted(), drawn)
    probability, weight = 0.0, 0.0
    for case in (case for capability in recorded.values() for case in capability["failing"]):
        if "expected" in case:
            now = scored[case["texts"][0]][LABELS.index(case["predicted"])]
            probability = max(probability, abs(now - case["probability"]))
            weights = {w["word"]: w["weight"] for w in why(classifier, case["texts"][0], case["predicted"], 99)}
            weight = max([weight, *(abs(weights.get(w["word"], 0.0) - w["weight"]) for w in case.get("why", []))])
        elif "label" in case:
            k = LABELS.index(case["label"])
            probability = max(probability, *(abs(scored[t][k] - p) for t, p in zip(case["texts"], case["probabilities"],
                                                                                     strict=True)))
    out = {"machine": machine(), "isa_cap": os.environ.get("ONEDNN_MAX_CPU_ISA", ""), "dtype": dtype,
           "native_bf16": this_machine("cpu").native_bf16,
           "behaviour": {"max_probability_move": probability, "max_weight_move": weight,
                         "max_failures_move": max(abs(again[name]["failures"] - run["failures"])
                                                  for name, run in recorded.items())}}
    if evaluate:
        out["evaluate"] = reevaluate(dtype, results)
    return out


def reevaluate(dtype: str, shipped: dict) -> dict:
    """`finsent evaluate --adapter space/default-adapter` in `dtype`: per run, labels moved and accuracy's change."""
    from finsent.eval import evaluate

    with tempfile.TemporaryDirectory() as folder:
        code = evaluate.main(["--adapter", str(DEFAULT), "--output_dir", folder, "--error_examples", "0",
                              "--dtype", dtype])
        if code:
            raise SystemExit(f"evaluate exited {code}")
        again = json.loads((Path(folder) / "eval_results.json").read_text())
    return {name: {"rows": len(run["predictions"]),
                   "moved": sum(a != b for a, b in zip(again["runs"][name]["predictions"], run["predictions"],
                                                       strict=True)),
                   "accuracy_change": again["runs"][name]["metrics"]["accuracy"] - run["metrics"]["accuracy"]}
            for name, run in shipped["runs"].items() if name in ("base", "fine_tuned")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--isa", nargs="+", default=["", "AVX2"], help='ONEDNN_MAX_CPU_ISA values; "": none')
    parser.add_argument("--dtype", nargs="+", default=["bfloat16", "float32"], choices=("bfloat16", "float32"))
    parser.add_argument("--evaluate", action="store_true", help="also evaluate the adapter again (PhraseBank)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: this process, one dtype
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.dtype[0], args.evaluate)))
        return 0
    rows = []
    for isa in args.isa:
        for dtype in args.dtype:
            env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"} | ({"ONEDNN_MAX_CPU_ISA": isa}
                                                                                           if isa else {})
            command = [sys.executable, __file__, "--one", "--dtype", dtype, *(["--evaluate"] if args.evaluate else [])]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
