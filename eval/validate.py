"""Score a training run's adapter and checkpoints on its validation split: choose on this, never on test.

    python eval/validate.py runs/try1 [runs/try2 ...] [--json trials.json]

For each run folder, its final adapter and every checkpoint-*/ in it are scored on
the run's split/eval.csv, once, and the labels are then decided under each label
prior: `train` (the training mix, as the model learned it) and `balanced` (equal
priors; see classifier.prior_shift). One line per adapter and prior: accuracy,
macro F1 and per-label recall.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from finsent.eval.metrics import compute_metrics
from finsent.space.adapter_info import AdapterMismatch, read_info
from finsent.space.classifier import LABELS, load_classifier, prior_shift
from finsent.train.data import UsageError, read_labelled

PRIORS = ("train", "balanced")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders written by train/train.py")
    parser.add_argument("--json", help="also write every result to this JSON file")
    parser.add_argument("--batch_size", type=int, default=32)
    return parser


def adapters_of(run: Path) -> list[Path]:
    """The run's checkpoints in step order, then its final adapter."""
    checkpoints = sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))
    final = [run] if (run / "adapter_config.json").is_file() else []
    return [p for p in checkpoints if (p / "adapter_config.json").is_file()] + final


def validate(adapter: Path, texts: list[str], truth: list[str], batch_size: int) -> list[dict]:
    info = read_info(str(adapter))
    classifier = load_classifier(info["base_model"], str(adapter), label_prior="train")
    log_probs = np.log(classifier.predict_proba(texts, batch_size=batch_size))
    results = []
    for prior in PRIORS:
        shift = prior_shift(info.get("train_label_counts"), prior)
        scores = log_probs + (np.asarray(shift) if shift else 0.0)
        predictions = [LABELS[i] for i in scores.argmax(axis=1)]
        metrics = compute_metrics(truth, predictions)
        results.append({
            "adapter": str(adapter),
            "label_prior": prior,
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro"]["f1"],
            "recall": {label: metrics["per_label"][label]["recall"] for label in LABELS},
        })
    return results


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    args = make_parser().parse_args(argv)
    rows = []
    try:
        for run in map(Path, args.runs):
            split = run / "split" / "eval.csv"
            if not split.is_file() or not adapters_of(run):
                raise UsageError(f"{run}: not a finished run folder (needs split/eval.csv and an adapter)")
            if len(split.read_text().strip().splitlines()) < 2:  # the header alone
                raise UsageError(f"{run}: its split has no validation rows (trained with --eval_size 0); "
                                 "validate runs that kept some, or compare recipes with train/sweep.py")
            table = read_labelled(str(split))
            texts, truth = table["text"].tolist(), table["sentiment"].tolist()
            for adapter in adapters_of(run):
                for row in validate(adapter, texts, truth, args.batch_size):
                    rows.append(row)
                    recall = " ".join(f"{label[:3]} {row['recall'][label]:.3f}" for label in LABELS)
                    print(f"{row['adapter']}\t{row['label_prior']}\tacc {row['accuracy']:.3f}\t"
                          f"macro F1 {row['macro_f1']:.3f}\trecall {recall}\t(n={len(texts)})", flush=True)
    except (UsageError, AdapterMismatch) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
