"""The evaluation figures (and the behaviour table), one function each: the evaluation report, the model card and
the Space call them.

`metrics` is the dict that `eval/metrics.py`'s `compute_metrics` returns (and that
eval_results.json stores per run). This folder deploys alone as the Space, so the
figures live here and `eval/plots.py` re-exports them beside its file writer.
"""

from __future__ import annotations

import plotly.graph_objects as go

try:  # inside the project: finsent.space; deployed alone as a Space: top-level modules
    from .classifier import LABELS
except ImportError:
    from classifier import LABELS

SCORES = (("precision", "Precision"), ("recall", "Recall"), ("f1", "F1"))  # (metrics key, legend name)


def per_class_bars(metrics: dict, title: str = "Precision, recall and F1 per sentiment") -> go.Figure:
    """Grouped bars: one group per label, one bar each for precision, recall and F1, values on the bars."""
    per_label = metrics["per_label"]
    fig = go.Figure()
    for key, name in SCORES:
        values = [per_label[label][key] for label in LABELS]
        fig.add_trace(
            go.Bar(
                name=name,
                x=list(LABELS),
                y=values,
                text=[f"{v:.2f}" for v in values],
                textposition="outside",
                cliponaxis=False,  # a bar at 1.0 keeps its value visible above the axis
                customdata=[per_label[label]["support"] for label in LABELS],
                hovertemplate=f"{name} %{{y:.3f}}<br>%{{x}}: %{{customdata}} headlines<extra></extra>",
            )
        )
    fig.update_layout(title=title, barmode="group", xaxis_title="Sentiment", legend_title_text="Score")
    fig.update_yaxes(range=[0, 1], title_text="Score")
    return fig


def confusion_heatmap(metrics: dict, title: str = "Confusion matrix") -> go.Figure:
    """Counts with true labels as rows (top to bottom) and predictions as columns, each cell annotated.

    The `invalid` column (answers that named no label) is shown only when there are any.
    """
    confusion = metrics["confusion_matrix"]
    predicted, matrix = list(confusion["predicted"]), [list(row) for row in confusion["matrix"]]
    if not any(row[-1] for row in matrix):  # the last column is `invalid`
        predicted, matrix = predicted[:-1], [row[:-1] for row in matrix]
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=predicted,
            y=list(confusion["labels"]),
            text=matrix,
            texttemplate="%{text}",  # plotly.js picks a text colour that contrasts with each cell
            colorscale="Blues",
            colorbar_title_text="Count",
            hovertemplate="true %{y}, predicted %{x}: %{z} headlines<extra></extra>",
        )
    )
    fig.update_layout(title=title, xaxis_title="Predicted", yaxis_title="True")
    fig.update_yaxes(autorange="reversed")  # first label on top, as the matrix reads
    return fig


def before_after(before: dict, after: dict, title: str = "Before and after fine-tuning") -> go.Figure:
    """Grouped bars comparing two evaluations: accuracy, macro F1 and each label's accuracy."""
    names = ["accuracy", "macro F1", *(f"{label}<br>accuracy" for label in LABELS)]  # <br>: no slanted ticks
    fig = go.Figure()
    for name, metrics in (("Before fine-tuning", before), ("After fine-tuning", after)):
        values = [
            metrics["accuracy"],
            metrics["macro"]["f1"],
            *(metrics["per_label"][label]["accuracy"] for label in LABELS),
        ]
        fig.add_trace(
            go.Bar(
                name=name,
                x=names,
                y=values,
                text=[f"{v:.2f}" for v in values],
                textposition="outside",
                cliponaxis=False,
                hovertemplate=f"{name}<br>%{{x}} %{{y:.3f}}<extra></extra>",
            )
        )
    fig.update_layout(title=title, barmode="group", legend_title_text="Model")
    fig.update_yaxes(range=[0, 1], title_text="Score")
    return fig


def reliability_diagram(calibration: dict, title: str = "Reliability: confidence against accuracy") -> go.Figure:
    """The top label's probability, binned, against how often it was right; the diagonal is perfect calibration.

    `calibration` is what eval/uncertainty.py's `calibration` returns (eval_results.json per run).
    """
    bins = [b for b in calibration["bins"] if b["n"]]
    fig = go.Figure()
    fig.add_trace(go.Bar(
        name="Accuracy", x=[(b["lower"] + b["upper"]) / 2 for b in bins], y=[b["accuracy"] for b in bins],
        width=[b["upper"] - b["lower"] for b in bins], customdata=[[b["n"], b["confidence"]] for b in bins],
        hovertemplate="confidence %{customdata[1]:.2f}: accuracy %{y:.2f} over %{customdata[0]} headlines"
                      "<extra></extra>",
    ))
    fig.add_trace(go.Scatter(name="Perfect calibration", x=[0, 1], y=[0, 1], mode="lines",
                             line={"dash": "dash", "color": "gray"}))
    fig.update_layout(title=f"{title} (ECE {calibration['ece']:.3f})", xaxis_title="Confidence (top label's probability)",
                      yaxis_title="Accuracy")
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1])
    return fig


def behaviour_table(results: dict, titles: dict[str, str]) -> str | None:
    """Markdown: eval/behaviour.py's failure rate per capability, "12 % [7, 20], 3 of 11 frames" (its Wilson
    interval, and the templates with a failing case where the results count them), one column
    per run of `titles` ({run name: column title}) that has behaviour results; None when none has.

    `results` is eval_results.json: its `behaviour` section describes the suite, each run's `behaviour` holds
    its results per capability.
    """
    suite = results.get("behaviour")
    runs = [(title, results["runs"][name]["behaviour"]) for name, title in titles.items()
            if suite and (results["runs"].get(name) or {}).get("behaviour")]
    if not runs:
        return None
    framed = all("frames" in capability for _, behaviour in runs for capability in behaviour.values())
    lines = ["| capability | test | cases | " + " | ".join(title for title, _ in runs) + " |",
             "| --- | --- | ---: |" + " ---: |" * len(runs)]
    for name, first in runs[0][1].items():
        cells = [_rate(behaviour[name], framed) if name in behaviour else "" for _, behaviour in runs]
        lines.append(f"| {first['title']} | {first['kind']} | {first['cases']} | " + " | ".join(cells) + " |")
    lines += ["", f"Share of failed cases, % [{suite['level'] * 100:.0f} % {suite['interval']} interval], on "
              f"{suite['cases']} cases of templated headlines about fictional companies (seed {suite['seed']}). "
              "A failure: "
              + "; ".join(f"{kind}, {what}" for kind, what in suite["failures"].items()) + "."]
    if framed:
        lines[-1] += (" Frames: the capability's sentence templates with a failing case, of all its templates. A "
                      "frame's cases tend to fail together, so the interval holds for these frames' wordings, not "
                      "for the skill in other words.")
    return "\n".join(lines)


def _rate(capability: dict, framed: bool = False) -> str:
    low, high = capability["interval"]
    rate = f"{capability['failure_rate'] * 100:.0f} % [{low * 100:.0f}, {high * 100:.0f}]"
    return f"{rate}, {capability['failing_frames']} of {capability['frames']} frames" if framed else rate


def words_line(why: list[dict] | None) -> str:
    """The words that drove an answer, as `"raises" +0.31, "its" +0.05`; empty where none were explained."""
    return ", ".join(f"\"{w['word']}\" {w['weight']:+.2f}" for w in why or [])


def wrong_answers(run: dict, count: int = 3) -> list[dict]:
    """Up to `count` wrong answers of the behaviour suite (fictional sentences, never test data) with the words that
    drove them: the most confident explained MFT failure of each capability, the most confident capabilities first.
    The model card and the app's About tab show them."""
    firsts = [next((case for case in capability["failing"] if case.get("why")), None)
              for capability in (run.get("behaviour") or {}).values()]
    chosen = sorted((case for case in firsts if case), key=lambda case: -case["probability"])[:count]
    return [{"text": case["texts"][0], "predicted": case["predicted"], "probability": case["probability"],
             "expected": case["expected"], "words": words_line(case["why"])} for case in chosen]
