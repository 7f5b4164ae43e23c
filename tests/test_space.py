"""The app as Hugging Face hosts it: ZeroGPU's rules, settings that fail clearly, and its MCP server."""

from __future__ import annotations

import asyncio
import json
import pickle
import subprocess
import sys

import pytest

from conftest import REPO
from finsent.space import app as app_module
from finsent.space.app import Service, Settings, SettingsError, build_app
from finsent.space.classifier import LABELS


def test_the_real_spaces_package_is_here_and_reports_no_zero_gpu():
    assert app_module.spaces is not None and app_module.spaces.config.Config.zero_gpu is False
    assert app_module.ON_ZERO_GPU is False and app_module.SPACE_SERVICE is None  # nothing loaded at import here


def test_the_gpu_function_and_its_arguments_pickle(tiny_phi, evaluated):
    """ZeroGPU pickles the decorated function's arguments to its GPU worker: a number and the texts, never the
    service (its lock and model do not pickle)."""
    service = Service(Settings(base_model=str(tiny_phi), adapter=str(evaluated), load_in_4bit="false"))
    args = (service.id, ["Kestrel Oyj lifts its outlook", "Norvale cuts 450 jobs"])
    assert pickle.loads(pickle.dumps(app_module.predict_probabilities)) is app_module.predict_probabilities
    assert pickle.loads(pickle.dumps(args)) == args
    with pytest.raises(TypeError):
        pickle.dumps(service)  # why the service itself is not the argument
    probs = app_module.predict_probabilities(*pickle.loads(pickle.dumps(args)))
    assert probs.shape == (2, len(LABELS))


def test_the_gpu_allowance_grows_with_the_batch():
    one, full = app_module.gpu_seconds(0, ["x"]), app_module.gpu_seconds(0, ["x"] * 200)
    assert 0 < one < full <= 120


def test_on_zero_gpu_the_model_loads_at_import_on_cuda(tmp_path):
    """With the spaces package reporting ZeroGPU, importing the app loads the model onto `cuda` (ZeroGPU's rule) and
    decorates the module-level GPU function with a batch-sized duration. No GPU here, so load_classifier and
    spaces.GPU (whose ZeroGPU branch patches a CUDA torch) are replaced by recorders."""
    code = """
import json, sys
import spaces, spaces.config
spaces.config.Config.zero_gpu = True
decorated = []
spaces.GPU = lambda **kwargs: (lambda fn: decorated.append((fn.__name__, kwargs["duration"].__name__)) or fn)
import finsent.space.classifier as classifier
calls = []
classifier.load_classifier = lambda *args, **kwargs: calls.append(kwargs) or "loaded"
import finsent.space.app as app
print(json.dumps({"calls": calls, "loaded": app.SPACE_SERVICE._classifier == "loaded", "decorated": decorated}))
"""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FINSENT_ADAPTER": "none"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded"] and [call["device"] for call in result["calls"]] == ["cuda"]
    assert result["decorated"] == [["predict_probabilities", "gpu_seconds"]]


@pytest.mark.parametrize("value, expected", [
    ("True", "true"), ("1", "true"), ("YES", "true"), ("false", "false"), ("0", "false"), ("No", "false"),
    ("auto", "auto"), (" Auto ", "auto"),
])
def test_4bit_accepts_any_spelling(monkeypatch, value, expected):
    monkeypatch.setenv("FINSENT_4BIT", value)
    assert Settings.from_env().load_in_4bit == expected


@pytest.mark.parametrize("variable, value, message", [
    ("FINSENT_4BIT", "maybe", "FINSENT_4BIT='maybe': use one of 0, 1, auto, false, no, true, yes (any case)"),
    ("FINSENT_MAX_BATCH", "lots", "FINSENT_MAX_BATCH='lots': give a whole number of 1 or more"),
    ("FINSENT_MAX_BATCH", "0", "FINSENT_MAX_BATCH='0': give a whole number of 1 or more"),
    ("FINSENT_CONCURRENCY", "2.5", "FINSENT_CONCURRENCY='2.5': give a whole number of 1 or more"),
    ("FINSENT_MCP", "perhaps", "FINSENT_MCP='perhaps': use one of 0, 1, false, no, true, yes (any case)"),
])
def test_a_bad_variable_is_named_with_the_values_it_takes(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as err:
        Settings.from_env()
    assert str(err.value) == message


def test_flags_win_and_a_bad_flag_stops_the_app_with_one_line(monkeypatch):
    monkeypatch.setenv("FINSENT_MAX_BATCH", "7")
    assert Settings.from_env(max_batch="9").max_batch == 9
    with pytest.raises(SystemExit) as stop:
        app_module.main(["--max_batch", "many"])
    assert str(stop.value) == "error: --max_batch='many': give a whole number of 1 or more"


def test_mcp_is_on_by_default_in_a_space_only(monkeypatch):
    monkeypatch.delenv("FINSENT_MCP", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert Settings.from_env().mcp is False
    monkeypatch.setenv("SPACE_ID", "tester/finsent-demo")  # set by Hugging Face in every Space
    assert Settings.from_env().mcp is True
    monkeypatch.setenv("FINSENT_MCP", "false")
    assert Settings.from_env().mcp is False


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _mcp_session(url: str, headline: str):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async with streamablehttp_client(url) as (read, write, _), ClientSession(read, write) as session:
        await session.initialize()
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        result = await session.call_tool("classify_headline", {"headline": headline})
        return tools, result


def test_the_mcp_server_lists_self_describing_tools_and_classifies(tiny_phi, evaluated):
    settings = Settings(base_model=str(tiny_phi), adapter=str(evaluated), load_in_4bit="false", mcp=True)
    app = build_app(settings)
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, mcp_server=True)
    try:
        tools, result = asyncio.run(_mcp_session(f"http://127.0.0.1:{port}/gradio_api/mcp/",
                                                 "Kestrel Oyj raises its full-year profit forecast"))
    finally:
        app.close()
    assert {"classify_headline", "classify_headlines"} <= set(tools)
    single = tools["classify_headline"]
    assert single.description.startswith("Label the sentiment of one financial news headline")
    assert "headline" in single.inputSchema["properties"]
    assert "one financial news headline in English" in json.dumps(single.inputSchema)
    assert not result.isError
    text = " ".join(part.text for part in result.content if getattr(part, "text", None))
    assert all(label in text for label in LABELS), text


def test_eval_results_are_read_once_per_service_not_per_page_view(tiny_phi, evaluated, monkeypatch):
    service = Service(Settings(base_model=str(tiny_phi), adapter=str(evaluated), load_in_4bit="false"))
    reads = []
    original = Service.eval_results
    monkeypatch.setattr(Service, "eval_results", lambda self: reads.append(1) or original(self))
    for _ in range(3):  # three page views
        text, figure = service.about()
    assert len(reads) == 1 and "Test accuracy" in text and figure is not None
    low, high = json.loads((evaluated / "eval_results.json").read_text())["runs"]["fine_tuned"]["intervals"]["accuracy"]
    assert f"(95 % interval {low:.1%}–{high:.1%})" in text


def test_result_csvs_live_in_the_services_folder_and_old_ones_go(tmp_path, monkeypatch):
    old = tmp_path / "results-old.csv"
    old.write_text("text,label\n")
    monkeypatch.setattr(app_module.time, "time", lambda: old.stat().st_mtime + app_module.CSV_MAX_AGE_S + 1)
    path = app_module.write_csv([["Kestrel up", "positive", 0.1, 0.2, 0.7]], str(tmp_path))
    assert not old.exists() and [p.name for p in tmp_path.iterdir()] == [path.rsplit("/", 1)[-1]]
    assert app_module.Path(path).read_text().splitlines()[0] == "text,label,negative,neutral,positive"
