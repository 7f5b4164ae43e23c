"""Scores for predicted sentiment labels: accuracy, per-label and averaged precision/recall/F1, confusion.

    from finsent.eval.metrics import compute_metrics
    metrics = compute_metrics(["negative", "positive"], ["negative", "invalid"])
    metrics["accuracy"]  # 0.5: the invalid answer counts as wrong

Predictions are labels from `LABELS` or `INVALID`, a generated answer that names no
label. An invalid answer is never mapped to a label: it is wrong, it lowers the
recall of its row's true label, it raises no label's false positives, and it has
its own column in the confusion matrix. The result is plain JSON (floats unrounded;
round for display only).
"""

from __future__ import annotations

from collections.abc import Sequence

from sklearn.metrics import classification_report, confusion_matrix, precision_recall_fscore_support

from finsent.space.classifier import LABELS

INVALID = "invalid"  # a generated answer that names no label (generate mode); never mapped to a label
PREDICTED = (*LABELS, INVALID)  # the confusion matrix's columns


def compute_metrics(y_true: Sequence[str], y_pred: Sequence[str], label_mix: dict[str, float] | None = None) -> dict:
    """Accuracy, per-label and macro/weighted precision/recall/F1, confusion matrix and invalid rate.

    A label with no rows gets accuracy 0.0, like sklearn's `zero_division=0` for its scores.
    With `label_mix` ({label: share}), each row is weighted so that the labels count in those
    shares: the scores a data set of that mix would get, given these per-label outcomes (the
    rows of each label being a random sample of it). The confusion matrix then holds expected
    counts for as many rows as were scored.
    """
    y_true, y_pred = list(y_true), list(y_pred)
    _check(y_true, y_pred)
    n = len(y_true)
    labels = list(LABELS)
    weights = _mix_weights(y_true, label_mix) if label_mix else None  # None: every row counts once
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0,
                                                                     sample_weight=weights)
    per_label = {}
    for i, label in enumerate(labels):
        rows = [p for t, p in zip(y_true, y_pred, strict=True) if t == label]
        per_label[label] = {
            "accuracy": sum(p == label for p in rows) / len(rows) if rows else 0.0,
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(sum(t == label for t in y_true)),
        }
    averages = {}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average, zero_division=0,
                                                     sample_weight=weights)
        averages[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    # Square over labels + invalid, then drop the invalid row: no true label is invalid.
    matrix = confusion_matrix(y_true, y_pred, labels=list(PREDICTED), sample_weight=weights)[: len(labels)]
    if label_mix:
        matrix = matrix.round(1)
    invalid = sum(p == INVALID for p in y_pred)
    row_weights = weights or [1] * n
    correct = sum(w * (t == p) for t, p, w in zip(y_true, y_pred, row_weights, strict=True))
    result = {
        "n": n,
        "accuracy": correct / sum(row_weights),
        "per_label": per_label,
        **averages,
        "confusion_matrix": {"labels": labels, "predicted": list(PREDICTED), "matrix": matrix.tolist()},
        "invalid": invalid,
        "invalid_rate": invalid / n,
        "classification_report": classification_report(y_true, y_pred, labels=labels, digits=3, zero_division=0,
                                                       sample_weight=weights),
    }
    if label_mix:
        total = sum(label_mix.values())
        result["label_mix"] = {label: label_mix[label] / total for label in labels}
    return result


def _mix_weights(y_true: list[str], label_mix: dict[str, float]) -> list[float]:
    """Row weights that make each label's rows weigh its share of the mix; rows in all keep their count."""
    counts = {label: sum(t == label for t in y_true) for label in LABELS}
    missing = [label for label in LABELS if label_mix.get(label, 0) > 0 and not counts[label]]
    if set(label_mix) != set(LABELS) or min(label_mix.values()) < 0 or missing:
        raise ValueError(f"label mix {label_mix}: give a share >= 0 for each of {', '.join(LABELS)}, "
                         f"and rows for every label with a share (none for {missing})")
    total, n = sum(label_mix.values()), len(y_true)
    return [label_mix[t] / total * n / counts[t] for t in y_true]


def _check(y_true: list[str], y_pred: list[str]) -> None:
    if not y_true:
        raise ValueError("no rows to score: y_true and y_pred are empty")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} rows but y_pred has {len(y_pred)}; pass one prediction per row")
    for name, values, allowed in (("y_true", y_true, LABELS), ("y_pred", y_pred, PREDICTED)):
        bad = [(i, v) for i, v in enumerate(values) if v not in allowed]
        if bad:
            i, v = bad[0]
            raise ValueError(
                f"{name}[{i}] is {v!r} ({len(bad)} bad value(s) in all): expected one of {', '.join(allowed)}"
            )
