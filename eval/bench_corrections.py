"""The correction loop end to end: the shipped adapter, corrected on half of a set of headlines, scored on the other.

    python eval/bench_corrections.py --json runs/bench_corrections.json      # ~20 minutes on 2 CPU cores

eval/modern_headlines.csv holds 270 fictional headlines in today's newsroom wording (90 a label), written for this
benchmark by another hand than the training templates (train/augment_templates.py) and the behaviour suite. They
are cut into two seeded halves (half of each label in each), and each half is the corrections once, with the other
held out (two folds, so every headline is held out once):

1. before: the shipped adapter scores all 270 and the adapter's 900-row PhraseBank test split;
2. a half goes through the app's own store (space/feedback.py: FeedbackStore, with the model's answers) into a
   feedback folder, and `finsent train --config corrections-embedded --corrections FOLDER` continues the adapter on
   it (plus its replayed rows), timed;
3. after: the new adapter scores the other half, the corrections themselves and the PhraseBank test split.

Reported: accuracy before and after with bootstrap intervals, and the paired difference (paired bootstrap interval,
McNemar's exact p), per fold and over all 270 held-out answers, with the machine. Scored in float32, so the figures
do not depend on the CPU's bf16 support.
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


def score(adapter: str, sets: dict[str, tuple[list[str], list[str]]], dtype: str) -> dict[str, tuple]:
    classifier = load_classifier(EMBEDDED_MODEL_ID, adapter, dtype=dtype)
    return {name: predict(classifier, texts) for name, (texts, _) in sets.items()}


def correct(adapter: str, rows: list[dict], probabilities: list[dict], work: Path) -> float:
    """The rows into a feedback folder through the app's store, then the continuation; its seconds."""
    clock = iter(range(1_800_000_000, 1_900_000_000, 10))  # a correction every 10 s: under the rate limit
    store = FeedbackStore(work / "feedback", clock=lambda: next(clock))
    for row, probs in zip(rows, probabilities, strict=True):
        if not store.save("benchmark", row["text"], row["sentiment"], probs, {"adapter_sha256": None,
                                                                              "prompt_version": 2}):
            raise SystemExit(f"error: {HEADLINES} repeats a headline: {row['text']!r}")
    start = time.perf_counter()
    status = train_script.main(["--config", "corrections-embedded", "--init_adapter", adapter,
                                "--corrections", str(work / "feedback"), "--output_dir", str(work / "adapter")])
    if status:
        raise SystemExit(f"error: training failed ({status})")
    return time.perf_counter() - start


def summary(truth: list[str], old: list[str], new: list[str]) -> dict:
    """Accuracy before and after, each with its bootstrap interval, and after against before on the same rows."""
    return {"rows": len(truth),
            **{side: {"accuracy": sum(a == b for a, b in zip(pred, truth, strict=True)) / len(truth),
                      "interval": intervals(truth, pred)["accuracy"]} for side, pred in (("before", old), ("after", new))},
            "paired": compare(truth, new, old)}


def row_line(name: str, r: dict) -> str:
    (b0, b1), (a0, a1), paired = r["before"]["interval"], r["after"]["interval"], r["paired"]
    low, high = paired["interval"]
    return (f"| {name} | {r['rows']} | {r['before']['accuracy']:.1%} [{b0:.1%}, {b1:.1%}] | "
            f"{r['after']['accuracy']:.1%} [{a0:.1%}, {a1:.1%}] | {paired['accuracy_difference']:+.1%} "
            f"[{low:+.1%}, {high:+.1%}] | {paired['mcnemar_p']:.3g} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", default="space/default-adapter")
    parser.add_argument("--work", default="runs/bench_corrections", help="the feedback folders and the new adapters")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--seed", type=int, default=0, help="of the halves (the training's own seed is the recipe's)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    work = Path(args.work)
    if work.exists():
        raise SystemExit(f"error: {work} exists; remove it or pass another --work")

    first, second = halves(args.seed)
    test = load_split(args.adapter)["test"]
    modern = first + second
    sets = {"modern": ([r["text"] for r in modern], [r["sentiment"] for r in modern]),
            "phrasebank": (test["text"].tolist(), test["sentiment"].tolist())}
    before = score(args.adapter, sets, args.dtype)
    before_modern = dict(zip(sets["modern"][0], zip(*before["modern"], strict=True), strict=True))  # text -> (label, p)

    results = {"machine": machine(), "dtype": args.dtype, "seed": args.seed,
               "recipe": "train/configs/corrections-embedded.yaml", "folds": []}
    pooled = {"truth": [], "before": [], "after": []}
    for fold, (taught, held) in enumerate([(first, second), (second, first)]):
        folder = work / f"fold{fold}"
        seconds = correct(args.adapter, taught, [before_modern[r["text"]][1] for r in taught], folder)
        fold_sets = {"held-out modern headlines": ([r["text"] for r in held], [r["sentiment"] for r in held]),
                     "corrections themselves": ([r["text"] for r in taught], [r["sentiment"] for r in taught]),
                     "PhraseBank test split": sets["phrasebank"]}
        after = score(str(folder / "adapter"), fold_sets, args.dtype)
        record = {"corrections": len(taught), "train_seconds": round(seconds, 1), "sets": {}}
        for name, (texts, truth) in fold_sets.items():
            old = (before["phrasebank"][0] if name == "PhraseBank test split"
                   else [before_modern[t][0] for t in texts])
            new = after[name][0]
            record["sets"][name] = summary(truth, old, new)
            if name != "PhraseBank test split":  # our own fictional rows: each wrong answer, before or after
                record["sets"][name]["wrong"] = [{"text": t, "label": y, "before": a, "after": b} for t, y, a, b
                                                 in zip(texts, truth, old, new, strict=True) if y != a or y != b]
            if name == "held-out modern headlines":
                pooled["truth"] += truth
                pooled["before"] += old
                pooled["after"] += new
        results["folds"].append(record)
    results["held_out_pooled"] = summary(pooled["truth"], pooled["before"], pooled["after"])

    print(f"{json.dumps(results['machine'])}\n")
    print("| fold: rows | n | before | after | after - before (95 % paired interval) | McNemar p |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for fold, record in enumerate(results["folds"]):
        for name, r in record["sets"].items():
            print(row_line(f"{fold + 1}: {name}", r))
    print(row_line("both: every headline held out once", results["held_out_pooled"]))
    print("\ntraining seconds: " + ", ".join(f"{r['train_seconds']:.0f}" for r in results["folds"]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
