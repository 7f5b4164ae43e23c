"""The Gradio app: its functions on the tiny Phi + adapter, then the app itself through gradio_client."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_default_adapter import CLEAR, needs_embedded

from conftest import REPO, free_port, wait_until
from finsent.space.app import DEFAULT_ADAPTER, MAX_QUEUED_BATCH, Service, Settings, build_app
from finsent.space.classifier import LABELS


@pytest.fixture(scope="module")
def service(tiny_phi, evaluated):
    return Service(Settings(base_model=str(tiny_phi), adapter=str(evaluated), load_in_4bit="false", max_batch=5))


def test_classify_one_headline(service):
    probs, notice = service.classify("  Kestrel Oyj lifts its outlook ")
    assert set(probs) == set(LABELS) and abs(sum(probs.values()) - 1) < 1e-6 and notice == ""


@pytest.mark.parametrize("text", ["", "   \n "])
def test_empty_text_gets_a_message(service, text):
    assert service.classify(text) == (None, "Type a headline first.")


def test_queued_requests_are_scored_together(service):
    labels, notices = service.classify_many(["Kestrel up", "", "Norvale down"])
    assert labels[1] is None and notices == ["", "Type a headline first.", ""]
    alone = service.classify("Kestrel up")[0]
    assert all(abs(labels[0][k] - alone[k]) < 1e-2 for k in LABELS)  # padding beside another row: bf16 noise only


def test_an_over_long_headline_is_cut_with_a_notice(service):
    probs, notice = service.classify("Kestrel " * 1000)
    assert set(probs) == set(LABELS) and "too long" in notice


def test_batch_from_lines_caps_the_batch_and_writes_a_csv(service):
    lines = "\n".join(f"Norvale headline {i}" for i in range(7)) + "\n\n"
    rows, chart, csv_path, notice = service.classify_batch(lines, None)
    assert len(rows) == 5 and "first 5 of 7" in notice
    assert all(row[1] in LABELS and abs(sum(row[2:]) - 1) < 1e-3 for row in rows)
    assert sum(chart.data[0].y) == 5
    with open(csv_path, encoding="utf-8") as f:
        assert f.readline().strip() == "text,label,negative,neutral,positive" and len(f.readlines()) == 5


@pytest.mark.parametrize("content, expected", [
    (b"id,text\n1,Kestrel up\n2,Norvale down\n", 2),
    (b"\xef\xbb\xbfheadline\nKestrel up\n", 1),  # a BOM and another column name
    (b"Kestrel up\nNorvale down\nFerrow flat\n", 3),  # one column, no header
])
def test_batch_from_a_csv(service, tmp_path, content, expected):
    path = tmp_path / "in.csv"
    path.write_bytes(content)
    rows, _, _, notice = service.classify_batch("", str(path))
    assert len(rows) == expected and notice == ""


@pytest.mark.parametrize("content, message", [
    (b"id,score\n1,2\n", "name the headline column `text`"),
    (b"\xff\xfeK\x00e\x00", "not UTF-8 text"),
    (b"text\nKestrel\x00 up\n", "not text"),
    (b"", "Paste headlines"),
])
def test_bad_csv_gets_a_message(service, tmp_path, content, message):
    path = tmp_path / "in.csv"
    path.write_bytes(content)
    rows, chart, csv_path, notice = service.classify_batch("", str(path))
    assert rows == [] and chart is None and csv_path is None and message in notice


def test_about_shows_the_evaluation(service, evaluated):
    text, figure = service.about()
    accuracy = json.loads((evaluated / "eval_results.json").read_text())["runs"]["fine_tuned"]["metrics"]["accuracy"]
    assert f"{accuracy:.1%}" in text and "before fine-tuning" in text and figure.data[0].type == "heatmap"


def test_the_base_model_defaults_to_the_adapters_own(evaluated, tiny_phi):
    assert Service(Settings(adapter=str(evaluated))).base_model == str(tiny_phi)
    assert Service(Settings()).base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_the_base_alone_only_when_asked_and_then_the_page_says_it_is_not_fine_tuned(tiny_phi, monkeypatch):
    service = Service(Settings(base_model=str(tiny_phi), adapter="none", load_in_4bit="false"))
    text, figure = service.about()
    assert "not fine-tuned" in text and "--adapter none" in text and figure is None
    assert "not fine-tuned" in service.status()
    monkeypatch.setenv("FINSENT_ADAPTER", "none")
    assert Service(Settings.from_env()).adapter is None


def test_by_default_the_shipped_adapter(monkeypatch):
    monkeypatch.delenv("FINSENT_ADAPTER", raising=False)
    service = Service(Settings.from_env())
    assert service.adapter == str(DEFAULT_ADAPTER) and "default adapter" in service.describe()
    assert "not fine-tuned" not in service.describe()


def test_the_app_through_gradio_client(tiny_phi, evaluated):
    from gradio_client import Client

    app = build_app(Settings(base_model=str(tiny_phi), adapter=str(evaluated), load_in_4bit="false", max_batch=3))
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, analytics_enabled=False)
        label, notice = client.predict("Kestrel Oyj lifts its outlook", api_name="/classify")
        assert label["label"] in LABELS and {c["label"] for c in label["confidences"]} == set(LABELS)
        assert client.predict("   ", api_name="/classify")[1] == "Type a headline first."
        table, _, csv_file, notice = client.predict("a up\nb down\nc flat\nd more", None, api_name="/classify_batch")
        assert len(table["data"]) == 3 and "first 3 of 4" in notice and csv_file.endswith(".csv")
        empty = client.predict("", None, api_name="/classify_batch")
        assert "Paste headlines" in empty[3]
    finally:
        app.close()


def test_queued_requests_reach_the_model_together(tiny_phi, evaluated):
    """On the launched app, while the model scores one request, 20 more queue; then Gradio's queue hands them to
    the model in batches of at most MAX_QUEUED_BATCH: exactly 1, 16, 4 texts in three calls, each answer the
    model's for its own headline (test_queued_requests_are_scored_together checks what one batched call returns)."""
    import threading

    from gradio_client import Client
    from gradio_client.utils import Status

    settings = Settings(base_model=str(tiny_phi), adapter=str(evaluated), load_in_4bit="false")
    service = Service(settings)
    calls, predict, release = [], service.predict, threading.Event()

    def held(texts):  # the first call waits until the others have queued
        calls.append(list(texts))
        assert release.wait(timeout=120)
        return predict(texts)

    service.predict = held
    app = build_app(settings, service)
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, analytics_enabled=False)
        headlines = [f"Kestrel Oyj headline {i}" for i in range(21)]
        first = client.submit(headlines[0], api_name="/classify")
        wait_until(lambda: calls)
        queued = [client.submit(text, api_name="/classify") for text in headlines[1:]]
        wait_until(lambda: all(job.status().code == Status.IN_QUEUE for job in queued))
        release.set()
        answers = [job.result(timeout=120) for job in [first, *queued]]
    finally:
        release.set()
        app.close()
    assert MAX_QUEUED_BATCH == 16 and [len(call) for call in calls] == [1, 16, 4], calls
    assert calls[0] == headlines[:1] and sorted(calls[1] + calls[2]) == sorted(headlines[1:])  # in arrival order
    expected = [LABELS[row.argmax()] for row in predict(headlines)]
    assert [label["label"] for label, _ in answers] == expected


@pytest.mark.slow
@needs_embedded
def test_the_default_app_labels_clear_headlines_through_gradio_client(default_settings):
    """What users get: the app as `make demo` serves it labels the clear headlines written for the tests."""
    from gradio_client import Client

    app = build_app(default_settings)
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, analytics_enabled=False)
        for expected, headlines in CLEAR.items():
            for headline in headlines:
                label, notice = client.predict(headline, api_name="/classify")
                assert (label["label"], notice) == (expected, ""), headline
    finally:
        app.close()


def test_importing_the_app_loads_no_model():
    code = "import sys, finsent.space.app; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and out.stdout.split() == ["False", "False"], out.stderr[-2000:]


def test_space_folder_imports_alone(tmp_path):
    """Deployed as a Space, space/ is the whole repository: its modules import each other top-level."""
    from finsent.train.push import copy_space

    copy_space(tmp_path / "space")
    code = "import app; print(app.build_app.__name__, app.EMBEDDED_MODEL_ID)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path / "space")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "build_app" in out.stdout


def test_help_runs():
    out = subprocess.run([sys.executable, "space/app.py", "--help"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and "--adapter" in out.stdout and "--max_batch" in out.stdout


def test_an_adapter_by_hub_id_serves_and_shows_its_results(local_hub, tiny_phi, evaluated, caplog):
    """FINSENT_ADAPTER=USER/NAME, as `finsent push --space-id` sets it: the adapter and its results come from the
    Hub; a repository without results says so in the About tab, and the log says why."""
    from huggingface_hub import HfApi

    from conftest import TOKEN, USER
    from finsent.train import push as push_script

    assert push_script.main(["--adapter", str(evaluated), "--repo-id", f"{USER}/tiny"]) == 0
    service = Service(Settings(base_model=str(tiny_phi), adapter=f"{USER}/tiny", load_in_4bit="false"))
    probs, notice = service.classify("Kestrel Oyj lifts its outlook")
    assert set(probs) == set(LABELS) and notice == ""
    text, figure = service.about()
    assert "Test accuracy" in text and figure is not None

    api = HfApi(token=TOKEN)
    api.create_repo(f"{USER}/bare")
    api.upload_folder(repo_id=f"{USER}/bare", folder_path=evaluated, allow_patterns=["adapter_*", "finsent.json"])
    bare = Service(Settings(base_model=str(tiny_phi), adapter=f"{USER}/bare", load_in_4bit="false"))
    with caplog.at_level("WARNING", logger="finsent.space.app"):
        text, figure = bare.about()
    assert "No evaluation results travel with this model." in text and figure is None
    assert any("no eval_results.json for tester/bare" in r.getMessage() for r in caplog.records)


def test_explain_a_headline_of_one_word_none_and_2000_characters(service):
    from finsent.space.explain import MAX_UNITS

    explained, notice = service.explain("Up")
    assert [w.text for w in explained.words] == ["Up"] and notice == ""
    assert explained.weight(explained.words[0]) == pytest.approx(
        explained.probabilities[explained.label] - service.classifier.predict_proba([""])[0][LABELS.index(
            explained.label)], abs=1e-2)  # one word against the empty headline
    assert service.explain("  \n") == (None, "Type a headline first.")
    long = "Kestrel Oyj raises its outlook and " * 70  # 2,450 characters: cut to 2,000, explained by phrases
    explained, notice = service.explain(long)
    assert "too long" in notice and explained.truncated and len(explained.text) <= 2000
    assert len(explained.words) == MAX_UNITS and explained.words[0].start == 0


def test_the_headline_tab_explains_when_ticked_in_the_same_call(service, monkeypatch):
    """Queued together, the plain headlines go to the model in one call and the explained ones in another."""
    from finsent.space.app import Tools

    tools = Tools(service)
    texts = ["Kestrel Oyj lifts its outlook", "Norvale cuts 40 jobs", "  ", "Ferrow Bank to publish results"]
    calls, predict = [], service.predict
    monkeypatch.setattr(service, "predict", lambda rows, *args, **kwargs: calls.append(
        (len(rows), kwargs.get("packed", False))) or predict(rows, *args, **kwargs))
    labels, notices, whys, legends = tools.headline(texts, [True, False, True, True])
    assert calls == [(1, False), (len(texts[0].split()) + len(texts[3].split()) + 2, True)]
    for i in (0, 3):
        explained, _ = service.explain(texts[i])  # alone, as /explain_headline: the same up to rounding in bf16
        assert labels[i] == pytest.approx(explained.probabilities, abs=0.02)  # the label shown is its explanation's
    assert set(labels[1]) == set(LABELS) and labels[2] is None and notices[2] == "Type a headline first."
    assert [w.visible for w in whys] == [True, False, False, True]
    assert [m.visible for m in legends] == [True, False, False, True]
    pieces = whys[0].value["root"] if isinstance(whys[0].value, dict) else whys[0].value
    weights = [piece[1] if isinstance(piece, (list, tuple)) else piece["class_or_confidence"] for piece in pieces]
    assert max(abs(w) for w in weights if w is not None) == pytest.approx(1)  # the strongest push in full colour
    assert "pushed toward" in legends[0].value and "Strongest:" in legends[0].value


def test_the_about_tab_shows_the_shipped_adapters_wrong_answers_and_their_words(default_settings):
    from finsent.space.figures import wrong_answers

    text, _ = Service(default_settings).about()  # reads eval_results.json; loads no model
    results = json.loads((DEFAULT_ADAPTER / "eval_results.json").read_text())
    shown = wrong_answers(results["runs"]["fine_tuned"])
    assert len(shown) == 3 and "Where it goes wrong, and why" in text
    for wrong in shown:
        assert f"\"{wrong['text']}\": **{wrong['predicted']}**" in text and wrong["words"] in text
