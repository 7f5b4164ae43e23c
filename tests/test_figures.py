"""Every figure README.md and docs/ give comes from a recorded file, and these tests compare it with that file.

- The front page's results table: each row against the run its ROWS entry names (a row with no entry fails).
- The figures the docs give for the shipped adapter (CLAIMS: a sentence and the values the adapter's own
  files, space/default-adapter/eval_results.json, finsent.json, its recipe and its weights, say it must show).
- Every other measured figure (a decimal, a number in scientific notation, or a number with a unit: %, ×,
  ms, s, min, h, GiB, MB, headlines/s, ...) must occur in a source its paragraph names: a BENCHMARKS.md
  section it links (the whole file for a link without a heading), or a repository file it names in
  backticks. Else the paragraph must name it a one-off measurement with its date and machine, or the figure
  must be in NOT_MEASURED with the reason it is not a measurement (a version, a design constant, an example).
  Figures in bash blocks' comments have no source, so they fail: measurements go in the prose.

How each can fail is shown by test_a_changed_figure_fails: a table cell, a claimed figure and a BENCHMARKS
figure changed by one in the last digit, and a figure with no source, are each reported. A figure that
occurs in its section by coincidence passes the third check; the first two compare exact values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from conftest import REPO
from finsent.space.classifier import LABELS

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
DEFAULT = REPO / "space" / "default-adapter"


@dataclass(frozen=True)
class Records:
    """The shipped adapter's recorded files."""

    results: dict
    info: dict
    recipe: dict
    weights_bytes: int

    def run(self, name: str) -> dict:
        return self.results["runs"][name]

    def mft(self, name: str) -> tuple[int, int]:
        """(failures, cases) over the behaviour suite's minimum-functionality capabilities."""
        capabilities = [c for c in self.run(name)["behaviour"].values() if c["kind"] == "MFT"]
        return sum(c["failures"] for c in capabilities), sum(c["cases"] for c in capabilities)


@cache
def shipped() -> Records:
    return Records(json.loads((DEFAULT / "eval_results.json").read_text()),
                   json.loads((DEFAULT / "finsent.json").read_text()),
                   yaml.safe_load((REPO / "train" / "configs" / "default-embedded.yaml").read_text()),
                   (DEFAULT / "adapter_model.safetensors").stat().st_size)


def f3(x: float) -> str:
    return f"{x:.3f}"


def with_interval(run: dict, metric: str) -> str:
    """'0.857 [0.832, 0.879]': a metric of eval_results.json and its bootstrap interval, as the docs write it."""
    value = run["metrics"]["accuracy"] if metric == "accuracy" else run["metrics"]["macro"]["f1"]
    low, high = run["intervals"][metric]
    return f"{f3(value)} [{f3(low)}, {f3(high)}]"


# --- the front page's results table ---

# Each row's name as the table gives it -> (the eval_results.json that records it, the run in it), or (BENCHMARKS.md,
# the anchor of its section, the first cell of that section's table row: accuracy first, macro F1 last).
# A new row names its source here.
ROWS = {
    "SmolLM2-135M + the shipped adapter (fine-tuned)": ("space/default-adapter/eval_results.json", "fine_tuned"),
    "SmolLM2-135M alone (zero-shot)": ("space/default-adapter/eval_results.json", "base"),
    "TF-IDF + logistic regression, trained on the same rows": ("space/default-adapter/eval_results.json", "baseline"),
    "all-MiniLM-L6-v2 (22.6 M parameters) fine-tuned on the same rows": ("space/default-adapter/eval_results.json",
                                                                          "minilm"),
}


def recorded_cells(source: tuple[str, ...]) -> list[str]:
    """[accuracy, macro F1] with their intervals, as a ROWS source records them."""
    if source[0] == "BENCHMARKS.md":
        _, heading, first = source
        for line in sections(REPO / "BENCHMARKS.md")[heading].splitlines():
            cells = [cell.strip().replace("**", "") for cell in line.strip().strip("|").split("|")]
            if line.startswith("|") and cells[0] == first:
                return [cells[1], cells[-1]]
        return [f"no row {first!r} in BENCHMARKS.md#{heading}"]
    path, run_name = source
    run = json.loads((REPO / path).read_text())["runs"][run_name]
    return [with_interval(run, "accuracy"), with_interval(run, "macro_f1")]


def results_table(readme: str) -> list[list[str]]:
    """The rows of the table under README's '## Results', each a list of cells, bold marks dropped."""
    section = re.search(r"^## Results\n(.*?)(?=^## )", readme, flags=re.S | re.M).group(1)
    lines = [line for line in section.splitlines() if line.startswith("|")]
    assert lines[0].split("|")[1:4] == [" model ", " accuracy ", " macro F1 "], "the table's columns changed"
    return [[cell.strip().replace("**", "") for cell in line.strip("|").split("|")] for line in lines[2:]]


def table_problems(readme: str) -> list[str]:
    problems = []
    for name, accuracy, macro_f1 in results_table(readme):
        if name not in ROWS:
            problems.append(f"row {name!r}: name its source in ROWS ({__file__})")
            continue
        expected = recorded_cells(ROWS[name])
        if [accuracy, macro_f1] != expected:
            problems.append(f"row {name!r}: {[accuracy, macro_f1]} but {ROWS[name][0]} says {expected}")
    return problems


def test_the_results_table_is_what_each_row_records():
    assert results_table((REPO / "README.md").read_text()), "no rows"
    assert table_problems((REPO / "README.md").read_text()) == []


# --- the figures the docs give for the shipped adapter ---

class Claim(NamedTuple):
    """A sentence of a page (a regex over its paragraph, whitespace folded, bold marks dropped) whose groups
    must read as `expected` gives them from the shipped adapter's records."""

    page: str
    pattern: str
    expected: Callable[[Records], list[str]]


def _training_rows(r: Records) -> list[str]:
    """The PhraseBank rows it trained on: its training label counts less the templated rows'."""
    data = {label: r.info["train_label_counts"][label] - r.info["augment"]["counts"][label] for label in LABELS}
    return [f"{sum(data.values()):,}", *(f"{data[label]:,}" for label in LABELS), str(r.info["augment"]["rows"])]


CLAIMS = [
    Claim("docs/default-adapter.md", r"r (\d+) on every linear layer, ([\d.]+) MB of bf16 weights",
          lambda r: [str(r.recipe["lora_r"]), f"{r.weights_bytes / 1e6:.1f}"]),
    Claim("docs/default-adapter.md",
          r"accuracy (\S+ \[\S+, \S+\]), macro F1 (\S+) \(F1 per label: negative (\S+), neutral (\S+), positive "
          r"(\S+)\), against (\S+) for the base model alone and (\S+) for a TF-IDF",
          lambda r: [with_interval(r.run("fine_tuned"), "accuracy"), f3(r.run("fine_tuned")["metrics"]["macro"]["f1"]),
                     *(f3(r.run("fine_tuned")["metrics"]["per_label"][label]["f1"]) for label in LABELS),
                     f3(r.run("base")["metrics"]["accuracy"]), f3(r.run("baseline")["metrics"]["accuracy"])]),
    Claim("docs/default-adapter.md", r"expected calibration error of (\S+) \(after its temperature, (\S+)\)",
          lambda r: [f3(r.run("fine_tuned")["calibration"]["ece"]), str(r.info["temperature"])]),
    Claim("docs/default-adapter.md",
          r"\((\S+): (\S+) negative, (\S+) neutral, (\S+) positive, the natural mix\) and the (\d+) templated rows",
          _training_rows),
    Claim("docs/default-adapter.md",
          r"(\d+) epochs, learning rate (\S+), LoRA r (\d+) / alpha (\d+) on every linear layer, prompt version (\d)",
          lambda r: [str(r.recipe["num_train_epochs"]), f"{r.recipe['learning_rate']:.0e}".replace("e-0", "e-"),
                     str(r.recipe["lora_r"]), str(r.recipe["lora_alpha"]), str(r.info["prompt_version"])]),
    Claim("docs/default-adapter.md", r"temperature (\S+) that the cross-validation fitted",
          lambda r: [str(r.info["temperature"])]),
    Claim("docs/evaluate.md",
          r"The shipped adapter: (\S+ \[\S+, \S+\]), (\S+) over its base \(p ≈ (\S+)\), (\S+) over TF-IDF "
          r"\(p ≈ (\S+)\), ECE (\S+) after its temperature",
          lambda r: [with_interval(r.run("fine_tuned"), "accuracy"),
                     *(value for other in ("base", "baseline")
                       for value in (f"{r.results['comparisons'][f'fine_tuned vs {other}']['accuracy_difference']:+.3f}",
                                     f"{r.results['comparisons'][f'fine_tuned vs {other}']['mcnemar_p']:.0e}")),
                     f3(r.run("fine_tuned")["calibration"]["ece"])]),
    Claim("docs/evaluate.md",
          r"Of the (\d+) minimum-functionality cases the shipped adapter fails (\d+) \((\S+) %; the base alone "
          r"(\d+), (\S+) %; the TF-IDF baseline (\d+), (\S+) %",
          lambda r: [str(r.mft("fine_tuned")[1]),
                     *(value for name in ("fine_tuned", "base", "baseline")
                       for value in (str(r.mft(name)[0]), f"{100 * r.mft(name)[0] / r.mft(name)[1]:.1f}"))]),
]
CLAIMS.append(Claim("docs/evaluate.md", r"strengthens by more than ([\d.]+)\)\. Each capability's failure rate comes "
                    r"with a (\d+) % Wilson interval",
                    lambda r: [str(r.results["behaviour"]["margin"]), f"{100 * r.results['behaviour']['level']:.0f}"]))
# The table rows are claims too, so that the third check leaves their figures to the first.
TABLE_CLAIMS = [Claim("README.md", r"\| " + re.escape(name) + r" \| ([^|]+) \| ([^|]+) \|", lambda r: [])
                for name in ROWS]


def blocks(text: str) -> list[str]:
    """A page's paragraphs, whitespace folded and bold marks dropped; a table joins the paragraph before it, and
    so does a list after a paragraph that ends with ':'; a bash block's comments are a paragraph of their own,
    other code is left out."""
    out: list[str] = []
    for part in re.split(r"(^```.*?^```[ \t]*$)", text, flags=re.S | re.M):
        if part.startswith("```"):
            if part.startswith("```bash"):
                out.append(" ".join(line.split("#", 1)[1] for line in part.splitlines()[1:-1] if "#" in line))
            continue
        for paragraph in re.split(r"\n\s*\n", part):
            if out and (paragraph.lstrip().startswith("|") or paragraph.lstrip().startswith("- ")
                        and out[-1].rstrip().endswith(":")):
                out[-1] += "\n" + paragraph
            elif paragraph.strip():
                out.append(paragraph)
    return [" ".join(b.replace("**", "").split()) for b in out]


def claim_problems(pages: dict[str, str], claims: list[Claim], records: Records) -> list[str]:
    problems = []
    for claim in claims:
        found = [m for b in blocks(pages[claim.page]) for m in [re.search(claim.pattern, b)] if m]
        if not found:
            problems.append(f"{claim.page}: no sentence matches {claim.pattern!r}: update CLAIMS with it")
        elif list(found[0].groups()) != claim.expected(records):
            problems.append(f"{claim.page}: {list(found[0].groups())} but the records say {claim.expected(records)}")
    return problems


def test_the_docs_give_the_shipped_adapters_recorded_figures():
    pages = {str(p.relative_to(REPO)): p.read_text() for p in PAGES}
    assert claim_problems(pages, CLAIMS, shipped()) == []


# --- every other figure: in the source its paragraph names ---

UNIT = r"(?:\s?(?:%|×|x\b|ms\b|s\b|min\b|minutes?\b|h\b|hours?\b|seconds?\b|GiB\b|MiB\b|GB\b|MB\b|KB\b|" \
       r"(?:headlines|rows|tokens|calls)/s\b|GFLOP/s\b|TFLOP\b))"
FIGURE = re.compile(
    r"(?<![\w.-])(?:\d+ h \d+ min \d+ s|\d+ min \d+ s"  # a duration, checked whole
    r"|[-−+±]?\d[\d,]*\.\d+(?![.\d])(?:e-\d+)?" + UNIT + "?"  # a decimal, with or without a unit
    r"|[-−+]?\d(?:\.\d+)?e-\d+"  # scientific notation
    r"|[-−+]?\d[\d,]*" + UNIT + ")")  # an integer with a unit
ONE_OFF = re.compile(r"one-off measurement.*\b20\d\d-\d\d\b.*\b(Xeon|EPYC|H200|T4)\b|"
                     r"one-off measurement.*\b(Xeon|EPYC|H200|T4)\b.*\b20\d\d-\d\d\b")

# Figures that are no measurement, per page, and why.
NOT_MEASURED = {
    ("README.md", "3.0"): "the data's licence, CC BY-NC-SA 3.0",
    ("README.md", "3.10"): "the Python version the set-up needs",
    ("README.md", "95 %"): "the intervals' level",
    ("docs/evaluate.md", "95 %"): "the intervals' level",
    ("docs/evaluate.md", "2 %"): "a behaviour case, as an example",
    ("docs/evaluate.md", "10 %"): "a behaviour case, as an example",
    ("docs/evaluate.md", "1 %"): "a behaviour case, as an example",
    ("docs/evaluate.md", "25 %"): "a behaviour case, as an example",
    ("docs/signal.md", "95 %"): "the intervals' level",
    ("docs/app.md", "95 %"): "the Signal tab's intervals' level",
}


def number(figure: str) -> str:
    """The figure's number as a source writes it: no sign, no unit."""
    return re.match(r"[-−+±]?([\d,.]+(?:e-\d+)?)", figure).group(1).rstrip(".,")


def occurs(figure: str, text: str) -> bool:
    if re.fullmatch(r"[\d hmins]+", figure):  # a duration: the whole of it
        return figure in " ".join(text.split())
    return re.search(r"(?<![\d.,])" + re.escape(number(figure)) + r"(?![\d])", text) is not None


def sections(path: Path) -> dict[str, str]:
    """A Markdown file's text under each heading's anchor, down to the next heading of the same or higher level."""
    from test_readme import FENCE, anchor

    text = path.read_text()
    prose = FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)  # no headings in code; same offsets
    found = [(m.start(), len(m.group(1)), anchor(m.group(2))) for m in re.finditer(r"^(#+) (.+)$", prose, re.M)]
    out = {}
    for i, (start, level, name) in enumerate(found):
        end = next((s for s, lv, _ in found[i + 1:] if lv <= level), len(text))
        out.setdefault(name, text[start:end])
    return out


def sources(block: str, page: Path) -> list[str]:
    """The texts a paragraph names: the BENCHMARKS.md sections it links, and the repository files it names."""
    texts = []
    for target in re.findall(r"\]\(([^)\s]+)\)", block):
        path, _, fragment = target.partition("#")
        if path.endswith("BENCHMARKS.md"):
            benchmarks = (page.parent / path).resolve()
            texts.append(sections(benchmarks).get(fragment, "") if fragment else benchmarks.read_text())
    for name in re.findall(r"`([\w./-]+\.\w+)`", block):
        if (REPO / name).is_file():
            texts.append((REPO / name).read_text(errors="replace"))
    return texts


def untraced(page_name: str, text: str, claims: list[Claim]) -> list[str]:
    problems = []
    for block in blocks(text):
        prose = block
        for claim in claims:
            if claim.page == page_name:
                prose = re.sub(claim.pattern, " ", prose)  # checked exactly above
        named = sources(block, REPO / page_name)
        prose = re.sub(r"\]\([^)]*\)|`[^`]*`", " ", prose)  # link targets and code name things, measure nothing
        for figure in (m.group(0).strip() for m in FIGURE.finditer(prose)):
            if (page_name, figure) in NOT_MEASURED or ONE_OFF.search(block):
                continue
            if not any(occurs(figure, source) for source in named):
                where = "the sources it names" if named else "no source: link its BENCHMARKS section"
                problems.append(f"{page_name}: {figure!r} not in {where} («{block[:70]}…»)")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_figure_is_in_the_source_its_paragraph_names(page):
    name = str(page.relative_to(REPO))
    assert untraced(name, page.read_text(), CLAIMS + TABLE_CLAIMS) == []


def test_each_exception_and_claim_is_still_on_its_page():
    """NOT_MEASURED and CLAIMS name figures the pages still give: a dead entry would excuse a later figure."""
    for page, figure in NOT_MEASURED:
        found = [m.group(0).strip() for b in blocks((REPO / page).read_text()) for m in FIGURE.finditer(b)]
        assert figure in found, (page, figure)
    assert {claim.page for claim in CLAIMS} <= {str(p.relative_to(REPO)) for p in PAGES}


def test_a_changed_figure_fails():
    """Each check reports a figure changed by one in its last digit, and one with no source."""
    readme = (REPO / "README.md").read_text()
    assert table_problems(readme.replace("**0.857** [0.832", "**0.858** [0.832", 1))
    assert table_problems(readme.replace("| 0.823 [0.798, 0.848] |", "| 0.824 [0.798, 0.848] |", 1))  # BENCHMARKS'

    pages = {str(p.relative_to(REPO)): p.read_text() for p in PAGES}
    page = "docs/default-adapter.md"
    assert claim_problems({page: pages[page].replace("neutral 0.819", "neutral 0.818", 1)},
                          [c for c in CLAIMS if c.page == page], shipped())

    page = "docs/default-adapter.md"
    changed = pages[page].replace("22 min 43 s", "22 min 44 s", 1)
    assert changed != pages[page]
    assert [p for p in untraced(page, changed, CLAIMS) if "22 min 44 s" in p]
    changed = pages[page].replace("at 1.7 GiB", "at 1.8 GiB", 1)
    assert [p for p in untraced(page, changed, CLAIMS) if "1.8 GiB" in p]

    unsourced = "It labels 61.2 headlines/s on a laptop.\n"
    assert untraced("docs/x.md", unsourced, []) == [
        "docs/x.md: '61.2 headlines/s' not in no source: link its BENCHMARKS section («It labels 61.2 headlines/s on "
        "a laptop.…»)"]
    dated = "A one-off measurement on the 2-core AMD EPYC, 2026-12-04: 61.2 headlines/s.\n"
    assert untraced("docs/x.md", dated, []) == []
