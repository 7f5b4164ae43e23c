"""Phi-2 at full size without its weights: random weights of Phi-2's exact shape through the phi2-qlora recipe.

    python train/bench_phi2.py                           # this CPU: 3 optimizer steps, then scoring (~15 min)
    python train/bench_phi2.py --steps 30 --app          # a GPU machine, no Hub needed: + the app (< 8 min, H100)
    python train/bench_phi2.py --steps 30 --precision bf16 fp16   # a T4's policy forced on an Ampere+ GPU, beside bf16

Phi-2's published configuration (PHI2 below) with random weights (seeded), saved once in bf16
under --model_dir; any tokenizer whose ids fit Phi-2's 51,200 rows will do, by default the
embedded SmolLM2's (49,152). Then, in this process:

1. train.py's own `train()` with the phi2-qlora recipe as written (4-bit NF4 + double quant,
   LoRA r 64 on q_proj k_proj v_proj dense fc1 fc2, batch 8, paged AdamW, activation
   checkpointing), for --steps optimizer steps on the sample headlines written for the project;
   on a CPU with `--use_cpu true` (the code then picks its optimizer stand-in);
2. the classifier: the trained adapter on the base loaded as the run trained it (4-bit), scoring
   --headlines headlines (one warm-up pass, then timed);
3. with --app, the app (`space/app.py`, 4-bit on the GPU) in its own process through eval/bench_app.py.

Printed: trainable and total parameters, the 4-bit weights' memory, s/step (median after the
first), tokens/s and rows/s, headlines/s, peak RSS and peak GPU memory, and the app's latency
p50/p95. The random model's answers mean nothing; what is proven is that the recipe, the module
names, 4-bit loading, LoRA, the scorer and the app work at Phi-2's real shapes and sizes.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_HEADLINES = REPO / "train" / "sample_headlines.csv"
# microsoft/phi-2's config.json, as published (the architecture; the token ids come from the tokenizer)
PHI2 = {
    "vocab_size": 51200, "hidden_size": 2560, "intermediate_size": 10240, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 32, "partial_rotary_factor": 0.4,
    "max_position_embeddings": 2048, "hidden_act": "gelu_new", "layer_norm_eps": 1e-5, "rope_theta": 10000.0,
    "resid_pdrop": 0.1, "embd_pdrop": 0.0, "attention_dropout": 0.0, "qk_layernorm": False,
    "tie_word_embeddings": False, "initializer_range": 0.02,
}


# --precision: the flags each policy adds to the recipe
POLICIES = {"auto": [], "bf16": ["--precision", "bf16", "--dtype", "bfloat16"],
            "fp16": ["--precision", "fp16", "--dtype", "float32"]}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cache = Path(os.environ.get("FINSENT_CACHE", Path.home() / ".cache" / "finsent"))
    parser.add_argument("--model_dir", default=str(cache / "phi2-random"),
                        help="where the random Phi-2 is saved once (5.6 GB) and reused")
    parser.add_argument("--tokenizer", help="a tokenizer folder (default: the embedded SmolLM2's)")
    parser.add_argument("--steps", type=int, help="optimizer steps (default: 30 on a GPU, 3 on a CPU)")
    parser.add_argument("--headlines", type=int, default=64, help="headlines scored by the classifier")
    parser.add_argument("--precision", nargs="+", choices=sorted(POLICIES), default=["auto"],
                        help="train once per policy, in this order: `auto` (the recipe's), `bf16`, or `fp16` (what a "
                        "T4, V100 or P100 gets: fp16 autocast, float32 4-bit compute, attention in float32), forced "
                        "on any GPU; scoring and the app use the first policy's adapter")
    parser.add_argument("--app", action="store_true", help="also serve the app and time /classify (needs gradio)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--build_only", action="store_true", help=argparse.SUPPRESS)  # the child that builds
    return parser


def build_random_phi2(model_dir: Path, tokenizer_dir: str) -> None:
    """Phi-2's shape, random weights (seed 0), bf16, saved with the tokenizer; atomically, so a kill leaves nothing."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, PhiConfig

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if len(tokenizer) > PHI2["vocab_size"]:
        raise SystemExit(f"error: the tokenizer in {tokenizer_dir} has {len(tokenizer)} ids, Phi-2 only "
                         f"{PHI2['vocab_size']}; pass --tokenizer with a smaller vocabulary")
    eos = tokenizer.eos_token_id
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos
    config = PhiConfig(**PHI2, bos_token_id=bos, eos_token_id=eos, pad_token_id=eos)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    tmp = Path(tempfile.mkdtemp(prefix=".phi2-", dir=model_dir.parent))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.replace(model_dir)


def model_sizes(model_dir: Path) -> dict:
    """Total parameters of the architecture, counted on the meta device (no memory)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    return {"total_params": sum(p.numel() for p in model.parameters())}


def quantized_weight_bytes(model) -> int:
    """Bytes of the base's weights as held: packed 4-bit, their quantization constants, and what stays bf16/fp32."""
    total = 0
    for name, param in model.named_parameters():
        if "lora_" in name:
            continue
        total += param.numel() * param.element_size()
        state = getattr(param, "quant_state", None)
        if state is not None:
            total += state.absmax.numel() * state.absmax.element_size()
            if state.nested:
                total += state.state2.absmax.numel() * state.state2.absmax.element_size() + state.state2.code.numel() * 4
    return total


def memory_gib() -> dict:
    """This process's peak resident memory, and what is resident now: anonymous, and file pages mapped in.

    Loading a safetensors checkpoint maps the file, and its pages stay counted in the resident
    set (RssFile: clean, reclaimable page cache) after the weights are quantized; RssAnon is the
    memory the process really holds (with what malloc keeps for reuse).
    """
    fields = {line.split(":")[0]: int(line.split()[1]) / 2**20 for line in open("/proc/self/status")
              if line.startswith(("VmHWM", "RssAnon", "RssFile"))}
    return {"peak_rss_gib": round(fields["VmHWM"], 2), "rss_anon_gib": round(fields["RssAnon"], 2),
            "rss_file_gib": round(fields["RssFile"], 2)}


def gpu_peak_gib(reset: bool = False) -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    peak = torch.cuda.max_memory_allocated() / 2**30
    if reset:
        torch.cuda.reset_peak_memory_stats()
    return round(peak, 2)


def train_phase(model_dir: Path, out: Path, steps: int, on_cpu: bool, policy: str = "auto") -> tuple[dict, object]:
    from finsent.train import train as train_script
    from finsent.train.bench_throughput import StepTimer

    argv = [
        "--config", "phi2-qlora", "--model_name_or_path", str(model_dir), "--data_file", str(SAMPLE_HEADLINES),
        "--train_size", "30", "--test_size", "20", "--eval_size", "0", "--eval_strategy", "no",
        "--save_strategy", "no", "--max_steps", str(steps), "--logging_steps", "1", "--report_to", "none",
        "--output_dir", str(out), "--disable_tqdm", "true", *(["--use_cpu", "true"] if on_cpu else []),
        *POLICIES[policy],
    ]
    timer = StepTimer()
    begin = time.perf_counter()
    trainer = train_script.train(*train_script.parse(argv), callbacks=[timer])
    wall = time.perf_counter() - begin
    args = trainer.args
    measured = timer.times[1:] or timer.times  # the first step pays for warm-up
    tokens = timer.tokens[-1] - timer.tokens[0] if len(timer.tokens) > 1 else timer.tokens[-1]
    batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    result = {
        "command": "train.py " + " ".join(argv),
        "policy": policy,
        "precision": trainer.args.autocast(),
        "loss_finite": all(math.isfinite(e["loss"]) for e in trainer.state.log_history if "loss" in e),
        "optimizer": str(args.optim.value),
        "steps": steps,
        "global_batch": batch,
        "trainable_params": trainable,
        "lora_targets": sorted(trainer.model.peft_config["default"].target_modules),
        "base_weight_bytes": quantized_weight_bytes(trainer.model),
        "s_per_step_median": round(statistics.median(measured), 3),
        "rows_per_s": round(batch * len(measured) / sum(measured), 2),
        "tokens_per_s": round(tokens / sum(measured), 1),
        "step_times": [round(t, 3) for t in timer.times],
        "losses": [round(e["loss"], 4) for e in trainer.state.log_history if "loss" in e],
        "wall_s": round(wall, 1),
        **memory_gib(),
        "peak_gpu_gib": gpu_peak_gib(reset=True),
    }
    return result, trainer


def score_phase(model_dir: Path, adapter: Path, n: int) -> dict:
    import numpy as np

    from finsent.eval.bench_app import HEADLINES
    from finsent.space.classifier import load_classifier

    begin = time.perf_counter()
    classifier = load_classifier(str(model_dir), str(adapter))  # the base as the run trained it: 4-bit
    load_s = time.perf_counter() - begin
    texts = [HEADLINES[i % len(HEADLINES)] + ("" if i < len(HEADLINES) else f" ({i})") for i in range(n)]
    classifier.predict_proba(texts[:32])  # warm-up
    begin = time.perf_counter()
    probs = classifier.predict_proba(texts, batch_size=32)
    seconds = time.perf_counter() - begin
    if not (np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1)):
        raise RuntimeError("the classifier's probabilities are not finite or do not sum to 1")
    return {
        "precision": classifier.precision, "device": str(classifier.device), "load_s": round(load_s, 1),
        "headlines": n, "batch_size": 32, "seconds": round(seconds, 2), "headlines_per_s": round(n / seconds, 2),
        **memory_gib(), "peak_gpu_gib": gpu_peak_gib(reset=True),
    }


def app_phase(model_dir: Path, adapter: Path, json_path: Path) -> dict:
    from finsent.eval import bench_app

    code = bench_app.main(["--base_model", str(model_dir), "--adapter", str(adapter), "--calls", "40",
                           "--clients", "8", "--calls_per_client", "5", "--json", str(json_path)])
    if code:
        raise RuntimeError(f"bench_app exited with {code}")
    result = json.loads(json_path.read_text())
    return {key: result[key] for key in ("first_call_ms", "single", "concurrent_plain_http", "peak_rss_mb")}


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    import torch

    from finsent.space.embedded import EMBEDDED_MODEL_ID, resolve_model_path

    model_dir = Path(args.model_dir)
    tokenizer = args.tokenizer or resolve_model_path(EMBEDDED_MODEL_ID)
    if args.build_only:
        build_random_phi2(model_dir, tokenizer)
        return 0
    if not (model_dir / "config.json").is_file():
        model_dir.parent.mkdir(parents=True, exist_ok=True)
        begin = time.perf_counter()
        # in a child, so that this process's peak memory is that of training and scoring alone
        subprocess.run([sys.executable, __file__, "--build_only", "--model_dir", str(model_dir),
                        "--tokenizer", str(tokenizer)], check=True)
        print(f"built random Phi-2 in {model_dir} in {time.perf_counter() - begin:.0f} s", flush=True)

    from finsent.train.bench_throughput import machine

    cuda = torch.cuda.is_available()
    results = {"machine": {**machine(), "gpu": torch.cuda.get_device_name() if cuda else None},
               "model": {**PHI2, **model_sizes(model_dir)}}
    with tempfile.TemporaryDirectory() as tmp:
        adapter = Path(tmp) / "phi2-random-qlora"
        for i, policy in enumerate(args.precision):  # the first policy's adapter is scored and served
            key = "train" if i == 0 else f"train_{policy}"
            results[key], trainer = train_phase(model_dir, adapter if i == 0 else Path(tmp) / policy,
                                                args.steps or (30 if cuda else 3), not cuda, policy)
            del trainer
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
            print(json.dumps({key: results[key]}), flush=True)
        results["score"] = score_phase(model_dir, adapter, args.headlines)
        print(json.dumps({"score": results["score"]}), flush=True)
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        if args.app:
            results["app"] = app_phase(model_dir, adapter, Path(tmp) / "bench_app.json")

    t, s = results["train"], results["score"]
    total = results["model"]["total_params"]
    print(f"\n{json.dumps(results['machine'])}\n")
    print("| measure | value |\n| --- | ---: |")
    rows = [
        ("parameters (Phi-2's shape)", f"{total / 1e9:.3f} B"),
        ("trainable (LoRA r 64 on " + " ".join(t["lora_targets"]) + ")",
         f"{t['trainable_params'] / 1e6:.1f} M ({100 * t['trainable_params'] / total:.2f} %)"),
        ("base weights in memory, 4-bit NF4 + constants", f"{t['base_weight_bytes'] / 2**30:.2f} GiB"),
        ("optimizer / global batch", f"{t['optimizer']} / {t['global_batch']}"),
        (f"s/step, median of steps 2-{t['steps']}", t["s_per_step_median"]),
        ("training tokens/s (non-padding) / rows/s", f"{t['tokens_per_s']} / {t['rows_per_s']}"),
        ("peak RSS after training (now: anonymous / file-mapped)",
         f"{t['peak_rss_gib']} GiB ({t['rss_anon_gib']} / {t['rss_file_gib']})"),
        ("peak GPU memory, training", f"{t['peak_gpu_gib']} GiB" if cuda else "-"),
        (f"classifier ({s['precision']}, {s['device']}): headlines/s, batch 32", s["headlines_per_s"]),
        ("peak RSS after scoring (now: anonymous / file-mapped)",
         f"{s['peak_rss_gib']} GiB ({s['rss_anon_gib']} / {s['rss_file_gib']})"),
        ("peak GPU memory, scoring", f"{s['peak_gpu_gib']} GiB" if cuda else "-"),
    ]
    if "app" in results:
        a = results["app"]
        rows += [("app /classify, 1 client: p50 / p95 ms", f"{a['single']['p50_ms']} / {a['single']['p95_ms']}"),
                 ("app /classify, 8 clients x 5: p50 / p95 ms",
                  f"{a['concurrent_plain_http']['p50_ms']} / {a['concurrent_plain_http']['p95_ms']}")]
    for name, value in rows:
        print(f"| {name} | {value} |")
    if len(args.precision) > 1:
        print("\n| precision | s/step (median) | loss first -> last, all finite | peak GPU memory, training |")
        print("| --- | ---: | --- | ---: |")
        for key in ("train", *(f"train_{policy}" for policy in args.precision[1:])):
            r = results[key]
            print(f"| {r['precision']} ({r['policy']}: {' '.join(POLICIES[r['policy']]) or 'the recipe'}) | "
                  f"{r['s_per_step_median']} | {r['losses'][0]} -> {r['losses'][-1]}, {r['loss_finite']} | "
                  f"{r['peak_gpu_gib'] or '-'} GiB |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
