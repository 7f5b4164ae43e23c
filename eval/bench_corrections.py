"""The correction loop end to end: the shipped adapter, corrected on half of a set of headlines, scored on the other.

    python eval/bench_corrections.py --json runs/bench_corrections.json      # ~10 minutes on 2 CPU cores

eval/modern_headlines.csv holds 270 fictional headlines in today's newsroom wording (90 a label), written for this
benchmark by another hand than the training templates (train/augment_templates.py) and the behaviour suite. A
seeded half of each label are the corrections, the other half is held out:

1. before: the shipped adapter scores the held-out half and the adapter's 900-row PhraseBank test split;
2. the corrections go through the app's own store (space/feedback.py: FeedbackStore, the model's answers with them)
   into a feedback folder, and `finsent train --config corrections-embedded --corrections FOLDER` continues the
   adapter on them (plus its replayed rows), timed;
3. after: the new adapter scores the same rows.

Reported: accuracy before and after on each set with bootstrap intervals, and the paired difference (paired
bootstrap interval, McNemar's exact p), with the machine. Scored in float32, so the figures do not depend on the
CPU's bf16 support.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import time
from pathlib import Path

from finsent.eval.uncertainty import compare, intervals
from finsent.space.classifier import LABELS, load_classifier
from finsent.space.embedded import EMBEDDED_MODEL_ID
from finsent.space.feedback import FeedbackStore
from finsent.train import train as train_script
from finsent.train.bench_throughput import machine
from finsent.train.data import load_split

HEADLINES = Path(__file__).resolve().parent / "modern_headlines.csv"


def halves(seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(corrections, held out): each label's rows shuffled with `seed`, the first half of each for corrections."""
    rows = list(csv.DictReader(HEADLINES.open(encoding="utf-8")))
    first, second = [], []
    for label in LABELS:
        mine = [row for row in rows if row["sentiment"] == label]
        random.Random(f"{seed}/{label}").shuffle(mine)
        first += mine[: len(mine) // 2]
        second += mine[len(mine) // 2:]
    return first, second


def predict(classifier, texts: list[str]) -> tuple[list[str], list[dict]]:
    probs = classifier.predict_proba(texts, batch_size=32)
    return ([LABELS[int(p.argmax())] for p in probs],
            [{label: float(x) for label, x in zip(LABELS, p, strict=True)} for p in probs])


def score(adapter: str, sets: dict[str, tuple[list[str], list[str]]], dtype: str) -> dict[str, list[str]]:
    classifier = load_classifier(EMBEDDED_MODEL_ID, adapter, dtype=dtype)
    return {name: predict(classifier, texts) for name, (texts, _) in sets.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", default="space/default-adapter")
    parser.add_argument("--work", default="runs/bench_corrections", help="the feedback folder and the new adapter")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--seed", type=int, default=0, help="of the halves")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    corrections, held_out = halves(args.seed)
    test = load_split(args.adapter)["test"]
    sets = {"held-out modern headlines": ([r["text"] for r in held_out], [r["sentiment"] for r in held_out]),
            "corrections themselves": ([r["text"] for r in corrections], [r["sentiment"] for r in corrections]),
            "PhraseBank test split": (test["text"].tolist(), test["sentiment"].tolist())}
    before = score(args.adapter, sets, args.dtype)

    work = Path(args.work)
    if work.exists():
        raise SystemExit(f"error: {work} exists; remove it or pass another --work")
    clock = iter(range(1_800_000_000, 1_900_000_000, 10))  # a correction every 10 s: under the rate limit
    store = FeedbackStore(work / "feedback", clock=lambda: next(clock))
    model = {"adapter_sha256": None, "prompt_version": 2}
    _, probabilities = before["corrections themselves"]
    for row, probs in zip(corrections, probabilities, strict=True):
        if not store.save("benchmark", row["text"], row["sentiment"], probs, model):
            raise SystemExit(f"error: {HEADLINES} repeats a headline: {row['text']!r}")
    start = time.perf_counter()
    status = train_script.main(["--config", "corrections-embedded", "--init_adapter", args.adapter,
                                "--corrections", str(work / "feedback"), "--output_dir", str(work / "adapter")])
    train_seconds = time.perf_counter() - start
    if status:
        raise SystemExit(f"error: training failed ({status})")
    after = score(str(work / "adapter"), sets, args.dtype)

    results = {"machine": machine(), "dtype": args.dtype, "seed": args.seed, "corrections": len(corrections),
               "train_seconds": round(train_seconds, 1),
               "recipe": "train/configs/corrections-embedded.yaml", "sets": {}}
    print(f"{json.dumps(results['machine'])}\ntraining: {train_seconds:.0f} s on {len(corrections)} corrections\n")
    print("| rows | n | before | after | after - before (95 % paired interval) | McNemar p |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, (_, truth) in sets.items():
        old, new = before[name][0], after[name][0]
        paired = compare(truth, new, old)
        results["sets"][name] = {
            "rows": len(truth),
            "before": {"accuracy": sum(a == b for a, b in zip(old, truth, strict=True)) / len(truth),
                       "interval": intervals(truth, old)["accuracy"]},
            "after": {"accuracy": sum(a == b for a, b in zip(new, truth, strict=True)) / len(truth),
                      "interval": intervals(truth, new)["accuracy"]},
            "paired": paired,
        }
        r = results["sets"][name]
        low, high = paired["interval"]
        print(f"| {name} | {len(truth)} | {r['before']['accuracy']:.1%} [{r['before']['interval'][0]:.1%}, "
              f"{r['before']['interval'][1]:.1%}] | {r['after']['accuracy']:.1%} [{r['after']['interval'][0]:.1%}, "
              f"{r['after']['interval'][1]:.1%}] | {paired['accuracy_difference']:+.1%} [{low:+.1%}, {high:+.1%}] | "
              f"{paired['mcnemar_p']:.3g} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
