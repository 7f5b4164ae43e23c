"""The `finsent` command: every subcommand listed, each one its script under another name."""

from __future__ import annotations

import argparse
import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from finsent.train import cli

FINSENT = Path(sys.executable).parent / "finsent"  # the console script pip installed beside this interpreter


def finsent(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(FINSENT), *args], cwd=REPO, capture_output=True, text=True)


def first_docstring_line(name: str) -> str:
    source = REPO / Path(*cli.COMMANDS[name].split(".")[1:]).with_suffix(".py")  # finsent.eval.x -> eval/x.py
    return ast.get_docstring(ast.parse(source.read_text())).splitlines()[0]


def test_help_lists_every_subcommand_with_its_docstring_summary():
    out = finsent("--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: finsent ")
    for name in cli.COMMANDS:
        assert f"  {name} " in out.stdout and first_docstring_line(name) in out.stdout, name
    assert {"train", "evaluate", "validate", "classify", "sweep", "export", "push", "app"} <= set(cli.COMMANDS)


def test_help_imports_no_subcommand_module():
    code = "import sys; from finsent.train import cli; cli.make_parser().format_help(); print(sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(ast.literal_eval(out))
    assert "torch" not in loaded and not loaded & set(cli.COMMANDS.values())


def test_version_is_the_projects():
    expected = re.search(r'^version = "(.+)"$', (REPO / "pyproject.toml").read_text(), re.MULTILINE)[1]
    out = finsent("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"finsent {expected}"


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_each_subcommand_is_its_script_with_its_flags(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([name, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: finsent {name} ")
    # the same flags as the script's own parser
    script = importlib.import_module(cli.COMMANDS[name]).make_parser()
    flags = {flag for action in script._actions if action.help != argparse.SUPPRESS for flag in action.option_strings}
    assert flags and all(flag in out for flag in flags)


@pytest.mark.parametrize("argv, problem", [(["tarin"], "unknown command 'tarin'"), ([], "no command given")])
def test_an_unknown_or_missing_subcommand_is_usage_the_list_and_one_line(argv, problem):
    out = finsent(*argv)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("usage: finsent ") and "  evaluate " in out.stderr
    assert out.stderr.strip().splitlines()[-1] == f"finsent: error: {problem}"
    assert "Traceback" not in out.stderr


def test_a_real_call_gives_the_scripts_result(tmp_path):
    (tmp_path / "run").mkdir()  # no adapter in it: export refuses with one line
    argv = [str(tmp_path / "run"), str(tmp_path / "out")]
    script = subprocess.run([sys.executable, "train/export.py", *argv], cwd=REPO, capture_output=True, text=True)
    command = finsent("export", *argv)
    assert script.returncode == command.returncode == 2
    assert command.stderr == script.stderr and command.stderr.startswith("error: ") and "not a finished" in command.stderr
    assert not (tmp_path / "out").exists()


def test_the_exit_status_of_a_main_that_returns_none_is_zero(monkeypatch):
    from finsent.space import app

    seen = []
    monkeypatch.setattr(app, "main", lambda argv: seen.append((sys.argv[0], argv)))  # returns None, as app.main
    assert cli.main(["app", "--port", "7861"]) == 0
    assert seen == [("finsent app", ["--port", "7861"])]
