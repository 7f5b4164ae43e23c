"""Fine-tune a causal LM (Phi-2 by default) with LoRA/QLoRA to label financial headlines.

    python train/train.py --config cpu-embedded --data_file train/sample_headlines.csv \
        --train_size 30 --test_size 15 --eval_size 5 --output_dir runs/demo

A recipe (`--config NAME` for train/configs/NAME.yaml, or a path) sets the defaults;
flags win. The adapter, tokenizer, resolved config and split land in --output_dir
(the recipes say trained-model/); TensorBoard logs in its runs/ folder; the resolved
config is written when training starts. Several GPUs:
`accelerate launch --multi_gpu --num_processes N train/train.py --config phi2-qlora ...`;
the recipe's batch stays the global batch, split over the N processes (place()).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

import pandas as pd
import yaml
from transformers import TrainerCallback
from trl import ModelConfig, SFTConfig, SFTTrainer, TrlParser

from finsent.space.adapter_info import INFO_FILE, AdapterMismatch, check_info, make_info, write_info
from finsent.space.classifier import quantization_settings
from finsent.space.embedded import resolve_model_path
from finsent.space.errors import first_line
from finsent.space.precision import fp16_safe_attention, this_machine
from finsent.train import augment
from finsent.train.corrections import Continuation, correction_rows, without
from finsent.train.data import (
    COLUMNS,
    SplitSizes,
    UsageError,
    read_labelled,
    split_dataset,
    split_digests,
    to_prompt_completion,
    write_split,
)
from finsent.train.modeling import (
    PRECISIONS,
    PlacementError,
    autocast_flags,
    base_device,
    compact_lm_head_on_cpu,
    find_lora_targets,
    get_lora_config,
    get_model,
    get_tokenizer,
    optimizer_for,
    quantized_compute_dtype,
)
from finsent.train.sampling import BalancedSFTTrainer

logger = logging.getLogger("finsent.train")

CONFIGS = Path(__file__).resolve().parent / "configs"
RESOLVED_CONFIG = "training_config.yaml"


@dataclasses.dataclass
class ScriptArguments:
    data_file: str | None = dataclasses.field(
        default=None,
        metadata={"help": "Labelled headlines: a `sentiment,text` CSV, a PhraseBank `sentence@label` .txt, "
                  "a `save_to_disk` folder or a Hub dataset id (with --dataset_config)."},
    )
    dataset_config: str | None = dataclasses.field(
        default=None, metadata={"help": "Hub dataset config, e.g. sentences_50agree for takala/financial_phrasebank."}
    )
    encoding: str = dataclasses.field(
        default="auto", metadata={"help": "File encoding; `auto` tries UTF-8, then Latin-1."}
    )
    train_size: str = dataclasses.field(
        default="300", metadata={"help": "Training rows per label, or `all` for every row not in test or eval."}
    )
    test_size: int = dataclasses.field(default=300, metadata={"help": "Test rows per label."})
    eval_size: int = dataclasses.field(default=50, metadata={"help": "Eval rows per label (eval loss per epoch)."})
    split_seed: int = dataclasses.field(default=42, metadata={"help": "Seed of the split (not of training)."})
    skip_malformed: bool = dataclasses.field(
        default=False, metadata={"help": "Leave out malformed rows of --data_file (logged), not reject the file."},
    )
    balance_classes: bool = dataclasses.field(
        default=False, metadata={"help": "Balanced epochs: each holds as many rows of every label as the smallest "
                                 "has (a fresh draw of the others each epoch; train/sampling.py)."},
    )
    temperature: float | None = dataclasses.field(
        default=None, metadata={"help": "Recorded in finsent.json: label log-scores are divided by it before any "
                                "prior shift (calibration; train/sweep.py fits it on cross-validated predictions). "
                                "Default: 1 (none), or --init_adapter's own."},
    )
    corrections: str | None = dataclasses.field(
        default=None, metadata={"help": "Users' corrections from the app (`finsent app --feedback DIR`): that "
                                "folder, its corrections.jsonl, or the Hub dataset it pushes to. They join the "
                                "training rows (a headline's latest label; training rows of the same headline give "
                                "way); refused if any is a test or eval row."},
    )
    init_adapter: str | None = dataclasses.field(
        default=None, metadata={"help": "Continue this adapter (a folder or Hub id), not a new LoRA: on its base, its "
                                "split (drawn again from the source its split/summary.json records) and its "
                                "temperature, training on the --corrections and --replay rows of its own."},
    )
    replay: int = dataclasses.field(
        default=400, metadata={"help": "With --init_adapter: rows drawn (seeded) from the adapter's own training rows, "
                               "mixed with the corrections so that it does not forget the rest."},
    )
    batch_per_process: bool = dataclasses.field(
        default=False, metadata={"help": "Each process takes the recipe's batch (so N processes train on N times it). "
                                 "Default: the recipe's batch is the global batch, split over the processes."},
    )
    augment: int = dataclasses.field(
        default=0, metadata={"help": "Templated rows per capability added to the training split only, after it is "
                             "drawn (train/augment.py: 6 capabilities the behaviour suite tests, so 6 x N rows; "
                             "refused if any is a behaviour test case). 0: none."},
    )
    augment_seed: int = dataclasses.field(default=0, metadata={"help": "Seed of the --augment rows."})
    resume: bool = dataclasses.field(
        default=False, metadata={"help": "Continue from the last checkpoint in --output_dir after an interruption."}
    )

    def sizes(self) -> SplitSizes:
        try:
            train = None if self.train_size.strip().lower() == "all" else int(self.train_size)
            return SplitSizes(train=train, test=self.test_size, eval=self.eval_size)
        except ValueError as err:  # not a number, or negative
            if "_size" in str(err):
                raise UsageError(str(err)) from None
            raise UsageError(f"--train_size {self.train_size!r}: give a number of rows per label, or `all`") from None


@dataclasses.dataclass
class TrainingConfig(SFTConfig):
    """TRL's SFTConfig, its bf16/fp16 chosen by `precision` from this machine's hardware (space/precision.py)."""

    precision: str = dataclasses.field(
        default="auto", metadata={"help": "Mixed precision: `auto` (bf16 where the hardware computes it natively: CUDA "
                                  "sm >= 8.0, CPUs with AVX-512 BF16 or AMX; else fp16 on a GPU, fp32 on a CPU), "
                                  f"or one of {', '.join(PRECISIONS[1:])}. --bf16 / --fp16 also choose."},
    )

    def __post_init__(self):
        import torch

        on_gpu = torch.cuda.is_available() and not self.use_cpu
        self.machine = this_machine("cuda" if on_gpu else "cpu")
        flags = autocast_flags(self.precision, self.bf16, self.fp16, self.machine)
        if self.bf16 is None and flags["bf16"] and not on_gpu:
            self.use_cpu = True  # no GPU to train on: say so, or transformers takes bf16 for a GPU's
        self.bf16, self.fp16 = flags["bf16"], flags["fp16"]
        super().__post_init__()

    def autocast(self) -> str:
        return "bf16" if self.bf16 else "fp16" if self.fp16 else "fp32"


def make_parser() -> TrlParser:
    return TrlParser((ScriptArguments, ModelConfig, TrainingConfig))


def resolve_recipe(argv: list[str]) -> list[str]:
    """Let `--config NAME` stand for train/configs/NAME.yaml."""
    argv = list(argv)
    if "--config" in argv and argv.index("--config") + 1 < len(argv):
        i = argv.index("--config") + 1
        if not Path(argv[i]).is_file() and (CONFIGS / f"{argv[i]}.yaml").is_file():
            argv[i] = str(CONFIGS / f"{argv[i]}.yaml")
        elif not Path(argv[i]).is_file():
            names = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.yaml")))
            raise UsageError(f"--config {argv[i]}: no such recipe file; use one of {names} or a YAML path")
    return argv


def check_output_dir(output_dir: Path, resume: bool) -> None:
    """Never overwrite a finished or interrupted run by accident."""
    checkpoints = sorted(output_dir.glob("checkpoint-*"))
    if resume and not checkpoints:
        raise UsageError(f"--resume: {output_dir} holds no checkpoint-* folder to resume from; drop --resume")
    if not resume and (checkpoints or (output_dir / "adapter_config.json").exists()):
        raise UsageError(
            f"{output_dir} already holds a run: pass --resume to continue it, "
            "or choose another --output_dir (or delete that folder)"
        )


def check_same_split(output_dir: Path, splits, augmented: dict | None) -> None:
    """A resumed run must train on the split, and the templated rows, it started with."""
    summary = output_dir / "split" / "summary.json"
    recorded = json.loads(summary.read_text()) if summary.is_file() else None
    if recorded and (recorded.get("sha256"), recorded.get("augment")) != (split_digests(splits), augmented):
        raise UsageError(
            f"--resume: the data or split flags differ from those of the run in {output_dir} "
            f"(see {summary}); pass the same --data_file, sizes and --augment, or start a new --output_dir"
        )


def split_global_batch(per_device: int, accumulation: int, ways: int) -> tuple[int, int]:
    """(per-device batch, accumulation steps) whose product over `ways` data-parallel copies is the recipe's batch.

    The largest per-device batch up to the recipe's that divides it, then as many accumulation steps as needed.
    """
    total = per_device * accumulation
    for size in range(per_device, 0, -1):
        if total % (size * ways) == 0:
            return size, total // (size * ways)
    raise UsageError(
        f"the recipe's batch of {total} ({per_device} per device x {accumulation} accumulation steps) does not split "
        f"over {ways} processes; pass --per_device_train_batch_size and --gradient_accumulation_steps whose product "
        f"is a multiple of {ways}, or --batch_per_process true to give every process that batch"
    )


def place(script_args, model_args, training_args) -> str | int | None:
    """Settle where the base loads, the optimizer and the per-device batch for this machine; log each choice."""
    import torch

    cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    on_cpu = training_args.use_cpu or cuda_devices == 0
    try:
        device = base_device(cuda_devices=cuda_devices, use_cpu=training_args.use_cpu,
                             quantized=bool(model_args.load_in_4bit or model_args.load_in_8bit),
                             local_processes=int(os.environ.get("LOCAL_WORLD_SIZE", training_args.world_size)),
                             local_rank=training_args.local_process_index)
    except PlacementError as err:
        raise UsageError(str(err)) from None
    optim = optimizer_for(str(training_args.optim.value), on_cpu)
    if optim != training_args.optim.value:
        logger.warning("optim %s pages optimizer state to a GPU; on the CPU it runs as %s (the same update, unpaged)",
                       training_args.optim.value, optim)
        training_args.optim = type(training_args.optim)(optim)
    ways = training_args.world_size * max(1, training_args.n_gpu)
    if ways > 1 and not script_args.batch_per_process:
        per_device, steps = split_global_batch(training_args.per_device_train_batch_size,
                                               training_args.gradient_accumulation_steps, ways)
        training_args.per_device_train_batch_size, training_args.gradient_accumulation_steps = per_device, steps
    logger.info("global batch %d = %d process(es) x %d per device x %d accumulation steps; base model on %s",
                ways * training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps, ways,
                training_args.per_device_train_batch_size, training_args.gradient_accumulation_steps,
                "the Trainer's device" if device is None else device)
    return device


def settle_precision(model_args: ModelConfig, training_args: TrainingConfig) -> dict:
    """The 4-bit compute dtype and fp16's attention guard, from the machine the config decided on; what will run.

    e.g. {"autocast": "fp16", "compute_dtype": "float32", "attention": "sdpa_fp32_scores",
          "line": "Tesla T4 (sm 7.5): no native bf16; fp16 autocast, 4-bit compute float32, attention in float32"}
    """
    machine = training_args.machine
    quantized = bool(model_args.load_in_4bit)
    if quantized:
        model_args.dtype = quantized_compute_dtype(model_args.dtype, machine)
    if training_args.fp16 and not model_args.attn_implementation:  # Phi-2's q.k overflows fp16 (space/precision.py)
        model_args.attn_implementation = fp16_safe_attention()
    parts = [f"{training_args.autocast()} autocast" if training_args.autocast() != "fp32" else "fp32, no autocast"]
    if quantized:
        parts.append(f"4-bit compute {model_args.dtype}")
    if model_args.attn_implementation == fp16_safe_attention():
        parts.append("attention in float32")
    return {"autocast": training_args.autocast(), "compute_dtype": model_args.dtype if quantized else None,
            "attention": model_args.attn_implementation, "hardware": machine.reason,
            "line": f"{machine.reason}; {', '.join(parts)}"}


def save_resolved_config(path: Path, script_args, model_args, training_args, precision: dict) -> None:
    config = {
        "precision": {key: value for key, value in precision.items() if key != "line"},
        "script": dataclasses.asdict(script_args),
        "model": dataclasses.asdict(model_args),
        "training": training_args.to_dict(),  # masks *_token fields
    }
    path.write_text(yaml.safe_dump(json.loads(json.dumps(config, default=str)), sort_keys=False))


class InfoInCheckpoints(TrainerCallback):
    """Each checkpoint gets the adapter's finsent.json, so it loads and evaluates like the final adapter,
    and loses PEFT's automatic README.md (it names the base by its cache path): a run's one card is
    finsent's, written by eval/evaluate.py."""

    def __init__(self, info: dict):
        self.info = info

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            write_info(folder, self.info)
            (folder / "README.md").unlink(missing_ok=True)


def continuation(script_args: ScriptArguments, model_args: ModelConfig) -> Continuation:
    """The adapter --init_adapter names, checked against the rest of the flags and the base it will load on."""
    for flag, given in (("--data_file", script_args.data_file), ("--augment", script_args.augment)):
        if given:
            raise UsageError(f"--init_adapter continues on the adapter's own split and training rows; drop {flag}")
    if not script_args.corrections:
        raise UsageError("--init_adapter: pass --corrections (the app's feedback folder or Hub dataset) to learn from")
    init = Continuation.load(script_args.init_adapter)
    model_args.model_name_or_path = model_args.model_name_or_path or init.base_model
    try:
        check_info(init.source, init.info, model_args.model_name_or_path, resolve_model_path(model_args.model_name_or_path))
    except AdapterMismatch as err:
        raise UsageError(f"--init_adapter: {err}") from None
    if bool(init.info.get("base_quantization")) != bool(model_args.load_in_4bit):
        want = "true" if init.info.get("base_quantization") else "false"
        raise UsageError(f"--init_adapter {init.source} trained on a {'4-bit' if want == 'true' else 'full-precision'} "
                         f"base; pass --load_in_4bit {want}")
    return init


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        args = parse(argv)
        train(*args)
    except UsageError as err:  # the user's to fix: one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def parse(argv: list[str]) -> tuple[ScriptArguments, ModelConfig, TrainingConfig]:
    """The recipe, then the flags; an invalid combination is a UsageError, not a traceback."""
    argv = resolve_recipe(argv)
    try:
        return make_parser().parse_args_and_config(argv)
    except UsageError:
        raise
    except ValueError as err:  # raised by the config dataclasses' checks, e.g. bf16 without a GPU
        hint = " (on a CPU: --use_cpu true --bf16 false, or --config cpu-embedded)" if "bf16" in str(err) else ""
        raise UsageError(f"invalid configuration: {err}{hint}") from None


def train(
    script_args: ScriptArguments, model_args: ModelConfig, training_args: TrainingConfig, callbacks=None
) -> SFTTrainer:
    """Read and split the data, load the model, fine-tune, save; returns the trainer (tests, benchmarks)."""
    precision = settle_precision(model_args, training_args)
    logger.info("precision: %s", precision["line"])
    logger.info("config: %s", {"script": script_args, "model": model_args})
    logger.info("process %d of %d", training_args.process_index, training_args.world_size)
    output_dir = Path(training_args.output_dir)
    check_output_dir(output_dir, script_args.resume)
    init = continuation(script_args, model_args) if script_args.init_adapter else None
    if script_args.temperature is None:  # a continuation keeps the calibration it was given
        script_args.temperature = float(init.info.get("temperature", 1.0)) if init else 1.0
    if not script_args.temperature > 0:
        raise UsageError(f"--temperature {script_args.temperature}: give a number above 0 (1 leaves scores as they are)")
    if not script_args.data_file and not init:
        raise UsageError("no data: pass --data_file (a CSV, a PhraseBank .txt, a dataset folder or Hub id)")
    if not model_args.model_name_or_path:
        raise UsageError("no base model: pass --config phi2-qlora / cpu-embedded, or --model_name_or_path")

    # Data: read, validate and split before anything is written.
    if init:  # the adapter's own split, drawn again: its test score before and after is on the same rows
        splits = init.splits
        summary = {key: value for key, value in
                   json.loads((init.folder / "split" / "summary.json").read_text()).items() if key != "sha256"}
    else:
        table = read_labelled(script_args.data_file, dataset_config=script_args.dataset_config,
                              encoding=script_args.encoding, skip_malformed=script_args.skip_malformed)
        splits, summary = split_dataset(table, script_args.sizes(), seed=script_args.split_seed)
        summary["source"] = script_args.data_file
    if not len(splits["eval"]) and training_args.eval_strategy != "no":
        raise UsageError("--eval_size 0 leaves no eval set: also pass --eval_strategy no")
    corrections, corrected = (correction_rows(script_args.corrections, splits) if script_args.corrections
                              else (pd.DataFrame(columns=list(COLUMNS)), None))
    if init:  # the corrections, and a replay of what it learned before
        replayed = init.replay(script_args.replay, training_args.seed, corrections)
        train_rows = pd.concat([corrections, replayed], ignore_index=True)
        logger.info("continuing %s on %d correction(s) and %d of its own rows", init.source, len(corrections),
                    len(replayed))
    else:
        # Templated rows join the training rows only, after the split: test, eval and the split's sha256 stay the data's.
        templated, summary["augment"] = augment.for_training(script_args.augment, script_args.augment_seed, splits)
        train_rows = pd.concat([without(splits["train"], corrections), templated[list(COLUMNS)], corrections],
                               ignore_index=True)
    if script_args.resume:
        check_same_split(output_dir, splits, summary.get("augment"))
    device = place(script_args, model_args, training_args)
    train_dataset = to_prompt_completion(train_rows)
    eval_dataset = to_prompt_completion(splits["eval"]) if len(splits["eval"]) else None

    # Model: loaded before anything is written, so a wrong id leaves no output behind.
    try:
        tokenizer = get_tokenizer(model_args)
        model = get_model(model_args, device)
    except (OSError, ValueError) as err:  # not found, not a model, Hub unreachable
        reason = first_line(err)
        raise UsageError(
            f"--model_name_or_path {model_args.model_name_or_path}: cannot load it ({reason}); "
            "pass a local model folder, or a Hub id with the network to fetch it"
        ) from None
    targets = find_lora_targets(model)
    logger.info("%d layers; linear modules: %s", targets.num_layers, " ".join(targets.module_names))
    if init:  # its own LoRA, trainable: no new one
        from peft import PeftModel

        model, peft_config = PeftModel.from_pretrained(model, str(init.folder), is_trainable=True), None
        logger.info("LoRA on: %s (as %s trained)", sorted(model.peft_config["default"].target_modules), init.source)
    else:
        peft_config = get_lora_config(model_args, model)
        logger.info("LoRA on: %s", peft_config.target_modules)

    # What the adapter will be checked against when loaded: prompt version, base weights, label mix.
    base = model_args.model_name_or_path
    counts = train_rows["sentiment"].value_counts().to_dict()  # every row trained on, templated ones too
    if script_args.balance_classes:  # the label mix the model sees: every epoch balanced
        counts = dict.fromkeys(counts, min(counts.values()))
    if init:  # what it learned before, and the corrections (the replayed rows are a sample of the former)
        counts = init.label_counts(corrections)
    info = make_info(base, resolve_model_path(base), counts, model_args.model_revision,
                     quantization_settings(getattr(model.config, "quantization_config", None)),
                     temperature=script_args.temperature,
                     precision={key: precision[key] for key in ("autocast", "compute_dtype", "hardware")},
                     augment=summary.get("augment"), corrections=corrected,
                     continued_from=init.record(len(train_rows) - len(corrections)) if init else None)
    if training_args.process_index == 0:  # the settings first, so an interrupted run keeps them
        write_split(splits, summary, output_dir)
        save_resolved_config(output_dir / RESOLVED_CONFIG, script_args, model_args, training_args, precision)
    compact_lm_head_on_cpu()
    balanced = {"train_labels": train_rows["sentiment"].tolist()} if script_args.balance_classes else {}
    trainer = (BalancedSFTTrainer if balanced else SFTTrainer)(
        **balanced,
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[*(callbacks or []), InfoInCheckpoints(info)],
    )
    trainer.create_model_card = lambda *args, **kwargs: None  # TRL's card ("a fine-tuned version of [None]")
    trainer.train(resume_from_checkpoint=True if script_args.resume else None)
    trainer.save_model(str(output_dir))  # adapter + tokenizer
    if trainer.is_world_process_zero():
        (output_dir / "README.md").unlink(missing_ok=True)  # PEFT's automatic card; evaluate.py writes finsent's
        write_info(output_dir, info)
        logger.info("adapter, tokenizer, %s, %s and split/ saved to %s", RESOLVED_CONFIG, INFO_FILE, output_dir)
    return trainer


if __name__ == "__main__":
    raise SystemExit(main())
