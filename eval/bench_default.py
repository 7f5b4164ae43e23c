"""Scoring speed of the app's default, before and after the shipped adapter, in one process.

    python eval/bench_default.py [--adapter space/default-adapter] [--rounds 3]

Before: the embedded SmolLM2-135M alone with prompt version 1 (the long instruction),
what `make demo` served until the default adapter shipped. After: the same base with
the shipped adapter merged, prompt version 2 and the label prior shift, as it serves
now. Both score the adapter's 900-row test split (drawn again from its recorded
source) in bf16, batch 32, with the shared prefix; the rounds alternate and the
median is reported, with the machine and each variant's accuracy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from finsent.eval.metrics import compute_metrics
from finsent.space import classifier as classifier_module
from finsent.space.classifier import LABELS, load_classifier
from finsent.space.embedded import EMBEDDED_MODEL_ID
from finsent.train.bench_throughput import machine
from finsent.train.data import load_split


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", default="space/default-adapter")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    test = load_split(args.adapter)["test"]
    texts, truth = test["text"].tolist(), test["sentiment"].tolist()
    current = classifier_module.PROMPT_TEMPLATE
    variants = {
        "before: base alone, prompt v1": (load_classifier(EMBEDDED_MODEL_ID, dtype="bfloat16"),
                                          classifier_module.PROMPTS[1]),
        "after: base + default adapter, prompt v2, prior shift":
            (load_classifier(EMBEDDED_MODEL_ID, args.adapter, dtype="bfloat16"), current),
    }
    seconds = {name: [] for name in variants}
    accuracy = {}
    try:
        for _ in range(args.rounds + 1):  # the first round warms up and is dropped
            for name, (classifier, prompt) in variants.items():
                classifier_module.PROMPT_TEMPLATE = prompt
                classifier.__post_init__()  # label ids and shared prefix of this prompt
                classifier._prefix_cache = None  # computed again in the timed call, as a fresh app does
                start = time.perf_counter()
                probs = classifier.predict_proba(texts, batch_size=32)
                seconds[name].append(time.perf_counter() - start)
                accuracy[name] = compute_metrics(truth, [LABELS[i] for i in probs.argmax(axis=1)])["accuracy"]
    finally:
        classifier_module.PROMPT_TEMPLATE = current
    results = {"machine": machine(), "rows": len(texts), "rounds": args.rounds, "variants": {}}
    print(f"{json.dumps(results['machine'])}\n")
    print("| variant | headlines/s (median) | seconds (median) | accuracy |\n| --- | ---: | ---: | ---: |")
    for name, times in seconds.items():
        median = statistics.median(times[1:])
        results["variants"][name] = {"headlines_per_s": round(len(texts) / median, 1), "seconds": round(median, 2),
                                     "all_seconds": [round(t, 2) for t in times], "accuracy": accuracy[name]}
        print(f"| {name} | {len(texts) / median:.1f} | {median:.2f} | {accuracy[name]:.4f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
