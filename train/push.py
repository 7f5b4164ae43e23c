"""Publish a trained and evaluated run to the Hugging Face Hub, with its generated model card.

    python train/push.py --adapter trained-model --repo-id USER/NAME --dry-run

One commit uploads the adapter, the tokenizer, the card (README.md), eval_results.json and
the report, the figures, the resolved training config, the split's counts, the
TensorBoard event files, and the GGUF files `finsent export-gguf` wrote into the run folder:
adapter.gguf (the card then shows how to use it with llama.cpp) and any merged-TYPE.gguf,
base and adapter merged, as large as the base (about 145 MB for SmolLM2 and 3 GB for Phi-2
in q8_0); --no-merged leaves those local, and off the repository. Files of an earlier push
that are no longer part of the run are deleted in the same commit, so pushing the same
folder twice leaves the same repository. Checkpoints, the split's CSVs (they hold the data
set's text) and training_args.bin stay local. The token comes from HF_TOKEN or `hf auth
login`'s cache, never from a flag, and is never printed or written.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from finsent.eval.report import REPORT_FILE, without_texts
from finsent.model_card.card import card_from_run, read_run
from finsent.space.errors import first_line
from finsent.train.data import UsageError
from finsent.train.export_gguf import ADAPTER_FILE, merged_file

logger = logging.getLogger("finsent.push")

MERGED = merged_file("*")  # export-gguf --merged TYPE: a whole model file, uploaded unless --no-merged
# What a published run holds, as globs in the run folder; everything else stays local.
PUBLISHED = (
    "adapter_config.json", "adapter_model.safetensors", "finsent.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
    "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json",
    "eval_results.json", "eval_report.md", "training_config.yaml", "split/summary.json",
    "figures/*.png", "figures/*.html", "figures/plotly.min.js", "runs/**/events.out.tfevents.*",
    ADAPTER_FILE, MERGED,
)
KEEP_REMOTE = {".gitattributes"}  # the Hub's own file


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", default="trained-model", help="the run folder train.py wrote and evaluate.py "
                        "evaluated (default: trained-model)")
    parser.add_argument("--repo-id", required=True, help="USER/NAME of the model repository (created if needed)")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--dry-run", action="store_true", help="print what would be uploaded and where; upload nothing")
    parser.add_argument("--space-id", help="also push space/ as a Gradio Space USER/NAME that loads this adapter")
    parser.add_argument("--no-merged", action="store_true", help=f"leave the run folder's {MERGED} files "
                        "(base + adapter merged, as large as the base) local, and off the repository; "
                        f"{ADAPTER_FILE} is uploaded either way")
    parser.add_argument("--include-texts", action="store_true", help="also upload the report's most confident "
                        "mistakes, which quote test texts (the data's licence applies); left out by default")
    return parser


def files_to_publish(run_dir: Path, include_texts: bool = False, merged: bool = True) -> dict[str, Path | bytes]:
    """{path in the repo: local file, or the bytes to upload} of everything a published run holds.

    The report's section quoting test texts (data under its own licence) is cut unless `include_texts`;
    merged GGUF files are left out unless `merged`.
    """
    found: dict[str, Path | bytes] = {}
    for pattern in PUBLISHED if merged else [p for p in PUBLISHED if p != MERGED]:
        for path in sorted(run_dir.glob(pattern)):
            if path.is_file():
                found[path.relative_to(run_dir).as_posix()] = path
    if not include_texts and REPORT_FILE in found:
        found[REPORT_FILE] = without_texts(found[REPORT_FILE].read_text()).encode()
    return found


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    args = make_parser().parse_args(argv)
    try:
        push(args)
    except UsageError as err:  # the user's to fix: one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def push(args: argparse.Namespace) -> str | None:
    from huggingface_hub import HfApi, constants

    run_dir = Path(args.adapter)
    if not run_dir.is_dir():
        raise UsageError(f"--adapter {run_dir}: no such folder; train with train/train.py, evaluate with "
                         "eval/evaluate.py, then push the folder they wrote")
    run = read_run(run_dir)  # every required file is there, or one line says which is missing
    files = files_to_publish(run_dir, args.include_texts, merged=not args.no_merged)
    # the card shows the GGUF files this push uploads, no others
    card = str(card_from_run({**run, "gguf": [name for name in run["gguf"] if name in files]}, args.repo_id))
    where = f"{constants.ENDPOINT}/{args.repo_id}"
    if args.dry_run:
        print(f"dry run: would upload to {where} ({'private' if args.private else 'public'}), in one commit:")
        print(f"  README.md  (model card, {len(card.encode())} bytes)")
        for name, path in files.items():
            print(f"  {name}  ({len(path) if isinstance(path, bytes) else path.stat().st_size} bytes)")
        print("  and delete any other file an earlier push left there (but .gitattributes)")
        if args.space_id:
            front, variables, advice = space_settings(args.repo_id, run)
            print(f"and push space/ to {constants.ENDPOINT}/spaces/{args.space_id} with variables "
                  f"{', '.join(f'{k}={v}' for k, v in variables.items())}, models {', '.join(front['models'])}; "
                  f"hardware: {advice}")
        return None

    api = HfApi()
    token = authenticate(api)
    url = commit_run(api, token, args.repo_id, args.private, card, files)
    logger.info("pushed %d files to %s", len(files) + 1, url)
    if args.space_id:
        push_space(api, token, args.space_id, args.repo_id, run, args.private)
    return url


def authenticate(api) -> str:
    from huggingface_hub import get_token
    from huggingface_hub.errors import HfHubHTTPError

    token = get_token()
    if not token:
        raise UsageError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (nothing was uploaded)")
    try:
        user = api.whoami(token=token)
    except network_errors() as err:  # a rejected token, or no connection at all
        status = getattr(getattr(err, "response", None), "status_code", None)
        if isinstance(err, HfHubHTTPError) and status in (401, 403):
            raise UsageError("the Hub rejected the token (HF_TOKEN or the login cache): create a token with write "
                             "access and log in again (nothing was uploaded)") from None
        raise _network_error(api, err) from None
    logger.info("logged in as %s", user.get("name", "?"))
    return token


def commit_run(api, token: str, repo_id: str, private: bool, card: str, files: dict[str, Path | bytes]) -> str:
    """Create the repo if needed, then one commit: the run's files added, stale ones deleted."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    try:
        api.create_repo(repo_id, private=private, exist_ok=True, token=token)
        remote = set(api.list_repo_files(repo_id, token=token))
        operations = [CommitOperationAdd("README.md", card.encode())]
        operations += [CommitOperationAdd(name, path if isinstance(path, bytes) else str(path))
                       for name, path in files.items()]
        stale = sorted(remote - set(files) - {"README.md"} - KEEP_REMOTE)
        operations += [CommitOperationDelete(name) for name in stale]
        info = api.create_commit(repo_id, operations, commit_message="Upload finsent adapter, card and results",
                                 token=token)
    except network_errors() as err:
        raise _network_error(api, err) from None
    if stale:
        logger.info("deleted %d files of an earlier push: %s", len(stale), ", ".join(stale))
    return info.commit_url


def space_settings(adapter_repo: str, run: dict) -> tuple[dict, dict, str]:
    """(front matter changes, Space variables, hardware advice) for a Space serving this run's adapter."""
    from finsent.space.embedded import EMBEDDED_MODEL_ID, GGUF_FILE, GGUF_REPO, GGUF_REVISION

    base = run["adapter"]["base_model_name_or_path"]
    four_bit = bool((run.get("info") or {}).get("base_quantization"))
    if base == EMBEDDED_MODEL_ID:  # the embedded SmolLM2: its GGUF is what loads
        models, preload = [base, GGUF_REPO, adapter_repo], [f"{GGUF_REPO} {GGUF_FILE} {GGUF_REVISION}", adapter_repo]
        hardware, advice = "cpu-basic", "cpu-basic is enough (135M parameters)"
    else:
        models, preload = [base, adapter_repo], [base, adapter_repo]
        hardware = "t4-small"
        advice = ("choose ZeroGPU in the Space's settings (free accounts: the app loads onto the GPU at start), "
                  "or a GPU such as t4-small; on a CPU a 4-bit Phi-2 scores about one headline a second")
    front = {"models": models, "preload_from_hub": preload, "suggested_hardware": hardware}
    variables = {"FINSENT_ADAPTER": adapter_repo, "FINSENT_BASE_MODEL": base,
                 "FINSENT_4BIT": "true" if four_bit else "false", "FINSENT_MCP": "true"}
    return front, variables, advice


def space_readme(readme: str, changes: dict) -> str:
    """space/README.md with its YAML front matter updated."""
    import yaml

    _, front, body = readme.split("---\n", 2)
    data = {**yaml.safe_load(front), **changes}
    return "---\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True) + "---\n" + body


SPACE = Path(__file__).resolve().parents[1] / "space"


def copy_space(target: Path) -> Path:
    """space/ as a Space holds it: top-level modules, no __init__.py (its app.py runs as a script), no caches and
    no GGUF file that export-gguf may have written there."""
    import shutil

    shutil.copytree(SPACE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "__init__.py", "*.gguf"))
    return target


def push_space(api, token: str, space_id: str, adapter_repo: str, run: dict, private: bool) -> None:
    """space/ as a Gradio Space that serves the adapter just pushed: its variables, models and hardware."""
    import tempfile

    front, variables, advice = space_settings(adapter_repo, run)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            copy = copy_space(Path(tmp) / "space")
            (copy / "README.md").write_text(space_readme((SPACE / "README.md").read_text(), front))
            api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True,
                            token=token)
            api.upload_folder(repo_id=space_id, repo_type="space", folder_path=str(copy), token=token,
                              delete_patterns=["*.py"], commit_message=f"Serve {adapter_repo}")
        for key, value in variables.items():
            api.add_space_variable(space_id, key, value, token=token)
    except network_errors() as err:
        raise _network_error(api, err) from None
    logger.info("pushed space/ to %s/spaces/%s with %s", api.endpoint, space_id,
                ", ".join(f"{k}={v}" for k, v in variables.items()))
    print(f"Space hardware: {advice}.")


def network_errors() -> tuple[type[Exception], ...]:
    """What a failed Hub request raises: HTTP errors, and the transport's own (httpx2 in huggingface_hub 2.x)."""
    import importlib

    from huggingface_hub.errors import HfHubHTTPError

    errors: list[type[Exception]] = [HfHubHTTPError, OSError]
    for transport in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(transport).HTTPError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def _network_error(api, err: Exception) -> UsageError:
    reason = first_line(err)
    return UsageError(f"could not complete the request to {api.endpoint} ({reason}); check the network and the "
                      "repository id, then run the same command again (a commit is all or nothing)")


if __name__ == "__main__":
    raise SystemExit(main())
