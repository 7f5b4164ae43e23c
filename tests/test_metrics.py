"""compute_metrics on small arrays whose scores are worked out by hand in the comments."""

from __future__ import annotations

import json
import re

import pytest

from finsent.eval.metrics import INVALID, compute_metrics
from finsent.space.classifier import LABELS

NEG, NEU, POS = LABELS

# 7 rows: 2 negative, 3 neutral, 2 positive; one positive row got an answer that names no label.
Y_TRUE = [NEG, NEG, NEU, NEU, NEU, POS, POS]
Y_PRED = [NEG, NEU, NEU, NEU, POS, POS, INVALID]
# Confusion, rows true, columns predicted (negative, neutral, positive, invalid):
#   negative  1 1 0 0
#   neutral   0 2 1 0
#   positive  0 0 1 1
MATRIX = [[1, 1, 0, 0], [0, 2, 1, 0], [0, 0, 1, 1]]


def test_accuracy_counts_invalid_as_wrong():
    metrics = compute_metrics(Y_TRUE, Y_PRED)
    assert metrics["n"] == 7
    assert metrics["accuracy"] == pytest.approx(4 / 7)  # the diagonal: 1 + 2 + 1 right of 7
    assert metrics["invalid"] == 1
    assert metrics["invalid_rate"] == pytest.approx(1 / 7)


def test_per_label_scores():
    per_label = compute_metrics(Y_TRUE, Y_PRED)["per_label"]
    # negative: predicted once, rightly: P = 1/1; 1 of its 2 rows found: R = 1/2; F1 = 2*1*(1/2) / (3/2) = 2/3
    # neutral:  predicted 3 times (1 from a negative row), 2 right: P = 2/3; 2 of 3 rows: R = 2/3; F1 = 2/3
    # positive: predicted twice (1 from a neutral row), 1 right: P = 1/2; the invalid row is missed: R = 1/2; F1 = 1/2
    expected = {
        NEG: {"precision": 1, "recall": 1 / 2, "f1": 2 / 3, "support": 2},
        NEU: {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3},
        POS: {"precision": 1 / 2, "recall": 1 / 2, "f1": 1 / 2, "support": 2},
    }
    assert list(per_label) == list(LABELS)
    for label, scores in expected.items():
        for key, value in scores.items():
            assert per_label[label][key] == pytest.approx(value), (label, key)
        # the notebook's per-label accuracy, right answers among the label's rows, is its recall
        assert per_label[label]["accuracy"] == pytest.approx(scores["recall"]), label
    assert all(isinstance(per_label[label]["support"], int) for label in LABELS)


def test_macro_and_weighted_averages():
    metrics = compute_metrics(Y_TRUE, Y_PRED)
    # macro, the plain mean over the 3 labels:
    #   P = (1 + 2/3 + 1/2) / 3 = 13/18;  R = (1/2 + 2/3 + 1/2) / 3 = 5/9;  F1 = (2/3 + 2/3 + 1/2) / 3 = 11/18
    assert metrics["macro"] == pytest.approx({"precision": 13 / 18, "recall": 5 / 9, "f1": 11 / 18})
    # weighted by support 2, 3, 2 (of 7):
    #   P = (2*1 + 3*2/3 + 2*1/2) / 7 = 5/7;  R = (2*1/2 + 3*2/3 + 2*1/2) / 7 = 4/7 (= accuracy);
    #   F1 = (2*2/3 + 3*2/3 + 2*1/2) / 7 = (13/3) / 7 = 13/21
    assert metrics["weighted"] == pytest.approx({"precision": 5 / 7, "recall": 4 / 7, "f1": 13 / 21})


def test_confusion_matrix_has_an_invalid_column():
    confusion = compute_metrics(Y_TRUE, Y_PRED)["confusion_matrix"]
    assert confusion["labels"] == list(LABELS)
    assert confusion["predicted"] == [*LABELS, INVALID]
    assert confusion["matrix"] == MATRIX
    assert all(type(count) is int for row in confusion["matrix"] for count in row)


def test_result_is_plain_json_with_a_report():
    metrics = compute_metrics(Y_TRUE, Y_PRED)
    assert json.loads(json.dumps(metrics)) == metrics  # plain floats, ints, lists and strings only
    report = metrics["classification_report"]
    assert all(label in report for label in LABELS)
    assert "0.667" in report  # neutral's precision, recall and F1 at digits=3


def test_perfect_predictions_and_an_absent_label():
    # 3 rows, no positive at all: positive's scores are 0 (zero_division=0), not NaN, and no warning is needed
    metrics = compute_metrics([NEG, NEU, NEU], [NEG, NEU, NEU])
    assert metrics["accuracy"] == 1.0
    assert metrics["invalid"] == 0 and metrics["invalid_rate"] == 0.0
    assert metrics["per_label"][POS] == {"accuracy": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert metrics["confusion_matrix"]["matrix"] == [[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 0, 0]]


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        ([], [], "no rows"),
        ([NEG, POS], [NEG], "y_true has 2 rows but y_pred has 1"),
        ([NEG, INVALID], [NEG, NEG], "y_true[1] is 'invalid'"),  # a true label is never invalid
        ([NEG, POS], [NEG, "Positive"], "y_pred[1] is 'Positive'"),  # labels are lower case
    ],
)
def test_bad_input_is_refused(y_true, y_pred, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        compute_metrics(y_true, y_pred)


def test_scores_for_another_label_mix_weight_each_labels_rows_to_its_share():
    y_true = ["negative"] * 2 + ["neutral"] * 2 + ["positive"] * 2
    y_pred = ["negative", "neutral", "neutral", "neutral", "positive", "positive"]
    metrics = compute_metrics(y_true, y_pred, {"negative": 0.2, "neutral": 0.6, "positive": 0.2})
    # recalls 1/2, 1, 1 weighted 0.2, 0.6, 0.2: 0.1 + 0.6 + 0.2
    assert metrics["accuracy"] == pytest.approx(0.9)
    # 6 rows in those shares: 1.2 negative (0.6 right, 0.6 called neutral), 3.6 neutral, 1.2 positive
    assert metrics["confusion_matrix"]["matrix"] == [[0.6, 0.6, 0.0, 0.0], [0.0, 3.6, 0.0, 0.0], [0.0, 0.0, 1.2, 0.0]]
    assert metrics["per_label"]["neutral"]["precision"] == pytest.approx(3.6 / 4.2)
    assert metrics["per_label"]["negative"]["recall"] == pytest.approx(0.5)  # recall does not depend on the mix
    assert metrics["label_mix"] == {"negative": 0.2, "neutral": 0.6, "positive": 0.2}
    assert compute_metrics(y_true, y_pred)["accuracy"] == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="share >= 0 for each"):
        compute_metrics(y_true, y_pred, {"negative": 1.0})
