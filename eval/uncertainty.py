"""How sure the numbers are: bootstrap intervals, paired comparisons, and calibration.

    intervals(y_true, y_pred)                 # 95 % intervals of accuracy, macro F1, per-label accuracy and F1
    compare(y_true, pred_a, pred_b)           # McNemar's exact test + a paired-bootstrap interval of the difference
    calibration(y_true, probabilities)        # expected calibration error and the reliability diagram's bins
    fit_temperature(y_true, probabilities)    # temperature scaling: the T that calibrates held-out predictions
    wilson_interval(failures, cases)          # the 95 % Wilson score interval of a proportion (a failure rate)

The bootstrap resamples rows within each true label (the test split is balanced by design, so
every resample is too), `samples` times from a seeded generator; intervals are percentiles.
"""

from __future__ import annotations

import numpy as np

from finsent.eval.metrics import PREDICTED
from finsent.space.classifier import LABELS

SAMPLES = 2000
SEED = 0
LEVEL = 0.95
BINS = 10


def _codes(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    index = {label: i for i, label in enumerate(PREDICTED)}  # invalid is the last code: never a true label
    return np.array([index[t] for t in y_true]), np.array([index[p] for p in y_pred])


def _resamples(truth: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """(samples, n) row indices, drawn with replacement within each true label."""
    rng = np.random.default_rng(seed)
    columns = []
    for code in np.unique(truth):
        rows = np.flatnonzero(truth == code)
        columns.append(rows[rng.integers(0, len(rows), size=(samples, len(rows)))])
    return np.concatenate(columns, axis=1)


def _scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, macro F1 and per-label accuracy/F1 of each resample: truth and pred are (samples, n)."""
    out = {"accuracy": (truth == pred).mean(axis=1)}
    f1s = []
    for code, label in enumerate(LABELS):
        tp = ((truth == code) & (pred == code)).sum(axis=1)
        actual, predicted = (truth == code).sum(axis=1), (pred == code).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"accuracy_{label}"] = np.where(actual > 0, tp / np.maximum(actual, 1), 0.0)
            f1 = np.where(actual + predicted > 0, 2 * tp / np.maximum(actual + predicted, 1), 0.0)
        out[f"f1_{label}"] = f1
        f1s.append(f1)
    out["macro_f1"] = np.mean(f1s, axis=0)
    return out


def _interval(values: np.ndarray, level: float) -> list[float]:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def intervals(y_true, y_pred, *, samples: int = SAMPLES, seed: int = SEED, level: float = LEVEL) -> dict:
    """Percentile bootstrap intervals: {"samples", "seed", "level", "accuracy": [low, high], "macro_f1": [...],
    "per_label": {label: {"accuracy": [...], "f1": [...]}}}."""
    truth, pred = _codes(y_true, y_pred)
    rows = _resamples(truth, samples, seed)
    scores = _scores(truth[rows], pred[rows])
    return {
        "samples": samples, "seed": seed, "level": level, "method": "percentile bootstrap, rows resampled per label",
        "accuracy": _interval(scores["accuracy"], level),
        "macro_f1": _interval(scores["macro_f1"], level),
        "per_label": {label: {"accuracy": _interval(scores[f"accuracy_{label}"], level),
                              "f1": _interval(scores[f"f1_{label}"], level)} for label in LABELS},
    }


def mean_interval(values, *, samples: int = SAMPLES, seed: int = SEED, level: float = LEVEL) -> list[float]:
    """Percentile bootstrap interval of the mean of `values` (one number per item, items resampled)."""
    values = np.asarray(values, dtype=float)
    rows = np.random.default_rng(seed).integers(0, len(values), size=(samples, len(values)))
    return _interval(values[rows].mean(axis=1), level)


def wilson_interval(count: int, total: int, level: float = LEVEL) -> list[float]:
    """[low, high]: the Wilson score interval of the proportion count/total; unlike p +- z*se it stays inside
    [0, 1] and is not empty at 0 or `total` failures. [0, 1] when total is 0."""
    from statistics import NormalDist

    if total == 0:
        return [0.0, 1.0]
    z = NormalDist().inv_cdf((1 + level) / 2)
    p, z2 = count / total, z * z / total
    centre, half = (p + z2 / 2) / (1 + z2), z * ((p * (1 - p) + z2 / 4) / total) ** 0.5 / (1 + z2)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs (binomial test of a_only vs b_only at 1/2)."""
    from scipy.stats import binomtest

    n = a_only + b_only
    return 1.0 if n == 0 else float(binomtest(a_only, n, 0.5).pvalue)


def compare(y_true, pred_a, pred_b, *, samples: int = SAMPLES, seed: int = SEED, level: float = LEVEL) -> dict:
    """A against B on the same rows: accuracy difference with a paired-bootstrap interval, McNemar's exact p."""
    truth, a = _codes(y_true, pred_a)
    _, b = _codes(y_true, pred_b)
    right_a, right_b = truth == a, truth == b
    rows = _resamples(truth, samples, seed)
    differences = right_a[rows].mean(axis=1) - right_b[rows].mean(axis=1)
    a_only, b_only = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    return {
        "accuracy_difference": float(right_a.mean() - right_b.mean()),
        "interval": _interval(differences, level),
        "only_a_right": a_only, "only_b_right": b_only,
        "mcnemar_p": mcnemar_exact(a_only, b_only),
        "samples": samples, "seed": seed, "level": level,
    }


def calibration(y_true, probabilities, *, bins: int = BINS) -> dict:
    """Expected calibration error of the top label's probability, over `bins` equal-width bins, and the bins."""
    probs = np.asarray(probabilities, dtype=float)
    truth = np.array([LABELS.index(t) for t in y_true])
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    correct = predicted == truth
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    table, ece = [], 0.0
    for i in range(bins):
        inside = which == i
        n = int(inside.sum())
        if n:
            gap = abs(correct[inside].mean() - confidence[inside].mean())
            ece += n / len(truth) * gap
        table.append({"lower": float(edges[i]), "upper": float(edges[i + 1]), "n": n,
                      "confidence": float(confidence[inside].mean()) if n else None,
                      "accuracy": float(correct[inside].mean()) if n else None})
    return {"ece": float(ece), "bins": table}


def fit_temperature(y_true, probabilities) -> float:
    """The T that minimises the negative log-likelihood of softmax(log p / T): temperature scaling.

    T > 1 softens an over-confident model's probabilities; T = 1 leaves them. Fit it on held-out
    predictions (train/sweep.py's cross-validated ones), never on the test split.
    """
    from scipy.optimize import minimize_scalar

    truth = np.array([LABELS.index(t) for t in y_true])
    log_p = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, None))

    def nll(t: float) -> float:
        z = log_p / t
        z = z - z.max(axis=1, keepdims=True)
        z = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return -float(z[np.arange(len(truth)), truth].mean())

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded", options={"xatol": 1e-4}).x)
