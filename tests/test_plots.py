"""The figures hold the metrics' numbers, and write_figure writes HTML always and PNG where it can."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import pytest

from conftest import missing
from finsent.eval import plots
from finsent.eval.metrics import INVALID, compute_metrics
from finsent.eval.plots import before_after, confusion_heatmap, find_browser, per_class_bars, write_figure
from finsent.space.classifier import LABELS

NEG, NEU, POS = LABELS
Y_TRUE = [NEG, NEG, NEU, NEU, NEU, POS, POS]
# The arrays of test_metrics.py; per label (precision, recall = accuracy, F1):
#   negative (1, 1/2, 2/3), neutral (2/3, 2/3, 2/3), positive (1/2, 1/2, 1/2); accuracy 4/7, macro F1 11/18.
AFTER = compute_metrics(Y_TRUE, [NEG, NEU, NEU, NEU, POS, POS, INVALID])
# Everything called neutral: accuracy 3/7; per-label accuracy 0, 1, 0;
# neutral P = 3/7, R = 1, F1 = 2*(3/7)*1 / (10/7) = 3/5, the others 0: macro F1 = (3/5) / 3 = 1/5.
BEFORE = compute_metrics(Y_TRUE, [NEU] * 7)


def test_per_class_bars_hold_precision_recall_f1():
    fig = per_class_bars(AFTER)
    assert [trace.name for trace in fig.data] == ["Precision", "Recall", "F1"]
    expected = {"Precision": [1, 2 / 3, 1 / 2], "Recall": [1 / 2, 2 / 3, 1 / 2], "F1": [2 / 3, 2 / 3, 1 / 2]}
    for trace in fig.data:
        assert list(trace.x) == list(LABELS)
        assert list(trace.y) == pytest.approx(expected[trace.name])
    assert list(fig.data[0].text) == ["1.00", "0.67", "0.50"]  # the values written on the bars
    assert list(fig.layout.yaxis.range) == [0, 1]


def test_confusion_heatmap_shows_invalid_column_only_when_used():
    fig = confusion_heatmap(AFTER)
    (heatmap,) = fig.data
    assert list(heatmap.x) == [*LABELS, INVALID]
    assert list(heatmap.y) == list(LABELS)
    assert [list(row) for row in heatmap.z] == [[1, 1, 0, 0], [0, 2, 1, 0], [0, 0, 1, 1]]
    assert heatmap.texttemplate == "%{text}"  # the counts are written in the cells
    assert fig.layout.yaxis.autorange == "reversed"  # first true label on top

    (heatmap,) = confusion_heatmap(BEFORE).data  # no invalid answer: no invalid column
    assert list(heatmap.x) == list(LABELS)
    assert [list(row) for row in heatmap.z] == [[0, 2, 0], [0, 3, 0], [0, 2, 0]]


def test_before_after_compares_accuracy_macro_f1_and_per_label_accuracy():
    fig = before_after(BEFORE, AFTER)
    assert [trace.name for trace in fig.data] == ["Before fine-tuning", "After fine-tuning"]
    assert len(fig.data[0].x) == 5 and list(fig.data[0].x[:2]) == ["accuracy", "macro F1"]
    assert all(label in name for label, name in zip(LABELS, fig.data[0].x[2:], strict=True))
    assert list(fig.data[0].y) == pytest.approx([3 / 7, 1 / 5, 0, 1, 0])
    assert list(fig.data[1].y) == pytest.approx([4 / 7, 11 / 18, 1 / 2, 2 / 3, 1 / 2])


def test_write_figure_writes_html_and_png(tmp_path):
    written = write_figure(per_class_bars(AFTER), tmp_path / "figures" / "per_class")
    html = (tmp_path / "figures" / "per_class.html").read_text()
    assert written["html"] == tmp_path / "figures" / "per_class.html"
    assert all(f'"{label}"' in html for label in LABELS) and "0.6666666666666666" in html  # neutral's precision
    # plotly.js once, beside the figures: the HTML opens offline and stays small
    assert '<script charset="utf-8" src="plotly.min.js"></script>' in html and len(html) < 100_000
    assert "cdn.plot.ly" not in html and (tmp_path / "figures" / "plotly.min.js").stat().st_size > 1_000_000

    browser = find_browser()
    if browser is None:
        missing("PNG part skipped: no Chrome/Chromium for kaleido (apt-get install chromium, or set BROWSER_PATH)")
    png = written["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"  # the PNG signature
    length, chunk, width, height = struct.unpack(">I4sII", png[8:24])  # the first chunk is IHDR
    assert (length, chunk) == (13, b"IHDR") and width > 0 and height > 0
    assert sorted(path.name for path in (tmp_path / "figures").iterdir()) == ["per_class.html", "per_class.png",
                                                                             "plotly.min.js"]


def test_failed_png_export_keeps_html_and_leaves_no_png(tmp_path, monkeypatch, caplog):
    fig = per_class_bars(AFTER)
    stem = tmp_path / "per_class"
    stem.with_suffix(".png").write_bytes(b"an old run's figure")

    def half_write(figs, files, **kwargs):
        with open(files[0], "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n")  # a partial file before the failure
        raise RuntimeError("export went wrong\nsecond line of the error")

    monkeypatch.setattr(plots.pio, "write_images", half_write)
    monkeypatch.setattr(plots, "find_browser", lambda: None)  # the advice for a machine without a browser
    monkeypatch.delenv("BROWSER_PATH", raising=False)
    with caplog.at_level(logging.INFO):
        written = write_figure(fig, stem)

    assert written == {"html": tmp_path / "per_class.html"}
    assert f'"{NEG}"' in written["html"].read_text()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["per_class.html", "plotly.min.js"]  # no PNG
    (warning,) = [record for record in caplog.records if record.levelno >= logging.WARNING]
    message = warning.getMessage()
    assert "\n" not in message and "RuntimeError: export went wrong" in message
    assert "apt-get install -y --no-install-recommends chromium" in message  # how to fix it
    assert "stale" in message


def test_a_render_kaleido_drops_silently_is_tried_again(tmp_path, monkeypatch):
    """kaleido returns a render's error instead of raising it, and writes no file: the missing PNGs are redone."""
    figures = {tmp_path / "a": per_class_bars(AFTER), tmp_path / "b": before_after(BEFORE, AFTER)}
    calls = []

    def drops_the_first_once(figs, files, **kwargs):
        calls.append([Path(f).name for f in files])
        for number, path in enumerate(files):
            if len(calls) > 1 or number:
                Path(path).write_bytes(b"\x89PNG\r\n\x1a\n")

    monkeypatch.setattr(plots.pio, "write_images", drops_the_first_once)
    written = plots.write_figures(figures)
    assert {path.name for path in written} == {"a.html", "b.html", "a.png", "b.png"}
    assert len(calls) == 2 and len(calls[1]) == 1  # the second session renders only the missing one


def test_renders_that_never_come_are_one_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(plots.pio, "write_images", lambda figs, files, **kwargs: None)  # every render dropped
    with caplog.at_level(logging.WARNING):
        written = write_figure(per_class_bars(AFTER), tmp_path / "per_class")
    assert set(written) == {"html"}
    (warning,) = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert "kaleido rendered 0 of 1 figures in 3 attempts" in warning.getMessage()
