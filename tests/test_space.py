"""The app as Hugging Face hosts it: ZeroGPU's rules, settings that fail clearly, and its MCP server."""

from __future__ import annotations

import asyncio
import json
import pickle
import subprocess
import sys

import pytest

from conftest import REPO, free_port
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


HEADLINES = ["Kestrel Oyj raises its full-year profit forecast", "Norvale Group to cut 450 jobs as orders slump",
             "Ferrow Bank will publish its interim report on 28 April"]


@pytest.fixture(scope="module")
def mcp_app(tiny_phi, evaluated):
    """The app launched with its MCP server (batch limit 3); yields its MCP URL and the service behind it."""
    settings = Settings(base_model=str(tiny_phi), adapter=str(evaluated), load_in_4bit="false", max_batch=3, mcp=True)
    service = Service(settings)
    app = build_app(settings, service)
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, mcp_server=True)
    try:
        yield f"http://127.0.0.1:{port}/gradio_api/mcp/", service
    finally:
        app.close()


def mcp(url: str, *calls: tuple[str, dict], progress: bool = False):
    """The tool list and each call's result, through the real MCP client (progress: ask for progress updates,
    which takes the Gradio MCP server's other way of answering)."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def on_progress(*_):
        pass

    async def session_calls():
        async with streamablehttp_client(url) as (read, write, _), ClientSession(read, write) as session:
            await session.initialize()
            tools = {tool.name: tool for tool in (await session.list_tools()).tools}
            results = [await session.call_tool(name, arguments, progress_callback=on_progress if progress else None)
                       for name, arguments in calls]
            return tools, results

    return asyncio.run(session_calls())


def data(result):
    """A tool's answer: one text part holding JSON (and structuredContent, where Gradio fills it, the same)."""
    assert not result.isError, result.content
    [part] = result.content
    payload = json.loads(part.text)
    assert result.structuredContent in (None, payload)  # Gradio 6.31 leaves it empty unless gr.tool(structured_output)
    return payload


def test_the_mcp_tools_are_the_four_data_tools_and_describe_themselves(mcp_app):
    tools, _ = mcp(mcp_app[0])
    assert set(tools) == {"classify_headline", "classify_headlines", "explain_headline", "sentiment_signal"}  # not the browser's events
    single, many = tools["classify_headline"], tools["classify_headlines"]
    assert single.description.startswith("Label the sentiment of one financial news headline")
    assert '"label"' in single.description and '"probabilities"' in single.description  # the answer's shape
    assert single.inputSchema["required"] == ["headline"]
    assert single.inputSchema["properties"]["headline"]["type"] == "string"
    assert "one financial news headline in English" in single.inputSchema["properties"]["headline"]["description"]
    assert many.description.startswith("Label the sentiment of many financial news headlines")
    assert '"text"' in many.description and "batch limit" in many.description
    assert many.inputSchema["properties"]["headlines"]["type"] == "array"
    assert many.inputSchema["properties"]["headlines"]["items"] == {"type": "string"}
    why = tools["explain_headline"]
    assert why.description.startswith("Say which words of a financial news headline drove its sentiment label")
    assert '"words"' in why.description and '"weight"' in why.description and "left out" in why.description
    assert why.inputSchema["required"] == ["headline"]


def test_classify_headline_answers_json_with_the_apps_probabilities(mcp_app):
    url, service = mcp_app
    _, [result] = mcp(url, ("classify_headline", {"headline": HEADLINES[0]}))
    answer = data(result)
    expected = service.classifier.predict_proba([HEADLINES[0]])[0]  # the UI's scorer, on the same model
    assert set(answer) == {"label", "probabilities"}  # no notice: nothing was cut
    assert list(answer["probabilities"]) == list(LABELS)
    assert [answer["probabilities"][label] for label in LABELS] == pytest.approx(expected, abs=1e-6)
    assert answer["label"] == LABELS[int(expected.argmax())]


def test_an_over_long_headline_comes_back_with_a_notice(mcp_app):
    _, [result] = mcp(mcp_app[0], ("classify_headline", {"headline": "Kestrel " * 1000}))
    answer = data(result)
    assert answer["notice"] == "The headline was too long; only its beginning was read."
    assert answer["label"] in LABELS and sum(answer["probabilities"].values()) == pytest.approx(1)


def test_classify_headlines_answers_a_row_per_headline_and_no_figure(mcp_app):
    url, service = mcp_app
    _, [result] = mcp(url, ("classify_headlines", {"headlines": HEADLINES}))
    rows = data(result)
    expected = service.classifier.predict_proba(HEADLINES)  # one batch, as the tool scores them
    assert [row["text"] for row in rows] == HEADLINES
    for row, probs in zip(rows, expected, strict=True):
        assert set(row) == {"text", "label", "probabilities"}
        assert [row["probabilities"][label] for label in LABELS] == pytest.approx(probs, abs=1e-6)
        assert row["label"] == LABELS[int(probs.argmax())]
    assert not any(word in result.content[0].text.lower() for word in ("plotly", "figure", "layout", ".csv"))


def test_explain_headline_answers_each_words_weight_from_one_batch_of_the_apps_scorer(mcp_app):
    url, service = mcp_app
    headline = "  Kessel Bank set aside another EUR 300 million for loan losses."  # offsets into the text as sent
    _, [result] = mcp(url, ("explain_headline", {"headline": headline}))
    answer = data(result)
    assert set(answer) == {"label", "probabilities", "words"}
    words = [w["word"] for w in answer["words"]]
    assert words == ["Kessel", "Bank", "set", "aside", "another", "EUR 300 million", "for", "loan", "losses."]
    assert all(headline[w["start"]:w["end"]] == w["word"] for w in answer["words"])
    variants = [headline] + [(headline[:w["start"]].strip() + " " + headline[w["end"]:].strip()).strip()
                             for w in answer["words"]]
    expected = service.classifier.predict_proba(variants, batch_size=len(variants))  # a plain batch, not packed
    label = LABELS.index(answer["label"])
    assert answer["label"] == LABELS[int(expected[0].argmax())]
    assert [answer["probabilities"][k] for k in LABELS] == pytest.approx(expected[0], abs=1e-4)
    assert [w["weight"] for w in answer["words"]] == pytest.approx(expected[0, label] - expected[1:, label], abs=1e-4)


def test_explain_headline_of_one_word_and_of_an_over_long_one(mcp_app):
    _, [one, long] = mcp(mcp_app[0], ("explain_headline", {"headline": "Profit"}),
                         ("explain_headline", {"headline": "Kestrel profit " * 200}))
    one, long = data(one), data(long)
    assert [w["word"] for w in one["words"]] == ["Profit"] and "notice" not in one
    assert long["notice"] == "The headline was too long; only its beginning was read."
    assert 1 < len(long["words"]) <= 40  # neighbouring words explained together: one call of at most 41 texts
    assert long["words"][0]["start"] == 0 and long["words"][-1]["end"] <= 2000


def test_sentiment_signal_answers_a_row_per_ticker_and_period_with_its_interval(mcp_app):
    url, service = mcp_app
    items = [{"text": HEADLINES[0], "date": "2026-01-05T09:30:00+02:00", "ticker": "KSTR"},
             {"text": HEADLINES[1], "date": "2026-01-05T16:00:00+02:00", "ticker": "KSTR"},
             {"text": HEADLINES[2], "date": "2026-01-06T08:00:00Z", "ticker": "FRRW"}]
    tools, [result] = mcp(url, ("sentiment_signal", {"items": items, "freq": "D"}))
    tool = tools["sentiment_signal"]
    assert tool.description.startswith("Turn dated financial news headlines into a sentiment signal")
    assert "score_low" in tool.description and "bullishness" in tool.description
    assert tool.inputSchema["properties"]["items"]["type"] == "array" and tool.inputSchema["required"] == ["items"]
    rows = data(result)
    probs = service.classifier.predict_proba(HEADLINES)
    scores = probs[:, LABELS.index("positive")] - probs[:, LABELS.index("negative")]
    assert [(r["ticker"], r["period"], r["count"]) for r in rows] == [("FRRW", "2026-01-06", 1), ("KSTR", "2026-01-05", 2)]
    assert [rows[0]["score"], rows[1]["score"]] == pytest.approx([scores[2], scores[:2].mean()], abs=1e-4)
    assert rows[0]["score_low"] is None and rows[1]["score_low"] <= rows[1]["score"] <= rows[1]["score_high"]
    _, refused = mcp(url, ("sentiment_signal", {"items": []}),
                     ("sentiment_signal", {"items": [{"text": HEADLINES[0]}]}),
                     ("sentiment_signal", {"items": [{"text": HEADLINES[0], "date": "next Monday"}]}),
                     ("sentiment_signal", {"items": items, "freq": "Q"}))
    assert all(result.isError for result in refused)
    assert [result.content[0].text for result in refused] == [
        'Give at least one item, {"text": ..., "date": ...}.',
        "Item 1 of 1 has no date; give each item a text and a date.",
        "Item 1: date 'next Monday' is not an ISO 8601 date; write ISO 8601 dates, such as 2026-01-05, "
        "2026-01-05 09:30 or 2026-01-05T09:30:00+02:00",
        "freq 'Q': use D (day), W (week from Monday) or M (month).",
    ]


@pytest.mark.parametrize("progress", [False, True], ids=["plain", "with-progress"])
def test_bad_input_is_a_tool_error_with_one_line(mcp_app, progress):
    """Gradio's MCP server answers a call two ways (with progress updates or without); the message is the same."""
    _, results = mcp(mcp_app[0],
                     ("classify_headline", {"headline": "   "}),
                     ("classify_headlines", {"headlines": []}),
                     ("classify_headlines", {"headlines": [HEADLINES[0], ""]}),
                     ("classify_headlines", {"headlines": HEADLINES + ["Tundra Robotics wins an order"]}),
                     ("explain_headline", {"headline": " \n "}),
                     progress=progress)
    assert all(result.isError for result in results)
    assert [result.content[0].text for result in results] == [
        "Type a headline first.",
        "Give at least one headline.",
        "Headline 2 of 2 is empty; send only headlines with text.",
        "At most 3 headlines a call; got 4. Send them in smaller batches.",
        "Type a headline first.",
    ]


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
