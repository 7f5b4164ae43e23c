"""What a newcomer sees first: the app's start-up output and every command's --help, with no warning or error line
(bitsandbytes' note about an optional Hub kernel and peft's FutureWarning were read as errors; space/__init__.py)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import free_port
from finsent.train.cli import COMMANDS

FINSENT = Path(sys.executable).with_name("finsent")
ALARMING = re.compile(r"warn|error|fail|traceback|deprecat|exception", re.IGNORECASE)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_prints_no_warning(command):
    run = subprocess.run([str(FINSENT), command, "--help"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.startswith("usage: finsent"), run.stderr
    assert run.stderr == ""  # warnings and log lines go to stderr; --help writes stdout only


def test_the_apps_start_up_output_has_no_warning():
    app = subprocess.Popen([str(FINSENT), "app", "--port", str(free_port())], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = app.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if "Running on local URL" in line:
                break
    finally:
        app.terminate()
        app.wait(timeout=30)
    assert any("Running on local URL" in line for line in lines), lines
    assert lines[0].startswith("finsent: serving"), lines  # the first line says what is served
    assert not [line for line in lines if ALARMING.search(line)], lines
