"""The local Hub (tests/hub_server.py) driven by the real `huggingface_hub` client, as push.py and the Space use it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from huggingface_hub.utils import get_session

from conftest import TOKEN, USER


@pytest.fixture
def model_folder(tmp_path) -> Path:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("small text, a regular git file\n")
    (folder / "config.json").write_text(json.dumps({"r": 8}))
    (folder / "sub" / "weights.bin").write_bytes(os.urandom(1536 * 1024))  # over 1 MiB: LFS
    (folder / "adapter_model.safetensors").write_bytes(b"\x08" + bytes(64))  # small, but LFS by suffix
    return folder


def read_tree(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}


def test_whoami_accepts_the_known_token_only(local_hub):
    assert HfApi(token=TOKEN).whoami()["name"] == USER
    with pytest.raises(HfHubHTTPError) as error:
        HfApi(token="hf_bad").whoami()
    assert error.value.response.status_code == 401


def test_bad_token_creates_nothing(local_hub):
    with pytest.raises(HfHubHTTPError) as error:
        HfApi(token="hf_bad").create_repo(f"{USER}/model", private=True)
    assert error.value.response.status_code == 401
    assert "Invalid credentials" in str(error.value)
    assert local_hub.repos() == []


def test_model_round_trip(local_hub, model_folder, tmp_path):
    api = HfApi(token=TOKEN)
    repo_id = f"{USER}/finsent-test"
    url = api.create_repo(repo_id, private=True)
    assert url.repo_id == repo_id and url.endpoint == local_hub.endpoint
    api.create_repo(repo_id, private=True, exist_ok=True)
    with pytest.raises(HfHubHTTPError):
        api.create_repo(repo_id)

    api.upload_folder(folder_path=model_folder, repo_id=repo_id, commit_message="first")
    expected = {".gitattributes", *read_tree(model_folder)}
    assert set(api.list_repo_files(repo_id)) == expected
    assert {path: data for path, data in local_hub.files(repo_id).items() if path != ".gitattributes"} == read_tree(
        model_folder
    )
    lfs_puts = [path for method, path in local_hub.requests if method == "PUT"]
    assert len(lfs_puts) == 2  # weights.bin and the .safetensors; the text files went inline in the commit
    info = api.model_info(repo_id, files_metadata=True)
    assert info.private is True
    assert {s.rfilename for s in info.siblings if s.lfs} == {"sub/weights.bin", "adapter_model.safetensors"}

    snapshot = huggingface_hub.snapshot_download(repo_id, cache_dir=tmp_path / "cache")
    assert {p: d for p, d in read_tree(snapshot).items() if p != ".gitattributes"} == read_tree(model_folder)

    # Nothing changed: the client learns it from the preupload oids and makes no commit and no upload
    n_requests = len(local_hub.requests)
    api.upload_folder(folder_path=model_folder, repo_id=repo_id)
    assert not [r for r in local_hub.requests[n_requests:] if r[0] == "PUT" or r[1].endswith("/commit/main")]

    api.create_commit(
        repo_id,
        operations=[
            CommitOperationDelete("notes.txt"),
            CommitOperationAdd("config.json", json.dumps({"r": 16}).encode()),
        ],
        commit_message="second",
    )
    files = local_hub.files(repo_id)
    assert "notes.txt" not in files and json.loads(files["config.json"]) == {"r": 16}
    assert "notes.txt" not in api.list_repo_files(repo_id)

    weights = huggingface_hub.hf_hub_download(repo_id, "sub/weights.bin", cache_dir=tmp_path / "cache2")
    assert Path(weights).read_bytes() == (model_folder / "sub" / "weights.bin").read_bytes()
    with pytest.raises(RepositoryNotFoundError):  # private: no token, no read
        HfApi(token=False).list_repo_files(repo_id)


def test_space_repo(local_hub):
    repo_id = f"{USER}/finsent-demo"
    huggingface_hub.create_repo(repo_id, repo_type="space", space_sdk="gradio")
    readme = b"---\ntitle: finsent\nsdk: gradio\napp_file: app.py\n---\n"
    huggingface_hub.upload_file(path_or_fileobj=readme, path_in_repo="README.md", repo_id=repo_id, repo_type="space")
    app = b"print('hi')\n"
    huggingface_hub.upload_file(path_or_fileobj=app, path_in_repo="app.py", repo_id=repo_id, repo_type="space")
    assert local_hub.repos() == [f"space/{repo_id}"]
    assert local_hub.files(repo_id, repo_type="space")["README.md"] == readme
    info = huggingface_hub.space_info(repo_id)
    assert info.sdk == "gradio" and info.private is False
    assert sorted(s.rfilename for s in info.siblings) == [".gitattributes", "README.md", "app.py"]
    huggingface_hub.add_space_variable(repo_id, "FINSENT_ADAPTER", f"{USER}/finsent-test")
    assert huggingface_hub.get_space_variables(repo_id)["FINSENT_ADAPTER"].value == f"{USER}/finsent-test"


def test_commit_with_unknown_lfs_object_is_rejected_whole(local_hub):
    repo_id = f"{USER}/atomic"
    HfApi(token=TOKEN).create_repo(repo_id)
    before = local_hub.files(repo_id)
    lines = [
        {"key": "header", "value": {"summary": "bad", "description": ""}},
        {"key": "file", "value": {"path": "ok.txt", "content": "b2sK", "encoding": "base64"}},
        {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": "0" * 64, "size": 3}},
    ]
    response = get_session().post(
        f"{local_hub.endpoint}/api/models/{repo_id}/commit/main",
        content=b"".join(json.dumps(line).encode() + b"\n" for line in lines),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 422 and "never uploaded" in response.json()["error"]
    assert local_hub.files(repo_id) == before
