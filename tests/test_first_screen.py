"""What a newcomer sees first: the app's start-up output and every command's --help, with no warning or error line
(bitsandbytes' note about an optional Hub kernel and peft's FutureWarning were read as errors; space/__init__.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import free_port, wait_until
from finsent.train.cli import COMMANDS

FINSENT = Path(sys.executable).with_name("finsent")
ALARMING = re.compile(r"warn|error|fail|traceback|deprecat|exception", re.IGNORECASE)


def test_help_prints_no_warning():
    """`finsent COMMAND --help` for every command, each a fresh process (two at a time: each mostly imports)."""
    def run(command):
        return subprocess.run([str(FINSENT), command, "--help"], capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = dict(zip(sorted(COMMANDS), pool.map(run, sorted(COMMANDS)), strict=True))
    for command, out in runs.items():
        assert out.returncode == 0 and out.stdout.startswith("usage: finsent"), (command, out.stderr)
        assert out.stderr == "", command  # warnings and log lines go to stderr; --help writes stdout only


def space_copy(tmp_path) -> list[str]:
    """The Space as Hugging Face runs it: `python app.py` in a copy of its folder, where no __init__.py runs."""
    from finsent.train.push import copy_space

    folder = copy_space(tmp_path / "space")
    return [sys.executable, str(folder / "app.py")]


@pytest.mark.parametrize("launch", ["finsent app", "python app.py in the Space's folder"])
def test_the_apps_output_to_its_first_answer_has_no_warning(launch, tmp_path):
    """From start to the first request's answer, which loads the model: the first line says what is served, the
    request adds nothing to the log, and no line reads as a warning or an error (bitsandbytes' optional Hub
    kernel, the `kernels` trust check, peft's FutureWarning, the "Loading weights" bar: space/quiet.py)."""
    from gradio_client import Client

    port = free_port()
    command = [str(FINSENT), "app"] if launch == "finsent app" else space_copy(tmp_path)
    space = launch != "finsent app"  # offline too, where the `kernels` package says it skips its trust check
    app = subprocess.Popen([*command, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, cwd=Path(command[-1]).parent if space else None,
                           env={**os.environ, "HF_HUB_OFFLINE": "1"} if space else None)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in app.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: app.poll() is not None or any("Running on local URL" in line for line in lines), 180)
        assert app.poll() is None, lines
        time.sleep(1)  # the start's last lines (Gradio's note on share=True) reach the reader
        started = len(lines)
        answer = json.loads(Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
            "Quarterly profit doubled", api_name="/classify_headline"))
        time.sleep(1)  # anything the request printed reaches the reader
    finally:
        app.terminate()
        app.wait(timeout=30)
        reader.join(timeout=10)
    assert answer["label"] in ("negative", "neutral", "positive"), answer
    assert lines[0].startswith("finsent: serving"), lines  # the first line says what is served
    assert not [line for line in lines if ALARMING.search(line)], lines
    assert lines[started:] == [], lines  # the model's load and the answer print nothing
