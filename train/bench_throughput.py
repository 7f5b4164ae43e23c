"""Training throughput of the cpu-embedded recipe under variations, in one run.

    python train/bench_throughput.py --data_file ../shared/data/financial_phrasebank/all-data.csv

Each variant trains the recipe's own model, split and batch size for --steps
optimizer steps through `train.py`'s own `train()`; the first --warmup steps
are dropped; rows/s and (non-padding) tokens/s are totals over the rest, and
the median seconds per step is shown too. Variants with the same sampler see
the same batches.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import tempfile
import time

import torch
from transformers import TrainerCallback

from finsent.space import classifier
from finsent.train import train as train_script
from finsent.train.modeling import compact_lm_head_on_cpu

# name -> flags on top of `--config cpu-embedded`. As shipped the recipe runs fp32 weights under
# the autocast its `precision: auto` picks (bf16 on a CPU with AVX-512 BF16 or AMX, else none), LoRA dropout 0, batches grouped by length, no activation checkpointing, every
# thread, and TRL's LM head scoring only the completion positions (compact_lm_head_on_cpu).
NOT_COMPACT = "every position scored"
DEFAULTS = ["--bf16", "false", "--lora_dropout", "0.05", "--train_sampling_strategy", "random"]
FOUR_BIT = ["--load_in_4bit", "true", "--use_bnb_nested_quant", "true"]
VARIANTS = {
    # from TRL's behaviour on a CPU to the recipe, one change at a time
    f"fp32, LoRA dropout 0.05, random batches, {NOT_COMPACT} (TRL as is)": DEFAULTS,
    "+ LM head on completion positions only": DEFAULTS,
    "+ LoRA dropout 0": ["--bf16", "false", "--train_sampling_strategy", "random"],
    "+ the recipe's autocast (bf16 where native)": ["--train_sampling_strategy", "random"],
    "+ group_by_length = the recipe": [],
    # one factor changed on the recipe
    "recipe + activation checkpointing": ["--activation_checkpointing", "true"],
    "recipe in fp32 (no autocast)": ["--bf16", "false"],
    "recipe with bf16 weights (fp32 LoRA)": ["--dtype", "bfloat16"],
    "recipe with 4-bit nf4 weights, bf16 compute": [*FOUR_BIT, "--dtype", "bfloat16"],
    "recipe with 4-bit nf4 weights, fp32 compute, no autocast": [*FOUR_BIT, "--bf16", "false"],
    "recipe, 1 thread": [],
    "recipe, batch 16": ["--per_device_train_batch_size", "16"],
    "recipe with prompt version 1 (the long instruction)": [],
}


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times: list[float] = []
        self.tokens: list[int] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self.start)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "num_tokens" in logs:
            self.tokens.append(int(float(logs["num_tokens"])))


def run_variant(flags: list[str], data_file: str, steps: int, warmup: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        args = train_script.parse([
            "--config", "cpu-embedded", "--data_file", data_file, "--output_dir", out, *flags,
            "--max_steps", str(steps), "--logging_steps", "1", "--eval_strategy", "no",
            "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
        ])
        timer = StepTimer()
        train_script.train(*args, callbacks=[timer])
    batch = args[2].per_device_train_batch_size * args[2].gradient_accumulation_steps
    # Batches differ in length, so rows/s and tokens/s are totals over the measured steps.
    seconds = sum(timer.times[warmup:])
    tokens = timer.tokens[-1] - timer.tokens[warmup - 1] if warmup else timer.tokens[-1]  # cumulative count
    return {
        "s_per_step_median": round(statistics.median(timer.times[warmup:]), 3),
        "rows_per_s": round(batch * (steps - warmup) / seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1),
        "step_times": [round(t, 3) for t in timer.times],
    }


def machine() -> dict:
    flags = open("/proc/cpuinfo").read().split("flags\t\t:")[1].split("\n")[0].split()
    model = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    name = next((line.split(":", 1)[1].strip() for line in model.splitlines() if "Model name" in line), "?")
    return {
        "cpu": name, "cores": torch.get_num_threads(), "python": platform.python_version(), "torch": torch.__version__,
        "amx_bf16": "amx_bf16" in flags, "avx512_bf16": "avx512_bf16" in flags,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_file", required=True, help="labelled headlines (the recipe's 900-row split is drawn from it)")
    parser.add_argument("--steps", type=int, default=22, help="optimizer steps per variant")
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the median")
    parser.add_argument("--only", nargs="*", help="run only these variants (names as listed in VARIANTS)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    results = {"machine": machine(), "steps": args.steps, "warmup": args.warmup, "variants": {}}
    threads = torch.get_num_threads()
    for name, flags in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        torch.set_num_threads(1 if name.endswith("1 thread") else threads)
        compact = NOT_COMPACT not in name
        # train() applies the workaround; for TRL as is, undo it and keep train() from redoing it
        train_script.compact_lm_head_on_cpu = compact_lm_head_on_cpu if compact else lambda: None
        compact_lm_head_on_cpu(compact)
        classifier.PROMPT_TEMPLATE = classifier.PROMPTS[1 if "prompt version 1" in name else classifier.PROMPT_VERSION]
        results["variants"][name] = run_variant(flags, args.data_file, args.steps, args.warmup)
        print(json.dumps({name: results["variants"][name]}), flush=True)
    torch.set_num_threads(threads)
    classifier.PROMPT_TEMPLATE = classifier.PROMPTS[classifier.PROMPT_VERSION]

    print(f"\n{json.dumps(results['machine'])}\n")
    print("| variant | s/step (median) | rows/s | tokens/s |\n| --- | ---: | ---: | ---: |")
    for name, r in results["variants"].items():
        print(f"| {name} | {r['s_per_step_median']} | {r['rows_per_s']} | {r['tokens_per_s']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
