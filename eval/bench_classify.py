"""Throughput of `classify` on a large file, against the app's batch path and the notebook's pipeline; its levers.

    python eval/bench_classify.py --json runs/bench_classify.json
    python eval/bench_classify.py --rows 2000 --skip_pipeline --levers batch_size threads   # a shorter look

One process, the embedded SmolLM2-135M-Instruct with the shipped adapter (as `classify` and the
app load them), on --rows distinct fictional headlines made here from templates (seeded; company
names built from syllables, no PhraseBank text), distinct as classify compares them, so that none
is a repeat it would score once:

(a) `classify` as a user runs it: eval/classify.py's main() on a CSV in a temporary folder, output
    Parquet. Its time is the whole command (reading, digests, part files, merge, writing) less the
    model's load, which is timed apart (classify's get_classifier wrapped). It runs first and cold,
    so its peak resident memory (VmHWM, reset before it where Linux allows) is its own.
(b) the app's Batch tab: space/app.py Service.classify_batch on consecutive batches of the app's
    max_batch (200) lines of the same headlines, --app_rows in all (table, chart and CSV included,
    as the tab makes them); the app's own model, its load apart.
(c) the notebook's pipeline: finsent.eval.generate.generate_labels one headline at a time (fp32,
    one new token, as bench_scoring.py's (a)) on the first --pipeline_rows headlines only: it is slow.

The matmul ceilings in bf16 and fp32 (matmul_ceiling) are measured first and again last, the
faster of the two counting; with the useful FLOPs per headline (flops_per_headline) they give
the share of the ceiling, in the dtype each variant computes in, that each reaches.

The levers, each changed alone from classify as shipped (batch 32, chunk_rows 4096, shared
prefix, all threads, the default dtype), all through classify's main() on the first --lever_rows
headlines, the shipped settings first on the same rows: batch 64/128/256, chunk_rows 512 (the
length sort happens inside a chunk), the shared prefix off, 1 thread, `--explain 3` (the price of the
explanation column, not a speed lever), and the other dtype (on
--emulated_rows only where the machine lacks it natively: bf16 on a CPU without AMX/AVX-512 BF16
scores ~8× slower than fp32). Models stay loaded between lever runs; a newly loaded one scores
one warm-up batch outside the timing. The padding column is computed, not measured: padded over
real token positions for that chunking and batch size.

Duration: (a) dominates. At the ~14 headlines/s of fp32 on a quiet 2-core AMD EPYC (no native
bf16), the default run takes about 25 minutes, 12 of them (a); --lever_rows 768 and
--pipeline_rows 100 bring it near 20 (keep --lever_rows above 512, or chunk_rows 512 changes nothing).
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import random
import resource
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

LEVERS = ("batch_size", "chunk_rows", "share_prefix", "threads", "dtype", "explain")
SHIPPED = {"batch_size": 32, "chunk_rows": 4096, "share_prefix": True, "threads": None, "dtype": None, "explain": 0}
LEVER_VALUES = {"batch_size": (64, 128, 256), "chunk_rows": (512,), "share_prefix": (False,), "threads": (1,),
                "explain": (3,)}  # --explain 3: not a speed lever, the price of the explanation column
DTYPES = ("bfloat16", "float32")  # the ceilings always measured

# Fictional headlines: syllable-built company names in sectors, templates with numbers and metrics.
FIRST = ("Kest", "Norv", "Ferr", "Ilv", "Tund", "Halv", "Corv", "Lum", "Bris", "Aalt", "Pell", "Mirv", "Osk", "Tess",
         "Vard", "Quill", "Nordh", "Saim", "Esk", "Fenn", "Raut", "Kiel", "Granl", "Ylv", "Torv", "Brenn", "Sölv",
         "Harj", "Kaar", "Lind")
END = ("el", "ale", "ow", "ento", "ra", "ard", "in", "eo", "isa", "omere", "ica", "ova", "ari", "sel", "don", "by",
       "hem", "ma", "ic", "io", "ola", "und", "va", "ik", "ant", "ess", "ora", "ey")
SECTOR = ("Shipping", "Steel", "Telecom", "Foods", "Energy", "Retail", "Pharma", "Bank", "Logistics", "Mining",
          "Software", "Construction", "Packaging", "Airlines", "Insurance", "Machinery", "Textiles", "Chemicals",
          "Media", "Paper", "Robotics", "Forest Products")
FORM = ("", "", "", " Oyj", " Group", " plc", " AB", " ASA", " Corp")
METRIC = ("operating profit", "net sales", "revenue", "net profit", "EBITDA", "order intake", "pre-tax profit",
          "comparable operating profit", "cash flow", "service revenue")
PERIOD = ("first-quarter", "second-quarter", "third-quarter", "fourth-quarter", "half-year", "full-year",
          "January-June", "January-September", "October-December")
PLACE = ("Tampere", "Oulu", "Turku", "Sweden", "Estonia", "Poland", "Helsinki", "Gothenburg", "Riga", "Vilnius",
         "Germany", "China", "the US", "Norway", "Denmark", "the Baltics", "Russia", "India")
PRODUCT = ("frozen meals", "paper machines", "wind turbines", "mobile networks", "cargo cranes", "packaging lines",
           "software licences", "steel tubes", "insurance policies", "diesel engines")
TEMPLATES = (
    "{co} raises its {year} {metric} forecast",
    "{co} cuts its {year} {metric} outlook to EUR {n} million",
    "{co}'s {period} {metric} rises {pct}% to EUR {n} million",
    "{co}'s {period} {metric} falls {pct}% to EUR {n} million",
    "{co} to cut {n} jobs in {place}",
    "{co} wins a EUR {n} million order for {product} from {co2}",
    "{co} will publish its {period} report on {day} {month} {year}",
    "{co} names a new chief {role} officer",
    "{co} recalls {product}, shares drop {pct}%",
    "{co} signs a {k}-year deal to supply {product} to {co2} worth EUR {n} million",
    "{co} keeps its dividend unchanged at EUR 0.{cents} per share",
    "{co} completes its acquisition of {co2} for EUR {n} million",
    "{co} swings to a {period} loss of EUR {n} million as {metric} in {place} falls",
    "{co} opens a distribution centre for {product} in {place}",
    "{co}'s order backlog shrinks to EUR {n} million, its lowest since {year}",
    "{co} beats {metric} estimates as {period} sales grow {pct}%",
    "{co} misses {metric} targets as demand for {product} in {place} slows",
    "{co} moves its headquarters from {place} to {place2}",
    "{co} plans to list its shares in {place} in {year}",
    "{co} reports {period} {metric} of EUR {n} million, compared with EUR {m} million a year earlier",
    "{co}'s {metric} in {place} was EUR {n} million in the {period} period, up from EUR {m} million",
    "{co} and {co2} agree to merge their {product} businesses",
)
TRAILER = ("", "", "", ", the company said on {weekday}", ", according to a stock exchange release",
           ", it said in a statement", " (Update {k})")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
ROLES = ("executive", "financial", "operating", "technology", "sales")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base_model", help="base model id or folder (default: the adapter's base, else the "
                        "embedded SmolLM2-135M)")
    parser.add_argument("--adapter", default="default", help="LoRA adapter folder, or `none` (default: the shipped "
                        "space/default-adapter/, as classify and the app)")
    parser.add_argument("--rows", type=int, default=10_000, help="distinct headlines that (a) classifies")
    parser.add_argument("--app_rows", type=int, default=400, help="of them, what (b) sends to the Batch tab's path")
    parser.add_argument("--pipeline_rows", type=int, default=300, help="of them, what (c) labels one at a time")
    parser.add_argument("--skip_pipeline", action="store_true", help="leave out (c), the slow one")
    parser.add_argument("--levers", nargs="*", default=list(LEVERS), choices=(*LEVERS, "none"),
                        help=f"levers to try, one change at a time (default: all; `none`: no lever): {', '.join(LEVERS)}")
    parser.add_argument("--lever_rows", type=int, default=1024, help="headlines each lever run classifies")
    parser.add_argument("--emulated_rows", type=int, default=32,
                        help="headlines for the dtype lever where the machine has no native support for that dtype")
    parser.add_argument("--matmul_size", type=int, default=2048,
                        help="side of the square matrices of the ceiling (halved for a dtype too slow for it)")
    parser.add_argument("--matmul_reps", type=int, default=5, help="timed matmuls per dtype; the median counts")
    parser.add_argument("--seed", type=int, default=0, help="of the headline generator")
    parser.add_argument("--json", help="also write the results to this file")
    return parser


# ---------------------------------------------------------------- headlines


def make_headlines(rows: int, seed: int = 0) -> list[str]:
    """`rows` fictional headlines, distinct as classify compares texts (text_key), the same for a seed."""
    from finsent.train.data import text_key

    rng = random.Random(seed)
    companies = [f"{a}{b} {s}{f}" for a in FIRST for b in END for s in SECTOR for f in FORM]
    seen, headlines = set(), []
    while len(headlines) < rows:
        co, co2 = rng.sample(companies, 2)
        place, place2 = rng.sample(PLACE, 2)
        n = rng.choice((rng.randint(2, 99), rng.randint(100, 999), rng.randint(1000, 9999)))
        slots = {"co": co, "co2": co2.split(" ")[0], "place": place, "place2": place2, "n": n,
                 "m": max(1, int(n * rng.uniform(0.6, 1.4))), "pct": rng.randint(1, 60),
                 "metric": rng.choice(METRIC), "period": rng.choice(PERIOD), "year": rng.randint(2009, 2031),
                 "product": rng.choice(PRODUCT), "day": rng.randint(1, 28), "month": rng.choice(MONTHS),
                 "role": rng.choice(ROLES), "k": rng.randint(2, 12), "cents": rng.randint(10, 95),
                 "weekday": rng.choice(WEEKDAYS)}
        text = (rng.choice(TEMPLATES) + rng.choice(TRAILER)).format(**slots)
        key = text_key(text)
        if key not in seen:
            seen.add(key)
            headlines.append(text)
    return headlines


def write_csv(path: Path, headlines: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text"])
        writer.writerows(enumerate(headlines))
    return path


# ---------------------------------------------------------------- memory and the ceiling


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM (Linux: 5 into clear_refs); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """The process's resident-memory high-water mark, in MB (10^6 bytes): VmHWM, else getrusage (since start)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6


def matmul_ceiling(dtype: str, size: int, reps: int, device: str, budget_s: float = 1.0) -> dict:
    """TFLOP/s of torch.matmul on two n×n matrices, the median of `reps` after a warm-up, in two layouts.

    `a @ b` (both row-major) and `a @ b.T` (the layout nn.Linear multiplies in: weights stored
    out × in); the ceiling is the faster. They differ where a dtype is emulated: bf16 on a CPU
    without AMX/AVX-512 BF16 runs `a @ b` at ~1 GFLOP/s, slower still at 2048, and `a @ b.T`
    ~8× faster. Each layout starts at n = `size` and halves it (down to 256) until one product
    takes about `budget_s` at most, so a slow layout costs seconds, not minutes.
    """
    import torch

    def once(a, b):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.matmul(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def pair(n):
        return [torch.randn(n, n, device=device).to(getattr(torch, dtype)) for _ in range(2)]

    layouts = {"a @ b": lambda a, b: (a, b), "a @ b.T": lambda a, b: (a, b.T)}
    floor = 256
    measured = {}
    for name, arrange in layouts.items():
        a, b = pair(floor)
        once(*arrange(a, b))
        rate = 2 * floor**3 / max(once(*arrange(a, b)), 1e-9)  # FLOP/s at the smallest size
        n = size
        while n > floor and 2 * n**3 / rate > budget_s:
            n //= 2
        a, b = pair(n)
        while once(*arrange(a, b)) > 2 * budget_s and n > floor:  # the warm-up; slower than the estimate: halve
            n //= 2
            a, b = pair(n)
        seconds = statistics.median(once(*arrange(a, b)) for _ in range(reps))
        measured[name] = {"tflops": 2 * n**3 / seconds / 1e12, "size": n}
    best = max(measured.values(), key=lambda m: m["tflops"])
    return {**best, "reps": reps, "layouts": measured}


# ---------------------------------------------------------------- FLOPs


def flops_per_headline(linear_params: int, layers: int, attention_width: int, hidden: int, vocab: int,
                       scored_tokens: float, context_sum: float, continuation_tokens: int) -> float:
    """Useful FLOPs the classifier spends on one headline (multiply-adds count 2):

        F = 2·N·(t + c)  +  4·L·A·Σctx  +  2·d·V·(1 + c)

    N: weights of the decoder's linear layers (q, k, v, o projections and the MLP, all layers: the
       parameters a token multiplies; embeddings and norms left out), t: tokens scored per headline
       (with the shared prefix, only what follows the instruction prefix: the headline and "] ="),
       c: continuation tokens of multi-token labels (Σ over labels of their tokens − 1; 0 for
       SmolLM2's one-token labels), L: layers, A: query width (heads × head_dim), Σctx: per headline,
       the sum over its scored positions of the keys each attends to (prefix included), as QKᵀ and
       the weighted sum of V cost 2·A each per key and layer; d: hidden size, V: vocabulary, for
       the LM head on the last position (and on each continuation position). Padding is not useful
       work and is not counted: a variant that pads more reaches a smaller share.
    """
    return (2 * linear_params * (scored_tokens + continuation_tokens) + 4 * layers * attention_width * context_sum
            + 2 * hidden * vocab * (1 + continuation_tokens))


def flops_fields(classifier, headlines: list[str]) -> dict:
    """The inputs of flops_per_headline for `headlines` as predict_proba encodes them, and its value."""
    import torch

    from finsent.space.classifier import build_prompt

    config = classifier.model.config
    decoder = classifier._decoder
    # in × out of every linear layer in the decoder (4-bit layers pack their weights, so not numel); for SmolLM2
    # the config gives the same: L·(d·(A + 2·kv_heads·head_dim) + A·d + 3·d·I) = 30·(576·960 + 576·576 +
    # 3·576·1536) = 106.2 M (q, k, v, o; gate, up, down)
    linear_params = sum(m.in_features * m.out_features for m in decoder.modules() if isinstance(m, torch.nn.Linear))
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    encoded = classifier.tokenizer([build_prompt(classifier.fit(text)[0]) for text in headlines]).input_ids
    prefix = len(classifier._prefix_ids)
    extra = [len(ids) - 1 for ids in classifier._label_ids]
    scored, contexts = [], []
    for ids in encoded:
        length = len(ids)
        shared = prefix if prefix and ids[:prefix] == classifier._prefix_ids and length > prefix else 0
        t = length - shared
        ctx = sum(range(shared + 1, length + 1))  # position i attends to i + 1 keys
        ctx += sum(length + 1 + step for k in extra for step in range(k))  # continuation positions, per label
        scored.append(t)
        contexts.append(ctx)
    fields = {
        "linear_params": linear_params, "layers": config.num_hidden_layers, "attention_width": heads * head_dim,
        "hidden": config.hidden_size, "vocab": classifier._head.out_features,
        "scored_tokens": statistics.fmean(scored), "context_sum": statistics.fmean(contexts),
        "continuation_tokens": sum(extra),
    }
    return {**fields, "prefix_tokens": prefix, "prompt_tokens": statistics.fmean(len(ids) for ids in encoded),
            "per_headline": flops_per_headline(**fields), "lengths": scored}


def padding_overhead(lengths: list[int], chunk_rows: int, batch_size: int) -> float:
    """Padded token positions over real ones for classify's batching: each chunk sorted by length, then cut."""
    padded = 0
    for start in range(0, len(lengths), chunk_rows):
        chunk = sorted(lengths[start : start + chunk_rows])
        padded += sum(max(chunk[i : i + batch_size]) * len(chunk[i : i + batch_size])
                      for i in range(0, len(chunk), batch_size))
    return padded / sum(lengths) - 1


# ---------------------------------------------------------------- the variants


class Loader:
    """Stands in for classify's get_classifier: times each load, keeps the models (one per dtype) for later runs."""

    def __init__(self):
        from finsent.eval import classify as classify_script

        self.load = classify_script.get_classifier  # the one replaced
        self.models, self.seconds, self.share_prefix, self.warm_up = {}, 0.0, True, False
        self.dtype = None  # what the last call computes in

    def __call__(self, base_model, adapter=None, **kwargs):
        start = time.perf_counter()
        requested = (base_model, adapter, kwargs.get("dtype"))  # dtype None: the default for the hardware
        classifier = self.models.get(requested)
        if classifier is None:
            classifier = self.load(base_model, adapter, **kwargs)
            if self.warm_up:  # one batch, outside the timing, so every lever run starts warm
                classifier.predict_proba(["Kestrel Oyj raises its full-year operating profit forecast"] * 32)
            self.models[requested] = classifier
            # and under the dtype it computes in, for a later request of that dtype by name
            self.models.setdefault((base_model, adapter, compute_dtype(classifier.precision)), classifier)
        classifier.share_prefix = self.share_prefix
        self.dtype = compute_dtype(classifier.precision)
        self.seconds += time.perf_counter() - start
        return classifier


def compute_dtype(precision: str) -> str:
    """The dtype the matrices multiply in, from describe_precision's text ("float32", "4-bit nf4, bfloat16 compute")."""
    return next((name for name in ("bfloat16", "float16", "float32") if name in precision), "float32")


@contextmanager
def threads(n: int | None):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_classify(loader: Loader, source: Path, output: Path, args, *, batch_size: int, chunk_rows: int,
                 share_prefix: bool, n_threads: int | None, dtype: str | None, explain: int = 0) -> dict:
    """eval/classify.py's main() on `source`; seconds of the whole command less the model's load."""
    from finsent.eval import classify as classify_script

    argv = [str(source), "-o", str(output), "--quiet", "--batch_size", str(batch_size), "--chunk_rows", str(chunk_rows)]
    if args.adapter != "default":
        argv += ["--adapter", args.adapter]
    if args.base_model:
        argv += ["--base_model", args.base_model]
    if dtype:
        argv += ["--dtype", dtype]
    if explain:
        argv += ["--explain", str(explain)]
    classify_script.get_classifier = loader
    loader.seconds, loader.share_prefix = 0.0, share_prefix
    try:
        with threads(n_threads):
            start = time.perf_counter()
            code = classify_script.main(argv)
            total = time.perf_counter() - start
    finally:
        classify_script.get_classifier = loader.load
    if code != 0:
        raise RuntimeError(f"classify {' '.join(argv)} exited with {code}")
    return {"seconds": total - loader.seconds, "load_s": loader.seconds, "total_s": total, "dtype": loader.dtype}


def run_app(headlines: list[str], args) -> dict:
    """Service.classify_batch on consecutive batches of the app's max_batch lines, as the Batch tab calls it."""
    from finsent.space.app import Service, Settings

    service = Service(Settings(base_model=args.base_model, adapter=args.adapter))
    start = time.perf_counter()
    service.load()
    load_s = time.perf_counter() - start
    size = service.settings.max_batch
    calls = []
    for i in range(0, len(headlines), size):
        batch = headlines[i : i + size]
        start = time.perf_counter()
        rows, _, _, notice = service.classify_batch("\n".join(batch), None)
        calls.append(time.perf_counter() - start)
        if len(rows) != len(batch):
            raise RuntimeError(f"the app labelled {len(rows)} of {len(batch)} headlines: {notice}")
    dtype = compute_dtype(service.classifier.precision)
    del service
    gc.collect()
    return {"seconds": sum(calls), "load_s": load_s, "calls": len(calls), "max_batch": size,
            "median_call_s": statistics.median(calls), "dtype": dtype}


def run_pipeline(loader: Loader, headlines: list[str], args) -> dict:
    """generate_labels one headline at a time, fp32, one new token, as bench_scoring.py's (a)."""
    from finsent.eval.generate import generate_labels
    from finsent.eval.metrics import INVALID

    base, adapter, _ = next(iter(loader.models))  # the model and adapter (a) loaded
    start = time.perf_counter()
    classifier = loader(base, adapter, dtype="float32")
    load_s = time.perf_counter() - start
    model, tokenizer = classifier.model, classifier.tokenizer
    side = tokenizer.padding_side
    try:
        generate_labels(model, tokenizer, headlines[:4], max_new_tokens=1)  # warm-up
        start = time.perf_counter()
        labels = generate_labels(model, tokenizer, headlines, max_new_tokens=1, batch_size=1)
        seconds = time.perf_counter() - start
    finally:
        tokenizer.padding_side = side  # generate_labels sets it left; the scorer pads by itself anyway
    return {"seconds": seconds, "load_s": load_s, "dtype": loader.dtype,
            "answered": sum(label != INVALID for label in labels)}


def lever_runs(levers: list[str], args, default: str, native: dict) -> list[tuple[str, dict, int]]:
    """(name, classify settings, rows) for the shipped settings (computing in `default`) and each change of one lever."""
    runs = [("shipped: batch 32, chunk_rows 4096, shared prefix, all threads, " + default, dict(SHIPPED),
             args.lever_rows)]
    names = {"batch_size": "batch {}", "chunk_rows": "chunk_rows {}", "share_prefix": "no shared prefix",
             "threads": "{} thread", "explain": "--explain {} (each headline and its variants packed in one call)"}
    for lever in (lever for lever in LEVERS if lever in levers):
        if lever == "dtype":
            other = next(d for d in DTYPES if d != default)
            rows = args.lever_rows if native.get(other) else min(args.emulated_rows, args.lever_rows)
            runs.append((f"{other}" + ("" if native.get(other) else " (not native on this machine)"),
                         {**SHIPPED, "dtype": other}, rows))
            continue
        for value in LEVER_VALUES[lever]:
            runs.append((names[lever].format(value), {**SHIPPED, lever: value}, args.lever_rows))
    return runs


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    for name in ("rows", "app_rows", "pipeline_rows", "lever_rows", "emulated_rows", "matmul_size", "matmul_reps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} {getattr(args, name)}: give a whole number of 1 or more")
    levers = [] if "none" in args.levers else args.levers
    import torch

    from finsent.space.classifier import default_dtype
    from finsent.train.bench_throughput import machine

    print(f"bench_classify: {vars(args)}", flush=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    native = {"bfloat16": default_dtype(device) == "bfloat16", "float32": True}  # computed by the hardware itself
    headlines = make_headlines(args.rows, args.seed)
    results = {
        "machine": {**machine(), "device": device},
        "settings": {key: value for key, value in vars(args).items() if key != "json"},
        "headlines": {"rows": len(headlines), "distinct": True, "seed": args.seed,
                      "mean_chars": statistics.fmean(map(len, headlines))},
        "variants": {}, "levers": {},
    }
    loader = Loader()
    # The ceilings are measured first and again last; the faster of the two counts (others' load only lowers it)
    ceilings = {dtype: [matmul_ceiling(dtype, args.matmul_size, args.matmul_reps, device)] for dtype in DTYPES}
    with tempfile.TemporaryDirectory(prefix="finsent-bench-classify-") as tmp:
        folder = Path(tmp)
        source = write_csv(folder / "headlines.csv", headlines)

        # (a) classify, as a user runs it: first, so that the peak memory is its own
        reset = reset_peak_rss()
        a = run_classify(loader, source, folder / "labelled.parquet", args, n_threads=None, dtype=None,
                         **{k: SHIPPED[k] for k in ("batch_size", "chunk_rows", "share_prefix")})
        results["peak_rss_mb"] = peak_rss_mb()
        results["peak_rss_source"] = "VmHWM, reset before (a)" if reset else "process peak since start"
        a["rows"] = len(headlines)
        results["variants"]["(a) classify: CSV in, Parquet out, batch 32, chunk_rows 4096"] = report(a, "(a)")
        classifier = next(iter(loader.models.values()))
        flops = flops_fields(classifier, headlines)
        lengths = flops.pop("lengths")
        results["flops"] = flops
        a["padding"] = padding_overhead(lengths, SHIPPED["chunk_rows"], SHIPPED["batch_size"])

        # (b) the app's Batch tab
        b = run_app(headlines[: args.app_rows], args)
        b["rows"] = min(args.app_rows, len(headlines))
        results["variants"][f"(b) app Batch tab: classify_batch, {b['max_batch']} lines a call"] = report(b, "(b)")

        # (c) the notebook's pipeline
        if not args.skip_pipeline:
            c = run_pipeline(loader, headlines[: args.pipeline_rows], args)
            c["rows"] = min(args.pipeline_rows, len(headlines))
            results["variants"]["(c) notebook: text-generation pipeline, one headline at a time, fp32"] = report(c, "(c)")

        # the levers, one change at a time, through classify on the first --lever_rows headlines
        if levers:
            loader.warm_up = True
            sources = {}
            for name, settings, rows in lever_runs(levers, args, a["dtype"], native):
                if rows not in sources:
                    sources[rows] = write_csv(folder / f"headlines-{rows}.csv", headlines[:rows])
                run = run_classify(loader, sources[rows], folder / f"lever-{len(results['levers'])}.parquet", args,
                                   batch_size=settings["batch_size"], chunk_rows=settings["chunk_rows"],
                                   share_prefix=settings["share_prefix"], n_threads=settings["threads"],
                                   dtype=settings["dtype"], explain=settings["explain"])
                run["rows"] = min(rows, len(headlines))
                run["threads"] = settings["threads"] or torch.get_num_threads()
                run["padding"] = padding_overhead(lengths[:rows], settings["chunk_rows"], settings["batch_size"])
                results["levers"][name] = report(run, name)
            base = next(iter(results["levers"].values()))["headlines_per_s"]
            for entry in results["levers"].values():
                entry["vs_shipped"] = entry["headlines_per_s"] / base

    # the ceilings again, then each variant's share of its dtype's
    entries = [*results["variants"].values(), *results["levers"].values()]
    for dtype in sorted({*DTYPES, *(entry["dtype"] for entry in entries)}):
        ceilings.setdefault(dtype, []).append(matmul_ceiling(dtype, args.matmul_size, args.matmul_reps, device))
    results["ceilings"] = {dtype: {**max(runs, key=lambda run: run["tflops"]), "runs_tflops": [r["tflops"] for r in runs]}
                           for dtype, runs in ceilings.items()}
    print(json.dumps({"ceilings": results["ceilings"]}), flush=True)
    for entry in entries:
        add_share(entry, results)

    print_tables(results)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
        print(f"\nwrote {args.json}")
    return 0


def report(entry: dict, name: str) -> dict:
    entry["headlines_per_s"] = entry["rows"] / entry["seconds"]
    print(json.dumps({name: entry}), flush=True)
    return entry


def add_share(entry: dict, results: dict) -> dict:
    """share = headlines/s × FLOPs per headline / the ceiling (FLOP/s) of the dtype the variant computes in."""
    entry["share_of_ceiling"] = entry["headlines_per_s"] * results["flops"]["per_headline"] / (
        results["ceilings"][entry["dtype"]]["tflops"] * 1e12)
    return entry


def print_tables(results: dict) -> None:
    flops, ceilings = results["flops"], results["ceilings"]
    print(f"\n{json.dumps(results['machine'])}\n")
    print("| variant | rows | seconds | headlines/s | dtype | share of ceiling | model load s |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: |")
    for name, r in results["variants"].items():
        print(f"| {name} | {r['rows']:,} | {r['seconds']:.1f} | {r['headlines_per_s']:.2f} | {r['dtype']} | "
              f"{r['share_of_ceiling']:.1%} | {r['load_s']:.1f} |")
    print(f"\nPeak resident memory of (a): {results['peak_rss_mb']:,.0f} MB ({results['peak_rss_source']}).")
    print(f"Ceilings (torch.matmul n×n, median of {next(iter(ceilings.values()))['reps']}, the faster layout, the "
          "faster of the measurements before and after): "
          + "; ".join(f"{d} {c['tflops'] * 1000:,.1f} GFLOP/s (" + ", ".join(
              f"{layout} {m['tflops'] * 1000:,.1f} at {m['size']}" for layout, m in c["layouts"].items()) + ")"
              for d, c in ceilings.items()) + ".")
    print(f"FLOPs per headline: {flops['per_headline'] / 1e9:.3f} G = 2 × {flops['linear_params'] / 1e6:.1f} M linear "
          f"weights × ({flops['scored_tokens']:.1f} scored + {flops['continuation_tokens']} continuation tokens) + "
          f"4 × {flops['layers']} layers × {flops['attention_width']} × {flops['context_sum']:.0f} keys + "
          f"2 × {flops['hidden']} × {flops['vocab']:,} (head) × {1 + flops['continuation_tokens']}; the prompt is "
          f"{flops['prompt_tokens']:.1f} tokens, {flops['prefix_tokens']} of them the shared prefix.")
    if results["levers"]:
        print("\n| lever (one change from shipped) | rows | headlines/s | × shipped | padding | share of ceiling |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, r in results["levers"].items():
            print(f"| {name} | {r['rows']:,} | {r['headlines_per_s']:.2f} | {r['vs_shipped']:.2f} | "
                  f"{r['padding']:.1%} | {r['share_of_ceiling']:.1%} |")


if __name__ == "__main__":
    raise SystemExit(main())
