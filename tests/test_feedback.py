"""Corrections (space/feedback.py): checked, on disk before "saved", pushed to a Hub dataset as new files only;
then the app's API and MCP tool, and a SIGKILL right after "saved"."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from test_space import data, mcp

from conftest import REPO, free_port
from finsent.space.app import Service, Settings, SettingsError, build_app
from finsent.space.feedback import (
    FILE,
    MAX_CHARS,
    PER_MINUTE,
    FeedbackError,
    FeedbackStore,
    HubPush,
    read_corrections,
)

PROBS = {"negative": 0.2, "neutral": 0.1, "positive": 0.7}
MODEL = {"adapter_sha256": "ab" * 32, "prompt_version": 2}
HEADLINE = "Kessel Bank set aside another EUR 300 million for loan losses"
DATASET = "user/finsent-corrections"


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self):
        return self.now


def lines(folder):
    return [json.loads(line) for line in (folder / FILE).read_text(encoding="utf-8").splitlines()]


def test_a_correction_is_one_json_line_with_what_the_notice_says_and_no_session(tmp_path):
    store = FeedbackStore(tmp_path, clock=Clock())
    assert store.save("session-secret", f"  {HEADLINE} ", "Negative", PROBS, MODEL) is True
    [row] = lines(tmp_path)
    assert row == {"text": HEADLINE, "label": "negative", "model_label": "positive", "probabilities": PROBS,
                   "adapter_sha256": "ab" * 32, "prompt_version": 2, "time": "2027-01-15T08:00:00Z"}
    assert "session-secret" not in (tmp_path / FILE).read_text()


@pytest.mark.parametrize("text, label, message", [
    ("", "negative", "empty"),
    ("   ", "negative", "empty"),
    (None, "negative", "empty"),
    ("x" * (MAX_CHARS + 1), "negative", f"at most {MAX_CHARS}"),
    (HEADLINE, "bullish", "use one of negative, neutral, positive"),
    (HEADLINE, "", "use one of"),
])
def test_bad_corrections_are_refused_and_nothing_is_written(tmp_path, text, label, message):
    store = FeedbackStore(tmp_path)
    with pytest.raises(FeedbackError, match=message):
        store.save("s", text, label, PROBS, MODEL)
    assert not (tmp_path / FILE).exists() or (tmp_path / FILE).read_text() == ""


def test_the_longest_headline_taken_is_max_chars(tmp_path):
    assert FeedbackStore(tmp_path).save("s", "x" * MAX_CHARS, "neutral", PROBS, MODEL) is True


def test_a_session_gets_its_rate_and_its_repeats_are_dropped(tmp_path):
    clock = Clock()
    store = FeedbackStore(tmp_path, clock=clock)
    assert store.save("a", HEADLINE, "negative", PROBS, MODEL) is True
    assert store.save("a", HEADLINE.upper() + "  ", "negative", PROBS, MODEL) is False  # the same text, as compared
    assert store.save("a", HEADLINE, "neutral", PROBS, MODEL) is True  # another label is another correction
    assert store.save("b", HEADLINE, "negative", PROBS, MODEL) is True  # another session's own
    for i in range(PER_MINUTE - 2):
        clock.now += 1
        assert store.save("a", f"Headline {i}", "neutral", PROBS, MODEL) is True
    with pytest.raises(FeedbackError, match=f"At most {PER_MINUTE} corrections a minute"):
        store.save("a", "One too many", "neutral", PROBS, MODEL)
    assert store.save("b", "Another session is not limited by a's", "neutral", PROBS, MODEL) is True
    clock.now += 60  # a's first two saves are a minute old now
    assert store.save("a", "One too many", "neutral", PROBS, MODEL) is True
    assert len(lines(tmp_path)) == 3 + (PER_MINUTE - 2) + 2


def test_a_line_torn_by_a_crash_is_dropped_when_the_store_opens(tmp_path):
    store = FeedbackStore(tmp_path)
    store.save("s", HEADLINE, "negative", PROBS, MODEL)
    with open(tmp_path / FILE, "ab") as handle:
        handle.write(b'{"text": "half a li')  # killed mid-write: never acknowledged
    store = FeedbackStore(tmp_path)
    store.save("s", "Caldera Mining raised its production guidance", "positive", PROBS, MODEL)
    assert [row["label"] for row in lines(tmp_path)] == ["negative", "positive"]


def test_read_corrections_keeps_each_headlines_latest_label_and_names_a_bad_line(tmp_path):
    clock = Clock()
    store = FeedbackStore(tmp_path / "a", clock=clock)
    store.save("s", HEADLINE, "positive", PROBS, MODEL)
    clock.now += 5
    store.save("s", HEADLINE.lower(), "negative", PROBS, MODEL)  # the same headline, corrected again
    store.save("s", "Orvik Foods will hold its AGM on 3 May", "neutral", PROBS, MODEL)
    rows, record = read_corrections(str(tmp_path / "a"))
    assert sorted(rows) == [("negative", HEADLINE.lower()), ("neutral", "Orvik Foods will hold its AGM on 3 May")]
    assert record["rows"] == 2 and record["superseded"] == 1 and record["counts"]["negative"] == 1
    assert read_corrections(str(tmp_path / "a" / FILE))[1]["sha256"] == record["sha256"]
    (tmp_path / "bad.jsonl").write_text('{"text": "ok", "label": "neutral"}\n{"text": "no label"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not a correction"):
        read_corrections(str(tmp_path / "bad.jsonl"))
    with pytest.raises(ValueError, match="no such corrections file"):
        read_corrections(str(tmp_path / "missing.jsonl"))


def test_the_hub_dataset_gains_a_new_file_per_push_and_never_a_row_twice(local_hub, tmp_path):
    store = FeedbackStore(tmp_path)
    push = HubPush(tmp_path, DATASET, every=60)  # pushes at start, then in an hour: the test pushes itself
    while not hasattr(push, "last_future"):
        time.sleep(0.05)
    assert push.last_future.result(timeout=60) is None  # nothing to push yet
    store.save("s", HEADLINE, "negative", PROBS, MODEL)
    store.save("s", "Orvik Foods will hold its AGM on 3 May", "neutral", PROBS, MODEL)
    first = push.push_to_hub()
    assert push.push_to_hub() is None  # nothing new: no commit
    store.save("s", "Caldera Mining raised its production guidance", "positive", PROBS, MODEL)
    state = json.loads((tmp_path / "pushed.json").read_text())
    (tmp_path / "pushed.json").write_text(json.dumps(state))  # as it was before the push below...
    push.push_to_hub()
    (tmp_path / "pushed.json").write_text(json.dumps(state))  # ...which then "crashed" before recording itself
    push.push_to_hub()  # done again: the same file name, the same bytes
    files = pushed(local_hub)
    assert sorted(files) == [f"data/{state['id']}-{0:012d}.jsonl", f"data/{state['id']}-{state['pushed'][DATASET]:012d}.jsonl"]
    uploaded = [json.loads(line) for name in sorted(files) for line in files[name].decode().splitlines()]
    assert uploaded == lines(tmp_path) and first is not None
    push.stop()
    rows, record = read_corrections(DATASET)  # what `finsent train --corrections USER/NAME` reads
    assert record["rows"] == 3 and ("positive", "Caldera Mining raised its production guidance") in rows


@pytest.fixture(scope="module")
def feedback_app(tiny_phi, evaluated, tmp_path_factory):
    """The app with corrections on and its MCP server; yields (URL, feedback folder, service)."""
    folder = tmp_path_factory.mktemp("feedback")
    settings = Settings(base_model=str(tiny_phi), adapter=str(evaluated), load_in_4bit="false", mcp=True,
                        feedback_dir=str(folder))
    service = Service(settings)
    app = build_app(settings, service)
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, mcp_server=True)
    try:
        yield f"http://127.0.0.1:{port}/", folder, service
    finally:
        app.close()


def test_a_correction_through_the_api_is_saved_with_the_models_own_answer(feedback_app):
    from gradio_client import Client

    url, folder, service = feedback_app
    client = Client(url, verbose=False, analytics_enabled=False)
    answer = json.loads(client.predict("Tundra Mills narrows its quarterly loss", "positive",
                                       api_name="/correct_headline"))
    model = service.classify("Tundra Mills narrows its quarterly loss")[0]
    assert answer["saved"] is True and answer["label"] == "positive"
    assert answer["probabilities"] == pytest.approx(model, abs=1e-6)
    row = next(r for r in lines(folder) if r["text"] == "Tundra Mills narrows its quarterly loss")
    assert row["model_label"] == max(model, key=model.get) and row["prompt_version"] == 2
    assert len(row["adapter_sha256"]) == 64
    again = json.loads(client.predict("Tundra Mills narrows its quarterly loss", "positive",
                                      api_name="/correct_headline"))
    assert again["saved"] is False  # this client's session sent it already
    with pytest.raises(Exception, match="use one of negative, neutral, positive"):
        client.predict("Tundra Mills narrows its quarterly loss", "up", api_name="/correct_headline")


def test_correct_headline_is_one_more_mcp_tool_with_tool_errors(feedback_app):
    url, folder, _ = feedback_app
    tools, [good, repeat, empty, unknown] = mcp(
        url + "gradio_api/mcp/",
        ("correct_headline", {"headline": "Orvik Foods writes down its Polish unit", "label": "negative"}),
        ("correct_headline", {"headline": "Orvik Foods writes down its Polish unit", "label": "negative"}),
        ("correct_headline", {"headline": " ", "label": "negative"}),
        ("correct_headline", {"headline": "Orvik Foods writes down its Polish unit", "label": "sell"}))
    assert set(tools) == {"classify_headline", "classify_headlines", "explain_headline", "sentiment_signal",
                          "correct_headline"}
    tool = tools["correct_headline"]
    assert tool.description.startswith("Record the right sentiment label for a financial news headline")
    assert tool.inputSchema["required"] == ["headline", "label"] and "request" not in tool.inputSchema["properties"]
    assert data(good)["saved"] is True and data(good)["label"] == "negative"
    assert data(repeat)["saved"] is False  # one MCP session
    assert empty.isError and "empty" in empty.content[0].text
    assert unknown.isError and "use one of negative, neutral, positive" in unknown.content[0].text
    assert sum(r["text"] == "Orvik Foods writes down its Polish unit" for r in lines(folder)) == 1


def test_without_feedback_there_is_no_correction_tool_and_the_service_refuses(tiny_phi, evaluated):
    settings = Settings(base_model=str(tiny_phi), adapter=str(evaluated), load_in_4bit="false")
    with pytest.raises(FeedbackError, match="Corrections are off"):
        Service(settings).correct("s", HEADLINE, "negative")
    names = {event.get("api_name") for event in build_app(settings).config["dependencies"]}
    assert "explain_headline" in names and "correct_headline" not in names


def test_feedback_settings(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # a repo alone keeps its corrections in ./feedback first
    monkeypatch.delenv("FINSENT_FEEDBACK_DIR", raising=False)
    monkeypatch.delenv("FINSENT_FEEDBACK_REPO", raising=False)
    assert Settings.from_env().feedback_dir is None  # off unless the owner says so
    monkeypatch.setenv("FINSENT_FEEDBACK_DIR", str(tmp_path / "new" / "folder"))
    assert Settings.from_env().feedback_dir == str(tmp_path / "new" / "folder") and (tmp_path / "new").is_dir()
    assert Settings.from_env(feedback=str(tmp_path / "flag")).feedback_dir == str(tmp_path / "flag")
    monkeypatch.setenv("FINSENT_FEEDBACK_REPO", "no-slash")
    with pytest.raises(SettingsError, match="FINSENT_FEEDBACK_REPO='no-slash': give a Hub dataset id, USER/NAME"):
        Settings.from_env()
    (tmp_path / "file").write_text("")
    with pytest.raises(SettingsError, match="cannot make this folder"):
        Settings.from_env(feedback=str(tmp_path / "file" / "sub"), feedback_repo="u/n")
    monkeypatch.delenv("FINSENT_FEEDBACK_DIR")
    assert Settings.from_env(feedback_repo="u/n").feedback_dir == "feedback" and (tmp_path / "feedback").is_dir()


def pushed(hub) -> dict[str, bytes]:
    """The dataset's data/ files on the local Hub; none before the app has created it."""
    if f"dataset/{DATASET}" not in hub.repos():
        return {}
    return {name: body for name, body in hub.files(DATASET, "dataset").items() if name.startswith("data/")}


def start_app(tiny_phi, adapter, port, *flags, env=None):
    command = [sys.executable, "-m", "finsent.space.app", "--base_model", str(tiny_phi), "--adapter", str(adapter),
               "--load_in_4bit", "false", "--port", str(port), *flags]
    return subprocess.Popen(command, cwd=REPO, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(process, port):
    from gradio_client import Client

    deadline = time.time() + 180
    while time.time() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            return Client(f"http://127.0.0.1:{port}/", verbose=False, analytics_enabled=False)
        except Exception:
            time.sleep(0.5)
    raise TimeoutError("the app did not start")


def test_a_correction_survives_sigkill_right_after_saved_and_reaches_the_hub_on_restart(
        tiny_phi, evaluated, tmp_path, local_hub):
    folder, port = tmp_path / "feedback", free_port()
    app = start_app(tiny_phi, evaluated, port, "--feedback", str(folder))
    try:
        client = wait_for(app, port)
        answer = json.loads(client.predict(HEADLINE, "negative", api_name="/correct_headline"))
        app.send_signal(signal.SIGKILL)  # no exit handler runs: only what was on disk at "saved" is left
        app.wait(timeout=30)
    finally:
        app.kill()
    assert answer["saved"] is True and [row["text"] for row in lines(folder)] == [HEADLINE]
    env = {"HF_ENDPOINT": os.environ["HF_ENDPOINT"], "HF_TOKEN": os.environ["HF_TOKEN"], "HF_HUB_DISABLE_XET": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HOME": str(tmp_path / "hf-home")}
    port = free_port()
    app = start_app(tiny_phi, evaluated, port, "--feedback", str(folder), "--feedback_repo", DATASET, env=env)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not pushed(local_hub):
            assert app.poll() is None, app.stdout.read()
            time.sleep(0.5)
    finally:
        app.terminate()
        output = app.communicate(timeout=60)[0]
    [body] = pushed(local_hub).values()
    assert [json.loads(line)["text"] for line in body.decode().splitlines()] == [HEADLINE]
    assert os.environ["HF_TOKEN"] not in output  # no token in any log


def test_a_hub_dataset_the_token_cannot_write_stops_the_app_at_start_in_one_line(local_hub, tmp_path, monkeypatch,
                                                                                   capsys):
    from finsent.space import app as app_module

    monkeypatch.setenv("HF_TOKEN", "hf_not_a_token_of_this_hub")
    with pytest.raises(SystemExit) as stop:
        app_module.main(["--adapter", "none", "--feedback", str(tmp_path / "fb"), "--feedback_repo", DATASET])
    message = str(stop.value)
    assert message.startswith("error: corrections cannot start (") and "HF_TOKEN secret" in message
    assert "\n" not in message and "hf_not_a_token_of_this_hub" not in message + capsys.readouterr().out
    assert f"dataset/{DATASET}" not in local_hub.repos()
