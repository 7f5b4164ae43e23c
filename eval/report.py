"""What an evaluation writes: eval_results.json, a Markdown report, figures, TensorBoard scalars."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from finsent.eval import plots
from finsent.space.classifier import LABELS
from finsent.space.figures import behaviour_table, words_line

logger = logging.getLogger(__name__)

RESULTS_FILE = "eval_results.json"
REPORT_FILE = "eval_report.md"
FIGURES_DIR = "figures"
RUN_TITLES = {"base": "Base model (zero-shot)", "fine_tuned": "Fine-tuned (base + adapter)",
              "baseline": "TF-IDF + logistic regression", "minilm": "all-MiniLM-L6-v2 classifier"}
RUNS = tuple(RUN_TITLES)  # the order of the report's and the card's columns


def title_of(run: str) -> str:
    """A run's title, or an other evaluation's path (--compare) in code style."""
    return RUN_TITLES.get(run, f"`{run}`")


def write_text_atomic(path: Path, text: str) -> None:
    plots.write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def evaluation_figures(results: dict, output_dir: Path) -> dict[Path, object]:
    """{path stem: figure}: per-class bars, a confusion matrix and (score mode) a reliability diagram for each run,
    and before/after when both ran."""
    folder, figures = output_dir / FIGURES_DIR, {}
    for name in ("base", "fine_tuned"):
        if name in results["runs"]:
            run, title = results["runs"][name], RUN_TITLES[name]
            figures[folder / f"per_class_{name}"] = plots.per_class_bars(run["metrics"], f"{title}: precision, recall, F1")
            figures[folder / f"confusion_{name}"] = plots.confusion_heatmap(run["metrics"], f"{title}: confusion matrix")
            if run.get("calibration"):
                figures[folder / f"reliability_{name}"] = plots.reliability_diagram(run["calibration"],
                                                                                    f"{title}: reliability")
    if {"base", "fine_tuned"} <= results["runs"].keys():
        figures[folder / "before_after"] = plots.before_after(results["runs"]["base"]["metrics"],
                                                              results["runs"]["fine_tuned"]["metrics"])
    return figures


def write_figures(results: dict, output_dir: Path) -> list[Path]:
    """Every evaluation figure as HTML (plotly.js once, beside them) and PNG (one browser session for all)."""
    return plots.write_figures(evaluation_figures(results, output_dir))


# The report's one section that quotes test texts (data under its own licence): push.py cuts it out by default.
TEXTS_BEGIN = "<!-- test texts: left out of a Hub push unless push.py --include-texts -->"
TEXTS_END = "<!-- end of test texts -->"


def without_texts(report: str) -> str:
    """The report without its section of test texts."""
    while TEXTS_BEGIN in report and TEXTS_END in report:
        begin, end = report.index(TEXTS_BEGIN), report.index(TEXTS_END) + len(TEXTS_END)
        report = report[:begin].rstrip("\n") + "\n" + report[end:].lstrip("\n")
    return report


def render_report(results: dict, figures: list[Path], output_dir: Path, mistakes=None) -> str:
    """The Markdown report; `mistakes` = (run name, {true label: [(text, prediction, probability, why)]}) adds a
    section of the most confident wrong answers and the words that drove them, between TEXTS_BEGIN and TEXTS_END."""
    runs = results["runs"]
    names = [n for n in RUNS if n in runs]
    lines = [
        "# Evaluation",
        "",
        f"- Base model: `{results['base_model']}`" + (f"; adapter: `{results['adapter']}`" if results["adapter"] else ""),
        f"- Data: `{results['data_file']}` ({results['rows']} headlines; sha256 `{results['data_sha256']}`)",
        f"- Mode: `{results['mode']}`; date: {results['created']}",
        *_data_notes(results),
        "",
        "| | " + " | ".join(RUN_TITLES[n] for n in names) + " |",
        "| --- |" + " ---: |" * len(names),
    ]
    # (title, point value from metrics, its interval from intervals or None)
    rows = [("Accuracy", lambda m: m["accuracy"], lambda i: i["accuracy"]),
            ("Macro F1", lambda m: m["macro"]["f1"], lambda i: i["macro_f1"]),
            ("Weighted F1", lambda m: m["weighted"]["f1"], lambda i: None)]
    rows += [(f"Accuracy, {label}", lambda m, label=label: m["per_label"][label]["accuracy"],
              lambda i, label=label: i["per_label"][label]["accuracy"]) for label in LABELS]
    rows += [(f"F1, {label}", lambda m, label=label: m["per_label"][label]["f1"],
              lambda i, label=label: i["per_label"][label]["f1"]) for label in LABELS]
    for title, get, get_interval in rows:
        cells = []
        for n in names:
            interval = get_interval(runs[n]["intervals"]) if runs[n].get("intervals") else None
            cells.append(f"{get(runs[n]['metrics']):.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]"
                                                           if interval else ""))
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines.append("| Invalid answers | " + " | ".join(f"{runs[n]['metrics']['invalid']}" for n in names) + " |")
    lines.append("| Headlines/s | " + " | ".join(f"{runs[n]['headlines_per_second']:.1f}" for n in names) + " |")
    if "minilm" in runs:
        lines += ["", f"The {RUN_TITLES['minilm']} trained for {runs['minilm']['train_seconds']:.0f} s on "
                      f"{runs['minilm']['train_rows']} rows first; its headlines/s count scoring alone (the TF-IDF "
                      "baseline's count its fitting too)."]
    lines += _uncertainty_notes(results, names)
    for name in names:
        run = runs[name]
        matrix = run["metrics"]["confusion_matrix"]
        lines += ["", f"## {RUN_TITLES[name]}", "", f"{run['description']}", "", "```",
                  run["metrics"]["classification_report"].rstrip(), "```", "",
                  "| true \\ predicted | " + " | ".join(matrix["predicted"]) + " |",
                  "| --- |" + " ---: |" * len(matrix["predicted"])]
        lines += [f"| {label} | " + " | ".join(map(str, row)) + " |"
                  for label, row in zip(matrix["labels"], matrix["matrix"], strict=True)]
    if mistakes:
        name, worst = mistakes
        lines += ["", TEXTS_BEGIN, "", f"## Most confident mistakes: {RUN_TITLES[name]}", "",
                  "The wrong answers it gave with the highest probability, per true label (test texts quoted), and "
                  "the words that pushed it most toward its answer: how much that answer's probability falls when "
                  "the word is left out (space/explain.py).", ""]
        for label, rows in worst.items():
            lines += [f"### True label: {label}", "", "| headline | predicted | probability | driven by |",
                      "| --- | --- | ---: | --- |"]
            lines += [f"| {text.replace('|', '&#124;')} | {predicted} | {prob:.3f} | "
                      f"{words_line(why).replace('|', '&#124;')} |" for text, predicted, prob, why in rows]
            lines += [""] if rows else ["None.", ""]
        lines += [TEXTS_END]
    if results.get("behaviour"):
        lines += ["", *behaviour_lines(results)]
    pictures = [p for p in figures if p.suffix == ".png"] or [p for p in figures if p.suffix == ".html"]
    if pictures:
        lines += ["", "## Figures", ""]
        for path in pictures:
            rel = path.relative_to(output_dir).as_posix()
            lines.append(f"![{path.stem}]({rel})" if path.suffix == ".png" else f"- [{path.stem}]({rel})")
    return "\n".join(lines) + "\n"


def behaviour_lines(results: dict, examples: int = 3) -> list[str]:
    """The behaviour section: eval/behaviour.py's table for every run, then the worst failing cases of each
    capability for the fine-tuned model (else the first run). They are the suite's own fictional sentences, so
    they are quoted outside the test-text markers."""
    runs = results["runs"]
    shown = next((name for name in ("fine_tuned", *runs) if runs.get(name, {}).get("behaviour")), None)
    if shown is None:
        return []
    lines = ["## Behaviour (CheckList for finance)", "",
             behaviour_table(results, {name: title_of(name) for name in runs}), "",
             f"### Failing cases: {title_of(shown)}", ""]
    for capability in runs[shown]["behaviour"].values():
        lines += [f"- **{capability['title']}** ({capability['kind']}): {capability['failures']} of "
                  f"{capability['cases']} failed" + (", e.g." if capability["failing"] else ".")]
        lines += [f"  - {_failing(case)}" for case in capability["failing"][:examples]]
    return lines


def _failing(case: dict) -> str:
    """One failing case on one line: MFT, INV or DIR, told apart by what it records."""
    quoted = [f"\"{text}\"" for text in case["texts"]]
    if "expected" in case:
        driven = f"; driven by {words_line(case['why'])}" if case.get("why") else ""
        return f"{quoted[0]}: {case['predicted']} ({case['probability']:.2f}), expected {case['expected']}{driven}"
    if "label" in case:
        a, b = case["probabilities"]
        return f"P({case['label']}) {a:.2f} for {quoted[0]}, {b:.2f} for {quoted[1]}"
    return f"{quoted[0]}: {case['predicted'][0]}; {quoted[1]}: {case['predicted'][1]}"


def _uncertainty_notes(results: dict, names: list[str]) -> list[str]:
    """How the intervals were made, the paired comparisons, and calibration."""
    runs, lines = results["runs"], []
    made = next((runs[n]["intervals"] for n in names if runs[n].get("intervals")), None)
    if made:
        lines += ["", f"Brackets: {made['level']:.0%} intervals, {made['method']} ({made['samples']} resamples, "
                      f"seed {made['seed']})."]
    comparisons = results.get("comparisons") or {}
    if comparisons:
        lines += ["", "## Paired comparisons (same headlines)", "",
                  "| | accuracy difference | 95 % interval | only the fine-tuned right | only the other right "
                  "| McNemar exact p |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for name, c in comparisons.items():
            other = title_of(name.split(" vs ", 1)[1])
            lines.append(f"| fine-tuned vs {other} | {c['accuracy_difference']:+.3f} | [{c['interval'][0]:+.3f}, "
                         f"{c['interval'][1]:+.3f}] | {c['only_a_right']} | {c['only_b_right']} | "
                         f"{c['mcnemar_p']:.2g} |")
    calibrated = [n for n in names if runs[n].get("calibration")]
    if calibrated:
        lines += ["", "## Calibration", "", "Expected calibration error of the top label's probability "
                  f"({len(runs[calibrated[0]]['calibration']['bins'])} equal-width bins): "
                  + "; ".join(f"{RUN_TITLES[n]} {runs[n]['calibration']['ece']:.3f}" for n in calibrated) + "."]
    return lines


def _data_notes(results: dict) -> list[str]:
    """What was left out or reweighted, and which label prior decided; nothing for a plain evaluation."""
    notes = []
    skipped = results.get("skipped_malformed") or []
    if skipped:
        notes.append(f"- Skipped {len(skipped)} malformed row(s): " + "; ".join(skipped))
    if results.get("excluded_training_texts"):
        notes.append(f"- Left out {results['excluded_training_texts']} rows whose text the adapter was trained or "
                     "validated on")
    if results.get("label_mix"):
        mix = ", ".join(f"{label} {share:.1%}" for label, share in results["label_mix"].items())
        notes.append(f"- Scores estimated for a label mix of {mix}: each label's rows weighted to its share "
                     "(confusion matrices hold expected counts)")
    priors = {run.get("label_prior") for run in results["runs"].values() if run.get("label_prior")}
    if priors:
        notes.append(f"- Label prior: {', '.join(sorted(map(str, priors)))} (the adapter's scores shifted from its "
                     "training label mix)")
    return notes


def log_to_tensorboard(results: dict, run_dir: Path) -> Path | None:
    """Test-set accuracy (overall and per label) into the training run's TensorBoard logs, if it has any."""
    event_dirs = sorted({p.parent for p in (run_dir / "runs").rglob("events.out.tfevents.*")},
                        key=lambda p: p.stat().st_mtime)
    if not event_dirs:
        return None
    from torch.utils.tensorboard import SummaryWriter

    step = _last_global_step(run_dir)
    with SummaryWriter(log_dir=str(event_dirs[-1])) as writer:
        for name, prefix in (("fine_tuned", "test"), ("base", "test_base")):
            if name not in results["runs"]:
                continue
            metrics = results["runs"][name]["metrics"]
            writer.add_scalar(f"{prefix}/accuracy", metrics["accuracy"], step)
            writer.add_scalar(f"{prefix}/macro_f1", metrics["macro"]["f1"], step)
            for label in LABELS:
                writer.add_scalar(f"{prefix}/accuracy_{label}", metrics["per_label"][label]["accuracy"], step)
    return event_dirs[-1]


def _last_global_step(run_dir: Path) -> int:
    states = [json.loads(p.read_text()).get("global_step", 0) for p in run_dir.glob("checkpoint-*/trainer_state.json")]
    return max(states, default=0)
