"""The README as a newcomer reads it: its contents links land on headings, and its quick start runs as written
(on the local Hub, with the app line left to tests/test_app.py and test_browser.py)."""

from __future__ import annotations

import re
import shlex

import pytest
from test_default_adapter import needs_embedded

from conftest import REPO, USER

README = (REPO / "README.md").read_text()


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_contents_link_every_section():
    headings = re.findall(r"^## (.+)$", README, flags=re.M)
    [contents] = [line for line in README.splitlines() if line.startswith("**Contents**")]
    links = re.findall(r"\]\(#([^)]+)\)", contents)
    assert set(links) <= {anchor(h) for h in headings}
    assert {anchor(h) for h in headings} - set(links) <= {anchor(h) for h in headings if h.startswith("Quick start")}


def quick_start() -> list[list[str]]:
    """The quick start's commands, continuation lines joined and comments dropped."""
    block = re.search(r"^## Quick start.*?^```bash\n(.*?)^```", README, flags=re.S | re.M).group(1)
    text = re.sub(r"\\\n\s*", " ", block)
    return [shlex.split(line.split("  #")[0]) for line in text.splitlines() if line.strip()]


@pytest.mark.slow
@needs_embedded
def test_the_quick_start_runs_as_written(local_hub, tmp_path, monkeypatch):
    from finsent.train import cli

    monkeypatch.chdir(REPO)  # the commands name repository paths (train/sample_headlines.csv)
    commands = quick_start()
    assert [c[:2] for c in commands] == [["make", "setup"], ["finsent", "train"], ["finsent", "evaluate"],
                                         ["finsent", "app"], ["export", "HF_TOKEN=hf_..."], ["finsent", "push"]]
    run = str(tmp_path / "quick")
    for command in commands:
        if command[1] not in ("train", "evaluate", "push"):
            continue  # the set-up made this environment; the app has its own tests; the token is the local Hub's
        argv = [run if arg == "runs/quick" else arg.replace("USER/", f"{USER}/") for arg in command[2:]]
        assert cli.main([command[1], *argv]) == 0, command
    assert set(local_hub.files(f"{USER}/finsent-quick")) >= {"adapter_model.safetensors", "README.md",
                                                               "eval_results.json"}
    assert "app.py" in local_hub.files(f"{USER}/finsent-quick-app", repo_type="space")
