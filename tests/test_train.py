"""train/train.py end to end on the tiny random Phi, 4-bit on the CPU."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, SAMPLE_HEADLINES
from finsent.train import train as train_script
from finsent.train.modeling import find_lora_targets

RECIPES = sorted((REPO / "train" / "configs").glob("*.yaml"))


def tiny_args(model_dir, output_dir, *extra):
    return [
        "--config", "cpu-embedded",
        "--model_name_or_path", str(model_dir),
        "--data_file", str(SAMPLE_HEADLINES),
        "--train_size", "20", "--test_size", "10", "--eval_size", "4",
        "--output_dir", str(output_dir),
        "--load_in_4bit", "true", "--use_bnb_nested_quant", "true", "--dtype", "bfloat16",
        "--max_steps", "2", "--per_device_train_batch_size", "4", "--logging_steps", "1",
        "--learning_rate", "1e-2", "--save_strategy", "no", "--eval_strategy", "no",
        *extra,
    ]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_parses(recipe):
    # --use_cpu: the GPU recipe's bf16 check needs a GPU unless training is on the CPU
    script, model, training = train_script.parse(
        ["--config", str(recipe), "--data_file", "x.csv", "--output_dir", "/tmp/unused", "--use_cpu", "true"]
    )
    assert model.model_name_or_path and model.use_peft
    assert training.completion_only_loss and "tensorboard" in training.report_to
    assert script.sizes().test == 300


def test_help_runs():
    out = subprocess.run([sys.executable, "train/train.py", "--help"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "--data_file" in out.stdout and "--lora_r" in out.stdout and "--resume" in out.stdout


def test_find_lora_targets_on_phi_never_the_head(tiny_phi):
    from transformers import AutoModelForCausalLM

    targets = find_lora_targets(AutoModelForCausalLM.from_pretrained(tiny_phi))
    assert targets.num_layers == 2
    assert targets.module_names == ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"]


def test_main_writes_a_loadable_adapter_and_tensorboard_logs(tiny_phi, tmp_path):
    from peft import PeftModel
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from transformers import AutoModelForCausalLM

    out = tmp_path / "trained-model"
    assert train_script.main(tiny_args(tiny_phi, out)) == 0

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
    assert len(losses) == 2 and all(v > 0 for v in losses)
    assert "train/learning_rate" in events.Tags()["scalars"]


def test_lora_weights_change_and_base_weights_do_not(tiny_phi, tmp_path):
    from transformers import AutoModelForCausalLM

    args = train_script.parse(tiny_args(tiny_phi, tmp_path / "run"))
    trainer = train_script.train(*args)
    # PEFT wraps each adapted layer: base_model.model.<name> and <layer>.base_layer.weight
    trained = {n.removeprefix("base_model.model.").replace(".base_layer", ""): p
               for n, p in trainer.model.named_parameters()}

    fresh = train_script.get_model(args[1])  # same 4-bit load, no training
    for name, param in fresh.named_parameters():
        assert torch.equal(trained[name].data.cpu(), param.data.cpu()), name
    lora_b = [p for n, p in trained.items() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)
