"""eval/uncertainty.py: bootstrap intervals, paired comparisons and calibration, on cases worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from finsent.eval import uncertainty
from finsent.eval.metrics import INVALID, compute_metrics
from finsent.space.classifier import LABELS


def balanced(n_per_label: int, wrong_every: int):
    """n rows per label; every `wrong_every`-th row predicted as the next label."""
    truth, pred = [], []
    for i, label in enumerate(LABELS):
        for j in range(n_per_label):
            truth.append(label)
            pred.append(LABELS[(i + 1) % 3] if j % wrong_every == 0 else label)
    return truth, pred


def test_intervals_hold_the_point_value_are_seeded_and_narrow_with_more_rows():
    truth, pred = balanced(30, 4)
    small = uncertainty.intervals(truth, pred, samples=500, seed=1)
    point = compute_metrics(truth, pred)
    assert small["accuracy"][0] < point["accuracy"] < small["accuracy"][1]
    assert small["macro_f1"][0] < point["macro"]["f1"] < small["macro_f1"][1]
    assert small == uncertainty.intervals(truth, pred, samples=500, seed=1)  # seeded
    assert small["samples"] == 500 and small["seed"] == 1 and small["level"] == 0.95
    large = uncertainty.intervals(*balanced(300, 4), samples=500, seed=1)  # same error rate, 10x the rows
    width = lambda i: i["accuracy"][1] - i["accuracy"][0]  # noqa: E731
    assert width(large) < width(small) / 2
    # accuracy 0.75 on 900 rows: the normal approximation's 95 % half-width is 1.96 * sqrt(.75 * .25 / 900)
    assert width(large) / 2 == pytest.approx(1.96 * np.sqrt(0.75 * 0.25 / 900), rel=0.15)


def test_per_label_intervals_and_resamples_keep_the_label_balance():
    truth, pred = balanced(20, 5)
    result = uncertainty.intervals(truth, pred, samples=200)
    for label in LABELS:
        low, high = result["per_label"][label]["accuracy"]
        assert low <= 0.8 <= high  # 16 of 20 right in every label
    rows = uncertainty._resamples(np.array([0] * 20 + [1] * 20 + [2] * 20), samples=50, seed=0)
    assert all(np.bincount(np.repeat([0, 1, 2], 20)[r], minlength=3).tolist() == [20, 20, 20] for r in rows)


def test_paired_comparison_on_discordant_pairs():
    truth = ["positive"] * 40
    a = ["positive"] * 30 + ["neutral"] * 10  # a: 30 right
    b = ["positive"] * 20 + ["neutral"] * 10 + ["positive"] * 2 + ["neutral"] * 8  # b: 22 right
    result = uncertainty.compare(truth, a, b, samples=500)
    assert result["only_a_right"] == 10 and result["only_b_right"] == 2
    assert result["accuracy_difference"] == pytest.approx(0.2)
    assert result["mcnemar_p"] == pytest.approx(0.03857, abs=1e-4)  # 2 * P(X <= 2), X ~ Bin(12, 1/2)
    assert result["interval"][0] < 0.2 < result["interval"][1]
    assert uncertainty.compare(truth, a, a)["mcnemar_p"] == 1.0  # no discordant pair


def test_invalid_answers_are_wrong_in_intervals_and_comparisons():
    truth = ["negative", "neutral", "positive"] * 4
    pred = [INVALID] * 12
    assert uncertainty.intervals(truth, pred, samples=50)["accuracy"] == [0.0, 0.0]
    assert uncertainty.compare(truth, truth, pred)["only_a_right"] == 12


def test_calibration_error_by_hand():
    truth = ["positive"] * 10
    sure = np.tile([0.05, 0.05, 0.9], (10, 1))  # says positive at 0.9
    assert uncertainty.calibration(truth, sure)["ece"] == pytest.approx(0.1)  # right 10/10 at 0.9 confidence
    half = ["positive"] * 5 + ["negative"] * 5
    result = uncertainty.calibration(half, sure)
    assert result["ece"] == pytest.approx(0.4)  # right 5/10 at 0.9
    [used] = [b for b in result["bins"] if b["n"]]
    assert used["lower"] == pytest.approx(0.8) and used["n"] == 10 and used["accuracy"] == 0.5
    assert len(result["bins"]) == uncertainty.BINS


def test_fit_temperature_recovers_the_over_confidence_of_made_up_predictions():
    # Labels drawn from softmax(z); the "model" reports softmax(2.5 z): temperature scaling must find 2.5.
    rng = np.random.default_rng(0)
    z = rng.normal(size=(20000, 3)) * 1.5
    truth = [LABELS[i] for i in (rng.random((len(z), 1)) > np.cumsum(np.exp(z) / np.exp(z).sum(1, keepdims=True), 1))
             .sum(1)]
    reported = np.exp(2.5 * z) / np.exp(2.5 * z).sum(1, keepdims=True)
    assert uncertainty.fit_temperature(truth, reported) == pytest.approx(2.5, rel=0.05)
    calibrated = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    assert uncertainty.fit_temperature(truth, calibrated) == pytest.approx(1.0, rel=0.05)
