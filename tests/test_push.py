"""train/push.py against a local Hub (tests/hub_server.py) through the real huggingface_hub client."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import constants, snapshot_download
from test_default_adapter import needs_embedded

from conftest import REPO, TOKEN, USER
from finsent.space.classifier import LABELS, load_classifier
from finsent.space.embedded import EMBEDDED_MODEL_ID
from finsent.train import push as push_script

REPO_ID = f"{USER}/finsent-tiny"
HEADLINES = ["Kestrel Oyj lifts its outlook", "Norvale Group cuts 200 jobs"]


def pushed_files(hub) -> set[str]:
    return set(hub.files(REPO_ID))


def test_push_then_download_gives_the_same_predictions(local_hub, evaluated, tmp_path, capsys, caplog):
    assert push_script.main(["--adapter", str(evaluated), "--repo-id", REPO_ID]) == 0
    files = pushed_files(local_hub)
    assert {"README.md", "adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "eval_results.json",
            "training_config.yaml", "split/summary.json", ".gitattributes"} <= files
    assert any(name.startswith("figures/") for name in files)
    assert any(re.match(r"runs/.*/events\.out\.tfevents\.", name) for name in files)  # "Training metrics"
    assert not any(name.startswith("checkpoint-") or name.endswith(".csv") or name == "training_args.bin"
                   for name in files)

    downloaded = snapshot_download(REPO_ID, cache_dir=tmp_path / "cache")
    local = load_classifier(base_model(evaluated), str(evaluated), dtype="float32").predict_proba(HEADLINES)
    remote = load_classifier(base_model(evaluated), downloaded, dtype="float32").predict_proba(HEADLINES)
    np.testing.assert_allclose(local, remote, atol=1e-6)

    output = capsys.readouterr()
    logs = output.out + output.err + caplog.text
    assert TOKEN not in logs
    assert all(TOKEN.encode() not in content for content in local_hub.files(REPO_ID).values())


def test_test_texts_stay_home_unless_asked_for(local_hub, evaluated):
    """The report's most confident mistakes quote test texts (the data's licence): not pushed by default."""
    import pandas as pd

    texts = pd.read_csv(evaluated / "split" / "test.csv")["text"]
    assert any(text in (evaluated / "eval_report.md").read_text() for text in texts)  # they are in the local report
    assert push_script.main(["--adapter", str(evaluated), "--repo-id", REPO_ID]) == 0
    pushed = b"".join(local_hub.files(REPO_ID).values()).decode("utf-8", "replace")
    assert not any(text in pushed for text in texts) and "Most confident mistakes" not in pushed
    assert push_script.main(["--adapter", str(evaluated), "--repo-id", REPO_ID, "--include-texts"]) == 0
    assert "Most confident mistakes" in local_hub.files(REPO_ID)["eval_report.md"].decode()


def base_model(run):
    return json.loads((run / "adapter_config.json").read_text())["base_model_name_or_path"]


def test_pushing_twice_leaves_the_same_repository_and_stale_files_go(local_hub, evaluated, tmp_path):
    argv = ["--adapter", str(evaluated), "--repo-id", REPO_ID]
    assert push_script.main(argv) == 0
    first = local_hub.files(REPO_ID)
    assert len(local_hub.commits(REPO_ID)) == 2  # the Hub's initial commit, then one for the whole push
    assert push_script.main(argv) == 0
    assert local_hub.files(REPO_ID) == first  # the same paths with the same bytes
    assert len(local_hub.commits(REPO_ID)) == 2  # nothing changed: huggingface_hub makes no empty commit

    changed = shutil.copytree(evaluated, tmp_path / "run")
    figure = next((changed / "figures").glob("*.html"))
    figure.unlink()
    assert push_script.main(["--adapter", str(changed), "--repo-id", REPO_ID]) == 0
    assert set(local_hub.files(REPO_ID)) == set(first) - {f"figures/{figure.name}"}
    assert len(local_hub.commits(REPO_ID)) == 3  # the deletion rides in the push's one commit


def test_dry_run_prints_the_plan_and_uploads_nothing(local_hub, evaluated, capsys):
    assert push_script.main(["--adapter", str(evaluated), "--repo-id", REPO_ID, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"{constants.ENDPOINT}/{REPO_ID}" in out and "adapter_model.safetensors" in out and "README.md" in out
    assert local_hub.requests == [] and local_hub.repos() == []


@pytest.mark.parametrize("problem, message", [
    ("bad token", "the Hub rejected the token"),
    ("no token", "no Hugging Face token: set HF_TOKEN"),
    ("no network", "could not complete the request to"),
    ("no weights", "adapter_model.safetensors missing"),
    ("no eval", "eval_results.json missing); run eval/evaluate.py"),
])
def test_failures_are_one_line_and_leave_nothing(local_hub, evaluated, tmp_path, monkeypatch, capsys,
                                                 problem, message):
    import huggingface_hub

    run = shutil.copytree(evaluated, tmp_path / "run")
    if problem == "bad token":
        monkeypatch.setenv("HF_TOKEN", "hf_not_a_token")
    elif problem == "no token":
        monkeypatch.delenv("HF_TOKEN")
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
        monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))
    elif problem == "no network":
        monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
        monkeypatch.setattr(huggingface_hub.hf_api.api, "endpoint", "http://127.0.0.1:9")
    elif problem == "no weights":
        (run / "adapter_model.safetensors").unlink()
    elif problem == "no eval":
        (run / "eval_results.json").unlink()
    assert push_script.main(["--adapter", str(run), "--repo-id", REPO_ID]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert "hf_not_a_token" not in err and TOKEN not in err
    assert local_hub.repos() == []


def test_card_snippet_runs_against_the_hub(local_hub, evaluated, tmp_path):
    assert push_script.main(["--adapter", str(evaluated), "--repo-id", REPO_ID]) == 0
    card = local_hub.files(REPO_ID)["README.md"].decode()
    [snippet] = re.findall(r"```python\n(.*?)```", card, flags=re.S)
    namespace: dict = {}
    exec(compile(snippet.replace("print(classify", "result = (classify"), "card-snippet", "exec"), namespace)
    assert namespace["repo_id"] == REPO_ID and set(namespace["result"]) == set(LABELS)
    assert abs(sum(namespace["result"].values()) - 1) < 1e-5


def test_space_push_uploads_the_app_and_points_it_at_the_adapter(local_hub, evaluated, capsys):
    import yaml
    from huggingface_hub import HfApi

    argv = ["--adapter", str(evaluated), "--repo-id", REPO_ID, "--space-id", f"{USER}/finsent-demo"]
    assert push_script.main(argv) == 0
    space = local_hub.files(f"{USER}/finsent-demo", repo_type="space")
    assert {"app.py", "classifier.py", "embedded.py", "figures.py", "README.md", "requirements.txt"} <= set(space)
    front = yaml.safe_load(space["README.md"].decode().split("---\n")[1])
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py" and front["python_version"] == "3.12"
    # the front matter names what this Space serves: the run's base and the adapter just pushed
    assert front["models"] == [base_model(evaluated), REPO_ID] == front["preload_from_hub"]
    assert front["suggested_hardware"] == "t4-small"
    assert "choose ZeroGPU" in capsys.readouterr().out

    variables = {k: v.value for k, v in HfApi(token=TOKEN).get_space_variables(f"{USER}/finsent-demo").items()}
    # the tiny run trained in 4-bit: the Space loads its base so, whatever hardware it gets
    assert variables == {"FINSENT_ADAPTER": REPO_ID, "FINSENT_BASE_MODEL": base_model(evaluated),
                         "FINSENT_4BIT": "true", "FINSENT_MCP": "true"}


def test_gguf_files_arrive_as_exported_and_the_card_shows_how_to_use_them(local_hub, evaluated, tmp_path):
    from finsent.train import export_gguf

    run = shutil.copytree(evaluated, tmp_path / "run")
    assert export_gguf.main([str(run), "--merged", "q8_0"]) == 0  # into the run folder, as push expects
    assert push_script.main(["--adapter", str(run), "--repo-id", REPO_ID]) == 0
    pushed = local_hub.files(REPO_ID)
    for name in ("adapter.gguf", "merged-q8_0.gguf"):
        assert pushed[name] == (run / name).read_bytes()
    card = pushed["README.md"].decode()
    llama = card.split("## Use with llama.cpp\n", 1)[1].split("\n## ", 1)[0]
    assert "convert_hf_to_gguf.py" in llama and "merged-q8_0.gguf" in llama and "FROM ./merged-q8_0.gguf" in llama

    # the card's own commands, against this Hub: its download line and its export command give the same file
    [download] = [line for line in llama.splitlines() if line.startswith(f"hf download {REPO_ID} adapter.gguf")]
    hf = Path(sys.executable).with_name("hf")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "cli-cache")}  # HF_ENDPOINT, HF_TOKEN: the local Hub's
    out = subprocess.run([str(hf), *download.split()[1:]], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "adapter.gguf").read_bytes() == pushed["adapter.gguf"]
    [export] = [line for line in llama.splitlines() if line.startswith("finsent export-gguf")]
    again = tmp_path / "again"
    assert export_gguf.main([*export.split()[2:-2], "--out", str(again)]) == 0  # the Hub id, without --merged
    assert (again / "adapter.gguf").read_bytes() == pushed["adapter.gguf"]

    # --no-merged: the merged file leaves the repository and the card; adapter.gguf stays
    assert push_script.main(["--adapter", str(run), "--repo-id", REPO_ID, "--no-merged"]) == 0
    pushed = local_hub.files(REPO_ID)
    assert "merged-q8_0.gguf" not in pushed and pushed["adapter.gguf"] == (run / "adapter.gguf").read_bytes()
    card = pushed["README.md"].decode()
    assert "## Use with llama.cpp" in card and "merged-q8_0" not in card and "Modelfile" not in card


def test_help_runs():
    out = subprocess.run([sys.executable, "train/push.py", "--help"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and "--repo-id" in out.stdout and "--dry-run" in out.stdout and "--no-merged" in out.stdout


def test_private_creates_a_private_repository(local_hub, evaluated):
    from huggingface_hub import HfApi

    assert push_script.main(["--adapter", str(evaluated), "--repo-id", REPO_ID, "--private"]) == 0
    assert HfApi(token=TOKEN).model_info(REPO_ID).private is True
    assert push_script.main(["--adapter", str(evaluated), "--repo-id", f"{USER}/public"]) == 0
    assert HfApi(token=TOKEN).model_info(f"{USER}/public").private is False


@needs_embedded
@pytest.mark.slow
def test_the_shipped_adapter_pushes_without_a_tokenizer_and_loads_from_the_hub(local_hub, tmp_path):
    """README: `finsent push --adapter space/default-adapter` publishes it (it has no tokenizer: the base's serves),
    with a Space for the embedded base."""
    default = REPO / "space" / "default-adapter"
    repo_id, space_id = f"{USER}/finsent-smol", f"{USER}/finsent-smol-app"
    assert push_script.main(["--adapter", str(default), "--repo-id", repo_id, "--space-id", space_id]) == 0
    # the embedded branch: the Space preloads the pinned GGUF it materialises, and a CPU is enough
    import yaml
    from huggingface_hub import HfApi

    from finsent.space import embedded

    front = yaml.safe_load(local_hub.files(space_id, repo_type="space")["README.md"].decode().split("---\n")[1])
    assert front["models"] == [EMBEDDED_MODEL_ID, embedded.GGUF_REPO, repo_id]
    assert front["preload_from_hub"] == [f"{embedded.GGUF_REPO} {embedded.GGUF_FILE} {embedded.GGUF_REVISION}", repo_id]
    assert front["suggested_hardware"] == "cpu-basic"
    variables = {k: v.value for k, v in HfApi(token=TOKEN).get_space_variables(space_id).items()}
    assert variables == {"FINSENT_ADAPTER": repo_id, "FINSENT_BASE_MODEL": EMBEDDED_MODEL_ID, "FINSENT_4BIT": "false",
                         "FINSENT_MCP": "true"}
    files = local_hub.files(repo_id)
    assert files["adapter_model.safetensors"] == (default / "adapter_model.safetensors").read_bytes()
    assert not any(name.startswith("tokenizer") for name in files)
    downloaded = snapshot_download(repo_id, cache_dir=tmp_path / "cache")
    ours = load_classifier(EMBEDDED_MODEL_ID, str(default), dtype="float32").predict_proba(HEADLINES)
    theirs = load_classifier(EMBEDDED_MODEL_ID, downloaded, dtype="float32").predict_proba(HEADLINES)
    np.testing.assert_array_equal(ours, theirs)
