"""The README and docs/ as a newcomer reads them: every relative link lands on a file (and on a heading, with an
anchor), the front page links every docs page, the bash blocks call real `finsent` subcommands, scripts, make
targets and flags, and the quick start runs as written (on the local Hub, with the app line left to
tests/test_app.py and test_browser.py). The figures are tests/test_figures.py's."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest
from test_default_adapter import needs_embedded

from conftest import REPO, USER

README = (REPO / "README.md").read_text()
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```[ \t]*$", flags=re.S | re.M)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (outside code blocks), a repeat suffixed -1, -2 as GitHub does."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", path.read_text()), flags=re.M):
        name = anchor(heading)
        found.add(f"{name}-{seen[name]}" if name in seen else name)
        seen[name] = seen.get(name, 0) + 1
    return found


def relative_links(text: str) -> list[str]:
    """Targets of the Markdown links outside code, less the web ones."""
    prose = re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", prose) if not re.match(r"[a-z]+:", t)]


def broken_links(page: Path, root: Path = REPO) -> list[str]:
    broken = []
    for target in relative_links(page.read_text()):
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.is_relative_to(root) or not file.exists():
            broken.append(f"{target}: no such file")
        elif fragment and fragment not in anchors(file):
            broken.append(f"{target}: no such heading in {file.relative_to(root)}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_lands_on_a_file_and_heading(page):
    assert broken_links(page) == []


def test_a_wrong_link_is_caught(tmp_path):
    """The check above can fail: a missing page, a missing heading."""
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text("## Here\n[a](../README.md) [b](nowhere.md) [c](#here) [d](#there) [e](../README.md#results)\n")
    (tmp_path / "README.md").write_text("# x\n## Results\n")
    assert broken_links(page, tmp_path) == ["nowhere.md: no such file", "#there: no such heading in docs/page.md"]


def test_the_front_page_links_every_docs_page_and_stays_short():
    linked = {(REPO / t.partition("#")[0]).resolve() for t in relative_links(README)}
    assert set((REPO / "docs").glob("*.md")) <= linked
    assert len(README.splitlines()) <= 200
    first = re.search(r"^```bash\n(.*?)^```", README, flags=re.S | re.M).group(1)
    assert [line.split()[:2] for line in first.splitlines()] == [["make", "demo"], ["make", "test"]]


# --- the commands of every bash block ---

def bash_commands(text: str) -> list[list[str]]:
    """Each command of the bash blocks: continuation lines joined, comments dropped, split at | && ; and
    redirections, leading VAR=value assignments dropped."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            command: list[str] = []
            for token in shlex.split(line, comments=True) + ["|"]:
                if token in ("|", "&&", ";", ">", "<"):
                    while command and re.match(r"[A-Z_]+=", command[0]):
                        command.pop(0)
                    if command:
                        commands.append(command)
                    command = [] if token != ">" else ["<redirect>"]
                else:
                    command.append(token)
    return [c for c in commands if c[0] != "<redirect>"]


def source_flags(path: Path) -> set[str]:
    """Every option string a script's parser adds (the literal arguments of its add_argument calls)."""
    flags = {"-h", "--help"}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            flags |= {a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("-")}
    return flags


def flags_of(argv: list[str]) -> list[str]:
    return [a.split("=")[0] for a in argv if re.match(r"--?[a-zA-Z]", a)]


def script_calls(commands: list[list[str]]) -> list[tuple[str, list[str]]]:
    """(the script's path in the repository, its arguments) for `finsent SUB`, `python X.py`, `python -m
    finsent.x.y` and `accelerate launch [its own flags] X.py`; `finsent sweep --extra` passes on train's flags."""
    from finsent.train import cli

    calls = []
    for c in commands:
        if c[0] == "finsent" and len(c) > 1 and not c[1].startswith("-"):
            assert c[1] in cli.COMMANDS, f"no subcommand finsent {c[1]}"
            path = "/".join(cli.COMMANDS[c[1]].split(".")[1:]) + ".py"
            args = c[2:]
            if c[1] == "sweep" and "--extra" in args:
                args, extra = args[: args.index("--extra") + 1], args[args.index("--extra") + 1:]
                calls.append(("train/train.py", extra))
            calls.append((path, args))
        elif c[0] in ("python", "accelerate"):
            rest = c[2:] if c[:2] == ["accelerate", "launch"] else c[1:]
            if rest[:1] == ["-m"]:
                if rest[1].startswith("finsent."):  # finsent.eval.classify -> eval/classify.py
                    calls.append(("/".join(rest[1].split(".")[1:]) + ".py", rest[2:]))
                continue
            scripts = [i for i, a in enumerate(rest) if a.endswith(".py")]
            if scripts:
                calls.append((rest[scripts[0]], rest[scripts[0] + 1:]))
    return calls


def test_bash_blocks_use_real_scripts_flags_and_make_targets():
    """Every `finsent` subcommand and script a bash block calls exists, and each flag it passes is one its
    parser declares (read from the source, without importing it); `finsent train`'s TRL flags are the next
    test's. Each `make` target is the Makefile's."""
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), flags=re.M))
    unknown = []
    for page in PAGES:
        commands = bash_commands(page.read_text())
        for c in commands:
            if c[0] == "make":
                unknown += [f"{page.name}: make {t}" for t in c[1:] if t not in targets]
        for path, args in script_calls(commands):
            assert (REPO / path).is_file(), f"{page.name}: no script {path}"
            if path != "train/train.py":
                unknown += [f"{page.name}: {path} {f}" for f in flags_of(args) if f not in source_flags(REPO / path)]
    assert unknown == []


def test_bash_blocks_pass_train_only_flags_it_has():
    from finsent.train import train

    parser = train.make_parser()
    known = {flag for action in parser._actions for flag in action.option_strings} | {"--config"}  # TrlParser's
    used = {(page.name, f) for page in PAGES for path, args in script_calls(bash_commands(page.read_text()))
            if path == "train/train.py" for f in flags_of(args)}
    assert used and {(name, f) for name, f in used if f not in known} == set()


def test_a_wrong_flag_or_subcommand_is_caught():
    text = "```bash\nfinsent classify news.csv -o out.csv --chunk-rows 5\nmake demo\n```\n"
    [(path, args)] = script_calls(bash_commands(text))
    assert [f for f in flags_of(args) if f not in source_flags(REPO / path)] == ["--chunk-rows"]
    with pytest.raises(AssertionError, match="no subcommand finsent label"):
        script_calls(bash_commands("```bash\nfinsent label news.csv\n```\n"))


# --- the quick start, run ---

def quick_start() -> list[list[str]]:
    """The quick start's commands, continuation lines joined and comments dropped."""
    block = re.search(r"^## Quick start.*?^```bash\n(.*?)^```", README, flags=re.S | re.M).group(1)
    text = re.sub(r"\\\n\s*", " ", block)
    return [shlex.split(line.split("  #")[0]) for line in text.splitlines() if line.strip()]


@pytest.mark.slow
@needs_embedded
def test_the_quick_start_runs_as_written(local_hub, tmp_path, monkeypatch):
    from finsent.train import cli

    monkeypatch.chdir(REPO)  # the commands name repository paths (train/sample_headlines.csv)
    commands = quick_start()
    assert [c[:2] for c in commands] == [["make", "setup"], ["finsent", "train"], ["finsent", "evaluate"],
                                         ["finsent", "app"], ["export", "HF_TOKEN=hf_..."], ["finsent", "push"]]
    run = str(tmp_path / "quick")
    for command in commands:
        if command[1] not in ("train", "evaluate", "push"):
            continue  # the set-up made this environment; the app has its own tests; the token is the local Hub's
        argv = [run if arg == "runs/quick" else arg.replace("USER/", f"{USER}/") for arg in command[2:]]
        assert cli.main([command[1], *argv]) == 0, command
    assert set(local_hub.files(f"{USER}/finsent-quick")) >= {"adapter_model.safetensors", "README.md",
                                                               "eval_results.json"}
    assert "app.py" in local_hub.files(f"{USER}/finsent-quick-app", repo_type="space")
