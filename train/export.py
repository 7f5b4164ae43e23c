"""Turn a trained run into a self-contained adapter folder, as shipped in space/default-adapter/.

    python train/export.py runs/default space/default-adapter

Copies what loading needs and what documents the run: adapter_config.json, the
adapter weights cast to bf16 (half the bytes; the evaluation below scores these
very weights), finsent.json, training_config.yaml and split/summary.json. It
copies nothing that holds the data set's text (no split CSVs) and no tokenizer
(the base's serves). Then it evaluates the folder as it now is, like
`eval/evaluate.py --adapter FOLDER --behaviour` (the test split drawn again from
the source the run recorded, checked by its sha256; the behavioural suite of
eval/behaviour.py), and renders the model card as `train/push.py` does. All of
it is written beside the target and renamed into place, so a failure leaves the
target as it was.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from finsent.eval import evaluate
from finsent.model_card.card import build_card
from finsent.space.adapter_info import INFO_FILE
from finsent.train.data import UsageError

logger = logging.getLogger("finsent.export")

COPIED = ("adapter_config.json", INFO_FILE, "training_config.yaml", "split/summary.json")
WEIGHTS = "adapter_model.safetensors"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="the run folder train/train.py wrote")
    parser.add_argument("target", help="the adapter folder to write (replaced if it exists)")
    parser.add_argument("--repo-id", help="the repository id the card names (default: the target folder)")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16",
                        help="dtype of the exported LoRA weights")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    args = make_parser().parse_args(argv)
    try:
        export(args)
    except UsageError as err:  # the user's to fix: one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def export(args: argparse.Namespace) -> Path:
    run, target = Path(args.run), Path(args.target)
    missing = [name for name in (WEIGHTS, *COPIED) if not (run / name).is_file()]
    if missing:
        raise UsageError(f"{run}: not a finished training run ({', '.join(missing)} missing); "
                         "train it with train/train.py first")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        tmp.chmod(0o755)
        for name in COPIED:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(run / name, tmp / name)
        cast_weights(run / WEIGHTS, tmp / WEIGHTS, args.dtype)
        # no quoted test texts: this folder ships (the default adapter) and the data keeps its own licence; the
        # behavioural suite's sentences are fictional, so its failing cases may be shown
        evaluate.evaluate(evaluate.make_parser().parse_args(["--adapter", str(tmp), "--error_examples", "0",
                                                             "--behaviour"]))
        # PNG figures only: the HTML ones need plotly.min.js beside them (4.6 MB), too much for a shipped folder
        for path in [*(tmp / "figures").glob("*.html"), tmp / "figures" / "plotly.min.js"]:
            path.unlink(missing_ok=True)
        for name in ("eval_results.json", "eval_report.md"):  # name the folder it lives in from now on
            path = tmp / name
            path.write_text(path.read_text().replace(str(tmp), str(target)))
        (tmp / "README.md").write_text(str(build_card(tmp, args.repo_id or str(target))))
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
            target.rename(old / target.name)
            tmp.rename(target)
            shutil.rmtree(old)
        else:
            tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("exported %s to %s", run, target)
    return target


def cast_weights(source: Path, target: Path, dtype: str) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(source)
    save_file({name: t.to(getattr(torch, dtype)).contiguous() for name, t in tensors.items()}, target,
              metadata={"format": "pt"})
    target.chmod(0o644)


if __name__ == "__main__":
    raise SystemExit(main())
