"""The Space once in a real browser: Debian's headless Chromium, driven by Playwright, on loopback only.

Playwright never downloads a browser here (no `playwright install`): it drives the system
Chromium, and the test skips where there is none (`make browser` installs it).
"""

from __future__ import annotations

import re
import shutil
from urllib.parse import urlsplit

import pytest
from test_default_adapter import CLEAR, needs_embedded

from conftest import free_port, missing, needs
from finsent.space.app import Settings, build_app
from finsent.space.classifier import LABELS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 60_000  # the first click also loads the model
HEADLINE = "Kestrel Oyj raises its full-year operating profit forecast"

pytestmark = needs(CHROMIUM is not None, "no chromium binary on PATH (`make browser` installs it)")


@pytest.fixture
def app_url(tiny_phi, trained, monkeypatch):
    """The app on the tiny Phi and its trained adapter, served on a free loopback port; closed after."""
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")  # read when the Blocks is built: no telemetry calls
    app = build_app(Settings(base_model=str(tiny_phi), adapter=str(trained), load_in_4bit="false"))
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


@pytest.fixture
def page(tmp_path):
    """A Chromium page with a fresh profile; requests leaving loopback (web fonts, CDNs) are refused."""
    try:
        from playwright import sync_api
    except ImportError:
        missing("playwright is in the `test` extra")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            user_data_dir=tmp_path / "profile", executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.route("**/*", lambda route: route.continue_() if urlsplit(route.request.url).hostname == "127.0.0.1"
                      else route.abort())
        try:
            yield context.new_page()
        finally:
            context.close()


def test_classify_a_headline_in_the_browser(app_url, page, tmp_path):
    from playwright.sync_api import expect

    errors = []  # uncaught exceptions in the page's scripts
    page.on("pageerror", lambda error: errors.append(error))
    console = []  # shown when the test fails: refused off-loopback requests would show up here
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.goto(app_url)
    box = page.get_by_role("textbox", name="Headline", exact=True)
    box.fill(HEADLINE)
    page.get_by_role("button", name="Classify", exact=True).click()

    output = page.get_by_test_id("label-output-value")
    expect(output).to_have_text(re.compile(rf"^\s*({'|'.join(LABELS)})\s*$"), timeout=TIMEOUT_MS)
    assert output.inner_text().strip() in LABELS
    expect(page.get_by_text("Ready:")).to_be_visible(timeout=TIMEOUT_MS)  # the status line left "Loading…"

    screenshot = tmp_path / "headline.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.is_file() and screenshot.read_bytes().startswith(b"\x89PNG") and screenshot.stat().st_size > 1000
    assert errors == [], f"uncaught errors in the page: {errors}; console: {console}"


@pytest.mark.slow
@needs_embedded
def test_the_default_app_labels_clear_headlines_in_the_browser(default_settings, page, monkeypatch):
    """The app as `make demo` serves it (embedded SmolLM2 + shipped adapter), in Chromium: one clear headline
    of each label, typed and classified as a user would."""
    from playwright.sync_api import expect

    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    app = build_app(default_settings)
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        box = page.get_by_role("textbox", name="Headline", exact=True)
        output = page.get_by_test_id("label-output-value")
        for expected, headlines in CLEAR.items():
            box.fill(headlines[0])
            page.get_by_role("button", name="Classify", exact=True).click()
            expect(output).to_have_text(re.compile(rf"^\s*{expected}\s*$"), timeout=TIMEOUT_MS)
    finally:
        app.close()


def test_the_explanation_highlights_the_headline_in_the_browser(app_url, page, tmp_path):
    """With its checkbox ticked (the default: space/app.py EXPLAIN_BY_DEFAULT) the headline comes back with each word
    coloured by its push, and a one-line legend; unticked, the label alone."""
    from playwright.sync_api import expect

    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    page.goto(app_url)
    why, legend = page.locator("#why"), page.locator("#why-legend")
    expect(why).to_be_hidden()  # nothing to explain yet
    box, output = page.get_by_role("textbox", name="Headline", exact=True), page.get_by_test_id("label-output-value")
    checkbox = page.get_by_label(re.compile("Explain: which words drove the label"))
    expect(checkbox).to_be_checked()
    box.fill(HEADLINE)
    page.get_by_role("button", name="Classify", exact=True).click()
    expect(output).to_have_text(re.compile(rf"^\s*({'|'.join(LABELS)})\s*$"), timeout=TIMEOUT_MS)
    expect(why).to_be_visible(timeout=TIMEOUT_MS)
    expect(why).to_contain_text("full-year")
    coloured = why.locator(".highlighted[style*='background-color: rgb']")  # rgba(…, a); at full strength rgb(…)
    expect(coloured).to_have_count(len(HEADLINE.split()))  # every word coloured, the spaces between them not
    expect(legend).to_contain_text(re.compile(rf"Red words pushed toward ({'|'.join(LABELS)})"))
    page.screenshot(path=str(tmp_path / "why.png"), full_page=True)

    checkbox.uncheck()
    box.fill("Norvale Group to cut 450 jobs as orders slump")
    page.get_by_role("button", name="Classify", exact=True).click()
    expect(why).to_be_hidden(timeout=TIMEOUT_MS)
    expect(legend).to_be_hidden()
    expect(output).to_have_text(re.compile(rf"^\s*({'|'.join(LABELS)})\s*$"))
    assert errors == [], f"uncaught errors in the page: {errors}"


def test_a_user_corrects_a_headline_and_a_batch_row_in_the_browser(tiny_phi, trained, page, tmp_path, monkeypatch):
    """Corrections on (--feedback DIR): the notice says what is kept; the right label starts at the model's answer;
    Save keeps the one picked, in the Headline tab and for a clicked row of the Batch tab."""
    import json

    from playwright.sync_api import expect

    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    folder = tmp_path / "feedback"
    app = build_app(Settings(base_model=str(tiny_phi), adapter=str(trained), load_in_4bit="false",
                             feedback_dir=str(folder)))
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        expect(page.locator("#headline-feedback-notice")).to_contain_text("No IP address or user id is kept")
        page.get_by_role("textbox", name="Headline", exact=True).fill(HEADLINE)
        page.get_by_role("button", name="Classify", exact=True).click()
        output = page.get_by_test_id("label-output-value")
        expect(output).to_have_text(re.compile(rf"^\s*({'|'.join(LABELS)})\s*$"), timeout=TIMEOUT_MS)
        answer = output.inner_text().strip()
        right = page.locator("#headline-right")
        expect(right.get_by_label(answer, exact=True)).to_be_checked(timeout=TIMEOUT_MS)  # preset: confirm it
        other = next(label for label in LABELS if label != answer)
        right.get_by_label(other, exact=True).check()
        page.locator("#headline-save").click()
        expect(page.locator("#headline-saved")).to_contain_text(f"Saved: {other}", timeout=TIMEOUT_MS)

        page.get_by_role("tab", name="Batch").click()
        page.get_by_role("textbox", name="Headlines, one per line").fill("Orvik Foods writes down its Polish unit\n"
                                                                          "Ashby Cement reaffirms its guidance")
        page.get_by_role("button", name="Classify all").click()
        cell = page.get_by_text("Ashby Cement reaffirms its guidance", exact=True).first
        expect(cell).to_be_visible(timeout=TIMEOUT_MS)
        cell.click()
        expect(page.locator("#batch-picked textarea")).to_have_value("Ashby Cement reaffirms its guidance",
                                                                     timeout=TIMEOUT_MS)
        page.locator("#batch-right").get_by_label("neutral", exact=True).check()
        page.locator("#batch-save").click()
        expect(page.locator("#batch-saved")).to_contain_text("Saved: neutral", timeout=TIMEOUT_MS)
    finally:
        app.close()
    rows = [json.loads(line) for line in (folder / "corrections.jsonl").read_text().splitlines()]
    assert [(row["text"], row["label"]) for row in rows] == [(HEADLINE, other),
                                                            ("Ashby Cement reaffirms its guidance", "neutral")]
    assert rows[0]["model_label"] in LABELS  # scored again on the server: a near tie may round either way in bf16
    assert errors == [], f"uncaught errors in the page: {errors}"
