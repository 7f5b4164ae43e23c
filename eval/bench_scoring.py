"""Prediction speed and accuracy: the notebook's text-generation pipeline against batched `score` mode.

    python train/train.py --config cpu-embedded \
        --data_file ../shared/data/financial_phrasebank/all-data.csv --output_dir runs/full
    python eval/bench_scoring.py --adapter runs/full

Every variant classifies the same test split (default: the adapter's split/test.csv)
in one process: (a) the seed notebook's way, a `text-generation` pipeline called once
per headline in fp32, greedy, one new token, label parsed from it; (b) `score` mode as
shipped (bf16, shared instruction prefix, batch 32, sorted by length), and (b) with
one setting changed at a time. Each variant runs once after a warm-up batch.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from finsent.eval.generate import generate_labels
from finsent.eval.metrics import compute_metrics
from finsent.space.classifier import LABELS, load_classifier
from finsent.train.bench_throughput import machine
from finsent.train.data import read_labelled

# name -> (dtype, share_prefix, batch_size, threads); None threads = all
SCORE_VARIANTS = {
    "(b) score mode as shipped: bf16, shared prefix, batch 32": ("bfloat16", True, 32, None),
    "(b) in fp32": ("float32", True, 32, None),
    "(b) without the shared prefix": ("bfloat16", False, 32, None),
    "(b) batch 8": ("bfloat16", True, 8, None),
    "(b) batch 128": ("bfloat16", True, 128, None),
    "(b) 1 thread": ("bfloat16", True, 32, 1),
}


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def entry(name, truth, predictions, seconds):
    metrics = compute_metrics(truth, predictions)
    result = {"headlines_per_s": round(len(truth) / seconds, 1), "seconds": round(seconds, 2),
              "accuracy": round(metrics["accuracy"], 4), "invalid": metrics["invalid"]}
    print(json.dumps({name: result}), flush=True)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", help="trained-model folder (default: the base model alone)")
    parser.add_argument("--base_model", default=None, help="default: the adapter's base, else the embedded SmolLM2")
    parser.add_argument("--data_file", help="labelled headlines (default: the adapter's split/test.csv)")
    parser.add_argument("--skip_pipeline", action="store_true", help="leave out (a), the slow one")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    base = args.base_model
    if base is None and args.adapter:
        base = json.load(open(f"{args.adapter}/adapter_config.json"))["base_model_name_or_path"]
    base = base or "HuggingFaceTB/SmolLM2-135M-Instruct"
    table = read_labelled(args.data_file or f"{args.adapter}/split/test.csv")
    texts, truth = table["text"].tolist(), table["sentiment"].tolist()
    results = {"machine": machine(), "base_model": base, "adapter": args.adapter, "rows": len(texts), "variants": {}}
    threads = torch.get_num_threads()

    if not args.skip_pipeline:
        classifier = load_classifier(base, args.adapter, dtype="float32")
        generate_labels(classifier.model, classifier.tokenizer, texts[:4], max_new_tokens=1)  # warm-up
        predictions, seconds = timed(lambda: generate_labels(classifier.model, classifier.tokenizer, texts,
                                                             max_new_tokens=1, batch_size=1))
        name = "(a) notebook: text-generation pipeline, one headline at a time, fp32"
        results["variants"][name] = entry(name, truth, predictions, seconds)

    loaded = {}
    for name, (dtype, share_prefix, batch_size, n_threads) in SCORE_VARIANTS.items():
        if dtype not in loaded:
            loaded[dtype] = load_classifier(base, args.adapter, dtype=dtype)
        classifier = loaded[dtype]
        classifier.share_prefix = share_prefix
        torch.set_num_threads(n_threads or threads)
        classifier.predict_proba(texts[:batch_size], batch_size=batch_size)  # warm-up
        probs, seconds = timed(lambda: classifier.predict_proba(texts, batch_size=batch_size))  # noqa: B023
        results["variants"][name] = entry(name, truth, [LABELS[i] for i in probs.argmax(axis=1)], seconds)
    torch.set_num_threads(threads)

    print(f"\n{json.dumps(results['machine'])}\n")
    print("| variant | headlines/s | seconds | accuracy | invalid |\n| --- | ---: | ---: | ---: | ---: |")
    for name, r in results["variants"].items():
        print(f"| {name} | {r['headlines_per_s']} | {r['seconds']} | {r['accuracy']:.4f} | {r['invalid']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
