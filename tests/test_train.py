"""train/train.py end to end on the tiny random Phi, 4-bit on the CPU."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import TrainerCallback

from conftest import REPO, SAMPLE_HEADLINES, tiny_args
from finsent.space.classifier import LABELS
from finsent.space.precision import this_machine
from finsent.train import train as train_script
from finsent.train.modeling import find_lora_targets

RECIPES = sorted((REPO / "train" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_parses(recipe):
    # --use_cpu: the GPU recipe's bf16 check needs a GPU unless training is on the CPU
    script, model, training = train_script.parse(
        ["--config", str(recipe), "--data_file", "x.csv", "--output_dir", "/tmp/unused", "--use_cpu", "true"]
    )
    if script.init_adapter:  # a continuation: base and LoRA are the adapter's own
        assert (REPO / script.init_adapter / "adapter_config.json").is_file() and not model.model_name_or_path
    else:
        assert model.model_name_or_path and model.use_peft
    assert training.completion_only_loss and "tensorboard" in training.report_to
    assert script.sizes().test == 300


SCRIPT_FLAGS = [  # each script run as a file, as the docs run them, and flags its --help must list
    ("train/train.py", ["--data_file", "--lora_r", "--load_in_4bit", "--resume", "--max_length", "--augment"]),
    ("train/bench_throughput.py", ["--data_file", "--steps"]),
    ("eval/bench_scoring.py", ["--adapter", "--skip_pipeline"]),
    ("eval/bench_app.py", ["--adapter", "--json"]),
    ("train/export.py", ["--repo-id", "--dtype"]),
    ("eval/validate.py", ["--json"]),
    ("eval/bench_default.py", ["--adapter", "--rounds"]),
    ("train/sweep.py", ["--trials", "--only_folds", "--behaviour_cases"]),
]


def test_help_runs():
    """Each a fresh process, two at a time (each mostly imports)."""
    from concurrent.futures import ThreadPoolExecutor

    def run(script):
        return subprocess.run([sys.executable, script, "--help"], cwd=REPO, capture_output=True, text=True)

    with ThreadPoolExecutor(max_workers=2) as pool:
        outs = list(pool.map(run, [script for script, _ in SCRIPT_FLAGS]))
    for (script, flags), out in zip(SCRIPT_FLAGS, outs, strict=True):
        assert out.returncode == 0, (script, out.stderr)
        assert [flag for flag in flags if flag not in out.stdout] == [], script


def test_find_lora_targets_on_phi_never_the_head(tiny_phi):
    from transformers import AutoModelForCausalLM

    targets = find_lora_targets(AutoModelForCausalLM.from_pretrained(tiny_phi))
    assert targets.num_layers == 2
    assert targets.module_names == ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"]


def test_main_writes_a_loadable_adapter_and_tensorboard_logs(tiny_phi, tmp_path, caplog):
    from peft import PeftModel
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from transformers import AutoModelForCausalLM

    out = tmp_path / "trained-model"
    # one whole epoch, so the per-epoch eval runs: 3 labels x 8 rows / batch 4 = 6 steps
    one_epoch = ["--train_size", "8", "--max_steps", "-1", "--num_train_epochs", "1", "--eval_strategy", "epoch"]
    with caplog.at_level(logging.INFO, logger="finsent.train"):
        assert train_script.main(tiny_args(tiny_phi, out, *one_epoch)) == 0
    machine = this_machine("cpu")  # the log's first line says what training computes in, and why
    assert caplog.records[0].getMessage().startswith(f"precision: {machine.reason}; ")

    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json",
                 train_script.RESOLVED_CONFIG, "split/summary.json", "split/train.csv", "split/test.csv"):
        assert (out / name).is_file(), name
    weights = load_file(out / "adapter_model.safetensors")
    assert weights and all("lora_" in key for key in weights)
    assert all(weights[k].abs().sum() > 0 for k in weights if "lora_B" in k)  # B starts at zero

    base = AutoModelForCausalLM.from_pretrained(tiny_phi)
    model = PeftModel.from_pretrained(base, out)
    assert sorted(model.peft_config["default"].target_modules) == sorted(
        ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"])

    [event_dir] = {p.parent for p in (out / "runs").rglob("events.out.tfevents.*")}
    events = EventAccumulator(str(event_dir))
    events.Reload()
    losses = [e.value for e in events.Scalars("train/loss")]
    # a random model starts near uniform over its vocabulary, cross-entropy ln(V), and learns from there
    vocab = AutoModelForCausalLM.from_pretrained(tiny_phi).config.vocab_size
    assert len(losses) == 6 and abs(losses[0] - math.log(vocab)) < 0.5, (losses, math.log(vocab))
    assert min(losses[-2:]) < losses[0] - 0.5, losses
    assert len(events.Scalars("train/learning_rate")) == 6
    [eval_loss] = events.Scalars("eval/loss")
    assert eval_loss.step == 6 and eval_loss.value < math.log(vocab), (eval_loss.value, math.log(vocab))


def test_lora_weights_change_and_base_weights_do_not(tiny_phi, tmp_path):
    args = train_script.parse(tiny_args(tiny_phi, tmp_path / "run"))
    trainer = train_script.train(*args)
    # PEFT wraps each adapted layer: base_model.model.<name> and <layer>.base_layer.weight
    trained = {n.removeprefix("base_model.model.").replace(".base_layer", ""): p
               for n, p in trainer.model.named_parameters()}

    fresh = train_script.get_model(args[1], "cpu")  # same 4-bit load, no training
    for name, param in fresh.named_parameters():
        assert torch.equal(trained[name].data.cpu(), param.data.cpu()), name
    lora_b = [p for n, p in trained.items() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)


class Interrupt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        raise KeyboardInterrupt


def test_an_interrupted_run_keeps_its_settings(tiny_phi, tmp_path):
    out = tmp_path / "run"
    args = train_script.parse(tiny_args(tiny_phi, out, "--optim", "paged_adamw_32bit"))
    with pytest.raises(KeyboardInterrupt):
        train_script.train(*args, callbacks=[Interrupt()])
    assert not (out / "adapter_model.safetensors").exists()
    config = yaml.safe_load((out / train_script.RESOLVED_CONFIG).read_text())
    assert config["model"]["load_in_4bit"] and config["script"]["data_file"] == str(SAMPLE_HEADLINES)
    assert config["training"]["optim"] == "adamw_torch"  # the CPU stand-in the code chose, as it ran


def test_the_adapter_records_how_its_base_was_quantized_and_what_training_computed_in(trained):
    machine = this_machine("cpu")  # the recipe's `precision: auto` and `--dtype auto`, decided for this CPU
    info = json.loads((trained / "finsent.json").read_text())
    assert info["base_quantization"] == {
        "load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
        "bnb_4bit_compute_dtype": machine.compute_dtype, "bnb_4bit_quant_storage": "uint8",
    }
    ran = {"autocast": machine.autocast, "compute_dtype": machine.compute_dtype, "hardware": machine.reason}
    assert info["training_precision"] == ran
    config = yaml.safe_load((trained / "training_config.yaml").read_text())
    assert config["precision"] == {**ran, "attention": None}
    assert (config["training"]["bf16"], config["training"]["fp16"]) == (machine.autocast == "bf16", False)


class StepCounter(TrainerCallback):
    steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1


def test_resume_continues_from_the_last_checkpoint(tiny_phi, tmp_path):
    out = tmp_path / "run"
    checkpoints = ["--save_strategy", "steps", "--save_steps", "1"]
    assert train_script.main(tiny_args(tiny_phi, out, *checkpoints)) == 0
    assert (out / "checkpoint-2").is_dir()

    counter = StepCounter()
    args = train_script.parse(tiny_args(tiny_phi, out, *checkpoints, "--max_steps", "4", "--resume"))
    trainer = train_script.train(*args, callbacks=[counter])
    assert trainer.state.global_step == 4 and counter.steps == 2  # steps 3 and 4 only
    assert (out / "checkpoint-4").is_dir()

    changed = tiny_args(tiny_phi, out, *checkpoints, "--max_steps", "6", "--resume", "--split_seed", "7")
    assert train_script.main(changed) == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--resume"], "holds no checkpoint-* folder to resume from"),
        (["--data_file", "no/such.csv"], "no/such.csv: no such file or directory"),
        (["--config", "no-such-recipe"], "no such recipe file; use one of corrections-embedded, cpu-embedded, default-embedded, phi2-qlora"),
        (["--train_size", "lots"], "--train_size 'lots': give a number of rows per label, or `all`"),
        (["--train_size", "60"], "'negative' has 50 distinct rows, the sizes need 70"),
        (["--eval_size", "0", "--eval_strategy", "epoch"], "--eval_size 0 leaves no eval set"),
        (["--test_size", "-1"], "--test_size must be 0 or more"),
        (["--temperature", "0"], "--temperature 0.0: give a number above 0"),
        (["--model_name_or_path", "/no/such/model"], "--model_name_or_path /no/such/model: cannot load it"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tiny_phi, tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    argv = tiny_args(tiny_phi, out, *extra)
    if extra[0] == "--config":
        argv = argv[2:]  # tiny_args starts with --config cpu-embedded
    assert train_script.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("error: ") and "\n" not in err
    assert "invalid configuration: --" not in err  # our own messages are not wrapped again
    assert not out.exists()


def test_refuses_to_overwrite_a_finished_run(tiny_phi, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_script.main(tiny_args(tiny_phi, out)) == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert train_script.main(tiny_args(tiny_phi, out)) == 2
    assert "already holds a run: pass --resume" in capsys.readouterr().err
    assert before == {p: p.stat().st_mtime_ns for p in out.rglob("*")}


def test_accelerate_launch_two_cpu_processes(tiny_phi, tmp_path):
    # --multi_gpu picks accelerate's torchrun launcher; without CUDA the processes join over gloo
    # (`--cpu` would start a single process). The recipe sets use_cpu; on a GPU machine accelerate
    # would still give each process a GPU of its own, so the GPUs are hidden, as README says.
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "train/train.py", *tiny_args(tiny_phi, out, "--per_device_train_batch_size", "2"),
    ]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "process 0 of 2" in done.stderr and "process 1 of 2" in done.stderr
    # the recipe's batch (2 here) stays the global batch: 1 row per process, on the CPU as use_cpu says
    assert "global batch 2 = 2 process(es) x 1 per device x 1 accumulation steps; base model on cpu" in done.stderr
    assert (out / "adapter_model.safetensors").is_file() and (out / "split" / "summary.json").is_file()


def test_compact_lm_head_on_cpu_scores_like_the_full_head(tiny_phi):
    """The TRL workaround changes which positions are scored, not the result (nor the gradient)."""
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from finsent.train.modeling import compact_lm_head_on_cpu

    model = AutoModelForCausalLM.from_pretrained(tiny_phi)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    ids = torch.randint(0, model.config.vocab_size, (3, 12), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[:, :9] = -100  # the prompt: only the last positions are the completion
    labels[2, 9:] = -100  # a row with no completion at all

    results = []
    try:
        for compact in (False, True):
            compact_lm_head_on_cpu(compact)
            model.zero_grad()
            out = model(input_ids=ids, labels=labels, fused_lm_head=True)
            (-out.log_probs.sum()).backward()
            results.append((out, model.model.layers[0].mlp.fc1.weight.grad.clone()))
    finally:
        compact_lm_head_on_cpu(True)
    (full, full_grad), (compact, compact_grad) = results
    for field in ("log_probs", "entropy", "is_top1"):
        assert torch.allclose(getattr(full, field).float(), getattr(compact, field).float(), atol=1e-5), field
    assert torch.allclose(full_grad, compact_grad, atol=1e-6)
    assert compact.log_probs[2].abs().sum() == 0


def test_the_run_and_its_checkpoints_record_what_the_adapter_needs(trained, tiny_phi):
    from finsent.space.adapter_info import read_info, weights_sha256
    from finsent.space.classifier import PROMPT_VERSION

    info = read_info(str(trained))
    counts = json.loads((trained / "split" / "summary.json").read_text())["counts"]["train"]
    assert info["prompt_version"] == PROMPT_VERSION and info["labels"] == list(LABELS)
    assert info["base_model"] == str(tiny_phi) and info["base_weights_sha256"] == weights_sha256(tiny_phi)
    assert info["train_label_counts"] == counts
    assert info["temperature"] == 1.0  # the default: scores as trained
    [checkpoint] = trained.glob("checkpoint-*")
    assert read_info(str(checkpoint)) == info  # a checkpoint loads and validates like the final adapter


def test_skip_malformed_trains_on_the_good_rows(tiny_phi, tmp_path):
    from conftest import SAMPLE_HEADLINES

    data = tmp_path / "with-a-bad-row.csv"
    data.write_bytes(SAMPLE_HEADLINES.read_bytes() + b"sideways,Kestrel Oyj moves sideways\n")
    out = tmp_path / "run"
    argv = [*tiny_args(tiny_phi, out), "--data_file", str(data), "--max_steps", "1"]
    assert train_script.main(argv) == 2 and not out.exists()  # rejected by default, nothing written
    assert train_script.main([*argv, "--skip_malformed", "true"]) == 0
    assert (out / "adapter_model.safetensors").is_file()
