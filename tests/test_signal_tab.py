"""The app's Signal tab and its MCP tool's logic (space/signal_tab.py), on the tiny Phi + adapter; the tool through
the MCP server is in tests/test_space.py."""

from __future__ import annotations

import json

import gradio as gr
import numpy as np
import pandas as pd
import pytest

from finsent.space import signal_tab
from finsent.space.app import Service, Settings
from finsent.space.classifier import LABELS
from finsent.space.signals import Spec, aggregate

FEED = pd.read_csv(signal_tab.EXAMPLE)


@pytest.fixture(scope="module")
def service(tiny_phi, evaluated):
    return Service(Settings(base_model=str(tiny_phi), adapter=str(evaluated), load_in_4bit="false"))


@pytest.fixture
def tool(service):
    return signal_tab.SignalTool(service)


def expected_signal(service, frame: pd.DataFrame, freq: str, by="ticker") -> pd.DataFrame:
    """The signal computed here from the model's own probabilities, in one batch."""
    probs = service.classifier.predict_proba(frame["text"].tolist())
    scored = frame.assign(**{label: probs[:, i] for i, label in enumerate(LABELS)})
    return aggregate([scored], Spec(by=by, freq=freq))[0]


def test_the_example_feed_gives_chart_table_and_download(tool, service, tmp_path):
    small = tmp_path / "feed.csv"
    FEED.head(60).to_csv(small, index=False)  # the example's first days: enough for every ticker, quick on the CPU
    chart, shown, download, notice = tool.tab(str(small), "W", str(tmp_path))
    expected = expected_signal(service, FEED.head(60), "W")
    saved = pd.read_csv(download)
    assert saved["ticker"].tolist() == expected["ticker"].tolist() and saved["count"].sum() == 60
    assert saved["score"].to_numpy() == pytest.approx(expected["score"].to_numpy(), abs=2e-3)  # batches of 200 vs 1
    assert shown["period"].tolist() == [str(p) for p in expected["period"]]
    assert sorted({trace.name for trace in chart.data if trace.showlegend is not False}) == ["BLMS", "RVND", "SLTV"]
    assert notice.startswith("60 headlines scored: 3 ticker(s) × ")


def test_a_parquet_upload_without_tickers_is_one_group(tool, tmp_path):
    path = tmp_path / "feed.parquet"
    FEED.head(5).drop(columns=["ticker"]).to_parquet(path)
    _, shown, _, notice = tool.tab(str(path), "M", str(tmp_path))
    assert shown[["group", "period", "count"]].values.tolist() == [["all", "2026-01-01", 5]]
    assert "1 group(s) × 1 month(s)" in notice


@pytest.mark.parametrize("content, message", [
    ("date,headline\n2026-01-05,Kestrel Oyj raises its outlook\n2026-01-05,\n", None),
    ("when,text\n2026-01-05,Kestrel Oyj raises its outlook\n", "no date column (its columns are ['when', 'text'])"),
    ("date,ticker\n2026-01-05,KSTR\n", "no text column"),
    ("date,text\n2026-01-05,Kestrel up\n5 Jan 2026,Kestrel down\n", "row 2: date '5 Jan 2026' is not an ISO 8601"),
    ("date,text\n2026-01-05T09:00Z,Kestrel up\n2026-01-05,Kestrel down\n", "dates with and without a UTC offset"),
    ("date,text\n2026-01-05,\n", "no row has a text to score"),
])
def test_bad_uploads_are_one_line_errors(tool, tmp_path, content, message):
    path = tmp_path / "feed.csv"
    path.write_text(content)
    if message is None:  # a headline column by another of its names, and an empty text left out
        assert "1 headlines scored; 1 without text left out" in tool.tab(str(path), "D", str(tmp_path))[3]
        return
    with pytest.raises(gr.Error) as refused:
        tool.tab(str(path), "D", str(tmp_path))
    assert message in refused.value.message and "\n" not in refused.value.message


def test_more_rows_than_the_limit_are_refused_before_scoring(tool, tmp_path, monkeypatch):
    monkeypatch.setattr(signal_tab, "MAX_ROWS", 10)
    monkeypatch.setattr(tool.service, "classify_many", lambda texts: pytest.fail("scored"))
    for path in (tmp_path / "feed.csv", tmp_path / "feed.parquet"):
        FEED.head(11).to_csv(path, index=False) if path.suffix == ".csv" else FEED.head(11).to_parquet(path)
        with pytest.raises(gr.Error, match="more than 10 rows; the app takes up to 10"):
            tool.tab(str(path), "D", str(tmp_path))


def test_the_tool_answers_json_rows_as_the_cli_computes_them(tool, service):
    items = [{"text": t, "date": d, "ticker": k} for d, k, t in FEED.head(8).itertuples(index=False)]
    rows = json.loads(tool.sentiment_signal(items, "D"))
    expected = expected_signal(service, FEED.head(8), "D")
    assert [(r["ticker"], r["period"], r["count"]) for r in rows] == \
        [(k, str(p), n) for k, p, n in expected[["ticker", "period", "count"]].itertuples(index=False)]
    assert [r["score"] for r in rows] == pytest.approx(expected["score"].tolist(), abs=2e-3)
    low = [r["score_low"] for r in rows]
    assert [x is None for x in low] == list(np.isnan(expected["score_low"]))  # one headline: null, not NaN
    untagged = json.loads(tool.sentiment_signal([{"text": "Kestrel up", "date": "2026-01-05"}], "M"))
    assert untagged == [{**untagged[0], "group": "all", "period": "2026-01-01", "count": 1}]
