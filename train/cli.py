"""The `finsent` command: each of the project's scripts as a subcommand, with its own flags and help.

    finsent --help
    finsent app --adapter none      # = python space/app.py --adapter none

`finsent NAME ARGS` runs the script's `main(ARGS)` in this process and exits with its status, so
`finsent train ...` is `python train/train.py ...`, `finsent app ...` is `python space/app.py ...`.
`finsent --help` lists the subcommands with the first line of each script's docstring, read from its
source without importing it (the scripts import torch and transformers, seconds each).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys
from importlib.metadata import version
from pathlib import Path

# subcommand -> the module whose main(argv) it runs
COMMANDS = {
    "train": "finsent.train.train",
    "sweep": "finsent.train.sweep",
    "validate": "finsent.eval.validate",
    "evaluate": "finsent.eval.evaluate",
    "classify": "finsent.eval.classify",
    "signal": "finsent.eval.aggregate",
    "export": "finsent.train.export",
    "export-gguf": "finsent.train.export_gguf",
    "push": "finsent.train.push",
    "app": "finsent.space.app",
}


def summary(module: str) -> str:
    """The first line of the module's docstring, from its source file: importing it would be slow."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        return f"(missing: no module {module})"
    docstring = ast.get_docstring(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))) or ""
    return docstring.splitlines()[0] if docstring else ""


def command_list() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {summary(module)}" for name, module in COMMANDS.items()]
    return "commands (`finsent COMMAND --help` for its flags):\n" + "\n".join(lines)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finsent", usage="%(prog)s [-h] [--version] COMMAND [ARGS ...]",
                                     description=__doc__, epilog=command_list(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('finsent')}")
    parser.add_argument("command", nargs="?", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = make_parser()
    args = parser.parse_args(argv[:1])  # -h and --version stop here; what follows the command is the command's
    if args.command not in COMMANDS:
        problem = f"unknown command {args.command!r}" if args.command else "no command given"
        print(f"{parser.format_usage()}\n{command_list()}\nfinsent: error: {problem}", file=sys.stderr)
        return 2
    return run(args.command, argv[1:])


def run(name: str, argv: list[str]) -> int:
    """The script's main(argv) with sys.argv[0] = `finsent NAME`: argparse and TRL's TrlParser take their
    usage line's program name from it."""
    saved = sys.argv
    sys.argv = [f"finsent {name}", *argv]
    try:
        return importlib.import_module(COMMANDS[name]).main(argv) or 0  # space/app.py's main returns None
    finally:
        sys.argv = saved


if __name__ == "__main__":
    raise SystemExit(main())
