"""The model card of a trained run, rendered from template.md with its eval results as Hub metadata.

    from finsent.model_card.card import build_card
    build_card("trained-model", "user/finsent-phi2").save("trained-model/README.md")

Reads the run folder train.py and eval/evaluate.py wrote: adapter_config.json,
training_config.yaml, split/summary.json and eval_results.json. The metadata's
`model-index` holds one result per metric (accuracy, macro F1, accuracy and F1 per
label) of the fine-tuned model, built with huggingface_hub's `EvalResult`. When the run
folder holds `finsent export-gguf`'s adapter.gguf, a "Use with llama.cpp" section shows
llama-server, a llama-cpp-python scorer and, for a merged-TYPE.gguf, an Ollama Modelfile.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from finsent.eval.report import FIGURES_DIR, RESULTS_FILE, RUN_TITLES, RUNS, title_of
from finsent.space import embedded
from finsent.space.adapter_info import INFO_FILE, read_info
from finsent.space.classifier import LABELS, PROMPT_TEMPLATE, PROMPTS, prior_shift
from finsent.space.figures import behaviour_table, wrong_answers
from finsent.train.data import UsageError
from finsent.train.export_gguf import ADAPTER_FILE, merged_file

TEMPLATE = Path(__file__).with_name("template.md")
PHRASEBANK = "takala/financial_phrasebank"
LICENSE = "cc-by-nc-sa-3.0"  # the training data's licence (Financial PhraseBank)
# PhraseBank files -> the Hub dataset's config of the same sentences
PHRASEBANK_CONFIGS = {
    "all-data.csv": "sentences_50agree",
    "sentences_50agree.txt": "sentences_50agree",
    "sentences_66agree.txt": "sentences_66agree",
    "sentences_75agree.txt": "sentences_75agree",
    "sentences_allagree.txt": "sentences_allagree",
}
EXAMPLE_HEADLINE = "Kestrel Oyj raises its full-year operating profit forecast"  # fictional
REQUIRED = ("adapter_config.json", "adapter_model.safetensors", "training_config.yaml", RESULTS_FILE)


def read_run(run_dir: str | Path) -> dict:
    """The run folder's files, or a UsageError naming what is missing and how to make it."""
    run_dir = Path(run_dir)
    missing = [name for name in REQUIRED if not (run_dir / name).is_file()]
    if missing:
        fix = "run eval/evaluate.py --adapter on it" if missing == [RESULTS_FILE] else "train it with train/train.py"
        raise UsageError(f"{run_dir}: not a complete trained and evaluated run ({', '.join(missing)} missing); {fix}")
    split = run_dir / "split" / "summary.json"
    return {
        "adapter": json.loads((run_dir / "adapter_config.json").read_text()),
        "config": yaml.safe_load((run_dir / "training_config.yaml").read_text()),
        "results": json.loads((run_dir / RESULTS_FILE).read_text()),
        "split": json.loads(split.read_text()) if split.is_file() else None,
        "info": read_info(str(run_dir)) if (run_dir / INFO_FILE).is_file() else {},
        "has_tokenizer": (run_dir / "tokenizer_config.json").is_file(),
        "figures": sorted(p.relative_to(run_dir).as_posix() for p in (run_dir / FIGURES_DIR).glob("*.png")),
        # finsent export-gguf's files; push.py narrows this to what it uploads
        "gguf": sorted(p.name for pattern in (ADAPTER_FILE, merged_file("*")) for p in run_dir.glob(pattern)),
    }


def data_source(run: dict) -> str:
    """The training data's file or Hub id: the run's --data_file, or, for a continuation (--init_adapter), the one
    its split was drawn from."""
    return run["config"]["script"].get("data_file") or (run["split"] or {})["source"]


def dataset_of(config: dict, source: str) -> tuple[str, str | None, str]:
    """(Hub dataset id or file name, config, pretty name) of the training data."""
    name = Path(source).name.lower()
    if source == PHRASEBANK:
        subset = config["script"].get("dataset_config")
        return PHRASEBANK, subset, f"Financial PhraseBank ({subset})"
    if name in PHRASEBANK_CONFIGS:
        return PHRASEBANK, PHRASEBANK_CONFIGS[name], f"Financial PhraseBank ({PHRASEBANK_CONFIGS[name]})"
    return Path(source).name, None, Path(source).name


def eval_results(results: dict, dataset: tuple[str, str | None, str]) -> list[EvalResult]:
    """One EvalResult per metric of the fine-tuned run (or of the base, for a base-only evaluation)."""
    run = results["runs"].get("fine_tuned") or results["runs"]["base"]
    metrics = run["metrics"]
    dataset_type, dataset_config, dataset_name = dataset
    common = {
        "task_type": "text-classification", "task_name": "Sentiment analysis of financial headlines",
        "dataset_type": dataset_type, "dataset_name": dataset_name, "dataset_config": dataset_config,
        "dataset_split": results["split"],
    }
    values = [("accuracy", "Accuracy", None, metrics["accuracy"]),
              ("f1", "Macro F1", {"average": "macro"}, metrics["macro"]["f1"])]
    for label in LABELS:
        values.append(("accuracy", f"Accuracy ({label})", {"label": label}, metrics["per_label"][label]["accuracy"]))
        values.append(("f1", f"F1 ({label})", {"label": label}, metrics["per_label"][label]["f1"]))
    return [EvalResult(metric_type=kind, metric_name=name, metric_args=args, metric_value=value, **common)
            for kind, name, args, value in values]


def hyperparameters(run: dict) -> list[tuple[str, str]]:
    model, training, adapter = run["config"]["model"], run["config"]["training"], run["adapter"]
    precision = "4-bit NF4 base" + (" (double quant)" if model["use_bnb_nested_quant"] else "") \
        if model["load_in_4bit"] else f"{model['dtype']} base"
    precision += ", bf16 autocast" if training.get("bf16") else ""
    temperature = run["config"]["script"].get("temperature", 1.0)
    return [
        ("base model", f"`{model['model_name_or_path']}`, {precision}"),
        ("LoRA", f"r {adapter['r']}, alpha {adapter['lora_alpha']}, dropout {adapter['lora_dropout']}, "
                 f"on {', '.join(f'`{m}`' for m in sorted(adapter['target_modules']))}"),
        ("epochs / max steps", f"{training['num_train_epochs']} / {training['max_steps']}"),
        ("batch", f"{training['per_device_train_batch_size']} per device x {training['gradient_accumulation_steps']} "
                  "accumulation"),
        ("optimizer", f"{training['optim']}, learning rate {training['learning_rate']}, "
                      f"{training['lr_scheduler_type']} schedule, warm-up {training['warmup_steps']}, "
                      f"weight decay {training['weight_decay']}, max grad norm {training['max_grad_norm']}"),
        ("sequence length", f"{training['max_length']} tokens; loss on the completion only"),
        ("seed", f"{training['seed']} (split seed {run['config']['script']['split_seed']})"),
        *([("label-score temperature", f"{temperature} (scores are divided by it; fitted on cross-validated "
                                       "predictions)")] if temperature != 1 else []),
    ]


def hub_id(name: str) -> bool:
    """Whether a model name is a Hub id (owner/name or a bare name), not a local folder."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if Path(name).exists() or Path(name).is_absolute() or name.startswith((".", "~")):
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def build_card(run_dir: str | Path, repo_id: str) -> ModelCard:
    """The card for `repo_id` from the run folder; figures are linked by their path in the repo."""
    return card_from_run(read_run(run_dir), repo_id)


def card_from_run(run: dict, repo_id: str) -> ModelCard:
    """The card from a run already read with `read_run`."""
    results = run["results"]
    dataset = dataset_of(run["config"], data_source(run))
    base_model = run["adapter"]["base_model_name_or_path"]
    on_hub = hub_id(base_model)  # a local base (a folder) has no Hub page to link
    four_bit = bool(run["config"]["model"].get("load_in_4bit"))  # a QLoRA run
    card_data = ModelCardData(
        base_model=base_model if on_hub else None,
        base_model_relation="adapter" if on_hub else None,
        library_name="peft",
        license=LICENSE,
        datasets=[dataset[0]] if "/" in dataset[0] else None,
        language=["en"],
        # what PEFT writes for a causal-LM adapter: the Hub's widgets and filters treat it as one; the task
        # it was evaluated on stays text-classification in model-index (README, Publish)
        pipeline_tag="text-generation",
        tags=["finance", "sentiment-analysis", "financial-sentiment", "text-classification", "lora",
              *(["qlora"] if four_bit else []), "peft", "trl", "sft"],
        metrics=["accuracy", "f1"],
        model_name=repo_id,
        eval_results=eval_results(results, dataset),
    )
    runs = [{"title": RUN_TITLES[name], "scores": _summary(results["runs"][name]["metrics"]),
             "intervals": _summary_intervals(results["runs"][name].get("intervals"))}
            for name in RUNS if name in results["runs"]]
    shown = results["runs"].get("fine_tuned") or results["runs"]["base"]
    metrics = {name: run_["metrics"] for name, run_ in results["runs"].items()}
    split = run["split"] or {"seed": "?", "counts": {}, "conflicting_texts_dropped": {"texts": 0},
                             "duplicate_rows_removed": 0}
    info = run.get("info", {})
    counts = info.get("train_label_counts")
    fine_tuned = results["runs"].get("fine_tuned", {})
    shift = prior_shift(counts, "balanced") if fine_tuned.get("label_prior") == "balanced" else None
    gguf = {"repo": embedded.GGUF_REPO, "file": embedded.GGUF_FILE, "revision": embedded.GGUF_REVISION} \
        if info.get("base_weights") == embedded.EMBEDDED_WEIGHTS else None
    # the snippet loads the base as the adapter trained on it; older adapters recorded nothing: 4-bit on CUDA
    quantization = info.get("base_quantization", "unrecorded")
    quantization_args = ", ".join(f"{k}={v!r}" for k, v in quantization.items() if k != "bnb_4bit_compute_dtype") \
        if isinstance(quantization, dict) else None  # the compute dtype: chosen for the reader's GPU, in the snippet
    return ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        repo_id=repo_id,
        base_model=base_model,
        prompt_template=PROMPT_TEMPLATE,
        prompt_version=info.get("prompt_version", "?"),
        gguf=gguf,
        quantization="unrecorded" if quantization == "unrecorded" else quantization_args,
        compute_dtype=quantization.get("bnb_4bit_compute_dtype", "bfloat16") if quantization_args else None,
        base_weights=info.get("base_weights"),
        base_sha256=info.get("base_weights_sha256"),
        has_tokenizer=run.get("has_tokenizer", True),
        prior_shift=shift,
        temperature=fine_tuned.get("temperature", 1.0),
        train_mix=", ".join(f"{label} {counts[label] / sum(counts.values()):.0%}" for label in LABELS) if counts else "",
        example_headline=EXAMPLE_HEADLINE,
        rows=results["rows"],
        test_per_label=results["rows"] // len(LABELS),
        after=metrics.get("fine_tuned") or metrics["base"],
        before=metrics.get("base") if "fine_tuned" in metrics else None,
        baseline=metrics.get("baseline"),
        minilm=metrics.get("minilm"),
        mode=results["mode"],
        evaluated=results["created"][:10],
        data_description=_data_description(dataset, data_source(run)),
        split=split,
        labels=list(LABELS),
        hyperparameters=hyperparameters(run),
        augment=info.get("augment"),
        corrections=info.get("corrections"),
        continued_from=info.get("continued_from"),
        runs=runs,
        interval=_summary_intervals(shown.get("intervals")),
        interval_method=shown.get("intervals"),
        comparisons=[{"other": title_of(name.split(" vs ", 1)[1]), **c}
                     for name, c in (results.get("comparisons") or {}).items()],
        calibration=shown.get("calibration"),
        behaviour=behaviour_table(results, RUN_TITLES),  # None unless evaluated with --behaviour
        wrong=wrong_answers(shown),
        summary_rows=[("Accuracy", "accuracy"), ("Macro F1", "macro_f1")]
        + [(f"Accuracy, {label}", f"accuracy_{label}") for label in LABELS]
        + [(f"F1, {label}", f"f1_{label}") for label in LABELS],
        figures=[{"path": path, "title": Path(path).stem.replace("_", " ")} for path in run["figures"]],
        llama=llama_cpp_usage(run, base_model, four_bit),
    )


def llama_cpp_usage(run: dict, base_model: str, four_bit: bool) -> dict | None:
    """What the card's "Use with llama.cpp" section shows; None unless the repository holds adapter.gguf."""
    files = run.get("gguf") or []
    if ADAPTER_FILE not in files:
        return None
    merged = [name for name in files if name != ADAPTER_FILE]
    if base_model == embedded.EMBEDDED_MODEL_ID:  # the GGUF it was trained on, as export-gguf merges into it
        base = {"repo": embedded.GGUF_REPO, "file": embedded.GGUF_FILE, "revision": embedded.GGUF_REVISION}
    else:  # Phi-2: llama.cpp's converter makes the GGUF from the transformers weights
        name = Path(base_model).name
        base = {"model": base_model, "folder": name if hub_id(base_model) else None, "file": f"{name}-f16.gguf"}
    version = (run.get("info") or {}).get("prompt_version")
    prompt = PROMPTS[int(version)] if version else PROMPT_TEMPLATE  # the adapter's, as its finsent.* keys hold
    prefix, suffix = merged_file("*").split("*")  # `export-gguf --merged TYPE` writes merged_file(TYPE)
    return {
        "adapter": ADAPTER_FILE,
        "merged": merged,
        "merged_type": merged[0].removeprefix(prefix).removesuffix(suffix) if merged else None,
        "base": base,
        "four_bit": four_bit,
        "request": json.dumps({"prompt": prompt.format(text=EXAMPLE_HEADLINE), "max_tokens": 1, "temperature": 0}),
        # Ollama's Go template: the headline sent is the prompt's {text}; no chat template wraps it
        "ollama_template": prompt.replace("{text}", "{{ .Prompt }}"),
    }


def _summary(metrics: dict) -> dict[str, float]:
    values = {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro"]["f1"]}
    for label in LABELS:
        values[f"accuracy_{label}"] = metrics["per_label"][label]["accuracy"]
        values[f"f1_{label}"] = metrics["per_label"][label]["f1"]
    return values


def _summary_intervals(intervals: dict | None) -> dict[str, list[float]] | None:
    """The bootstrap intervals under _summary's keys (eval/uncertainty.py); None for results without them."""
    if not intervals:
        return None
    values = {"accuracy": intervals["accuracy"], "macro_f1": intervals["macro_f1"]}
    for label in LABELS:
        values[f"accuracy_{label}"] = intervals["per_label"][label]["accuracy"]
        values[f"f1_{label}"] = intervals["per_label"][label]["f1"]
    return values


def _data_description(dataset: tuple[str, str | None, str], source: str) -> str:
    dataset_type, subset, name = dataset
    if dataset_type == PHRASEBANK:
        return (f"The [Financial PhraseBank](https://huggingface.co/datasets/{PHRASEBANK}) (Malo et al., 2014), "
                f"config `{subset}`: sentences from English financial news, each labelled by 5 to 8 annotators; "
                f"read from `{Path(source).name}`.")
    return f"`{name}`: labelled headlines provided by the user (sentiment,text)."
