"""The app's Signal tab and its MCP tool: a news feed in (date, text, and optionally ticker), the sentiment per ticker
and period out (space/signals.py): the chart, the table and a CSV download.

The texts are scored by the app's own model (Service.classify_many, a batch at a time), so the tab takes a file of
at most MAX_ROWS rows; `finsent signal` (eval/aggregate.py) takes a file of any size.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd

try:  # inside the project: finsent.space; deployed alone as a Space: top-level modules
    from .classifier import LABELS, TEXT_COLUMNS
    from .errors import first_line, refusal
    from .signals import FREQS, SignalError, Spec, aggregate, records, signal_chart
except ImportError:
    from classifier import LABELS, TEXT_COLUMNS
    from errors import first_line, refusal
    from signals import FREQS, SignalError, Spec, aggregate, records, signal_chart

# The shipped model scores 50 headlines/s in bf16 and 28/s in fp32 on 2 idle CPU cores (BENCHMARKS.md, "CPU
# precision"), so 2,000 rows take about 40 to 70 s on a CPU Space, more on busy cores; beyond that a browser tab
# waits too long, and `finsent signal` is the tool.
MAX_ROWS = 2000
BATCH = 200  # texts per model call: the progress bar moves between them, and a ZeroGPU call stays short
EXAMPLE = Path(__file__).resolve().parent / "examples" / "feed.csv"  # eval/feed.py's fictional feed
FREQ_CHOICES = [(f"{name.split(' ')[0]} ({code})", code) for code, name in FREQS.items()]
SHOWN = 3  # decimals in the table shown (the download keeps them all)
PROGRESS = gr.Progress()  # marks the event's progress argument; Gradio passes each call a tracker of its own


def build_signal_tab(service, folder: str) -> None:
    """The Signal tab, inside the app's Blocks: upload, period, button; notice, chart, table and download. The
    download's CSV goes in `folder` (the service's, removed with it)."""
    tool = SignalTool(service)
    with gr.Tab("Signal"):
        gr.Markdown(f"Upload a news feed, a CSV or Parquet file with a `date` column (ISO 8601, e.g. 2026-01-05 or "
                    f"2026-01-05T09:30:00+02:00), a `text` column and optionally a `ticker` column, up to "
                    f"{MAX_ROWS:,} rows. Each headline is scored P(positive) − P(negative); per ticker and period "
                    "you get the mean score with its 95 % interval, the share of each label and the bullishness. "
                    "Dates with a UTC offset count in UTC. Larger files: `finsent signal`.")
        upload = gr.File(label="News feed (CSV or Parquet)", file_types=[".csv", ".parquet"], type="filepath")
        freq = gr.Radio(FREQ_CHOICES, value="D", label="Period")
        run = gr.Button("Compute the signal", variant="primary")
        gr.Examples([[str(EXAMPLE), "W"]], inputs=[upload, freq], label="A fictional feed: 3 companies, 90 days; "
                    "one company's news turns in February")
        notice = gr.Markdown()
        chart = gr.Plot(label="Sentiment per period")
        table = gr.Dataframe(label="Signal", wrap=True)
        download = gr.File(label="Download the signal (CSV)")
        run.click(lambda path, freq, progress=PROGRESS: tool.tab(path, freq, folder, progress),
                  inputs=[upload, freq], outputs=[chart, table, download, notice], api_visibility="private")


class SignalTool:
    def __init__(self, service):
        self.service = service

    def tab(self, path: str | None, freq: str, folder: str, progress=None):
        """An uploaded file -> (chart, table shown, CSV path, notice); its mistakes are a gr.Error with one line."""
        if not path:
            raise gr.Error("Upload a CSV or Parquet file first (or pick the example).", print_exception=False)
        try:
            frame = read_feed(path)
            signal, spec, notes = self.signal(frame, freq, Path(path).name, "row", progress)
        except SignalError as err:
            raise gr.Error(str(err), print_exception=False) from None
        shown = signal.round(SHOWN)
        shown["period"] = shown["period"].astype(str)
        return signal_chart(signal, spec), shown, write_signal(signal, folder), " ".join(notes)

    def signal(self, frame: pd.DataFrame, freq: str, source: str, row_name: str, progress=None):
        """A feed (date, text, optionally ticker) -> (signal table, Spec, notices): scored, then aggregated."""
        texts = frame["text"].tolist()
        probs = np.full((len(texts), len(LABELS)), np.nan)
        cut = 0
        for start in range(0, len(texts), BATCH):
            if progress is not None:
                progress(start / len(texts), desc=f"scoring {len(texts):,} headlines")
            labels, notices = self.service.classify_many(texts[start : start + BATCH])
            for i, (answer, notice) in enumerate(zip(labels, notices, strict=True)):
                if answer is not None:
                    probs[start + i] = [answer[label] for label in LABELS]
                    cut += bool(notice)
        scored = frame.assign(**{label: probs[:, i] for i, label in enumerate(LABELS)})
        spec = Spec(time="date", by="ticker" if "ticker" in frame else None, freq=freq)
        signal, counts = aggregate([scored], spec, source, row_name)
        if counts.scored == 0:
            raise SignalError(f"{source}: no {row_name} has a text to score")
        notes = [f"{counts.scored:,} headlines scored"
                 + (f"; {counts.unscored:,} without text left out" if counts.unscored else "")
                 + f": {signal[spec.group].nunique():,} {spec.group}(s) × {signal['period'].nunique():,} "
                 f"{FREQS[freq].split(' ')[0]}(s)."]
        if cut:
            notes.append(f"{cut:,} were too long; only their beginning was read.")
        return signal, spec, notes

    # An MCP tool: Gradio makes the docstring its description, joining the Returns lines with ", ".
    def sentiment_signal(self, items: list[dict], freq: str = "D") -> str:
        """Turn dated financial news headlines into a sentiment signal: per ticker and period, the mean sentiment score with its 95 % interval.

        Args:
            items: the headlines, each {"text": "Kestrel Oyj raises its profit forecast", "date": "2026-01-05T09:30:00+02:00", "ticker": "KSTR"}; date is ISO 8601 (2026-01-05, or with a time and UTC offset, converted to UTC); ticker is optional.
            freq: the period: D (calendar day, the default), W (week from Monday) or M (calendar month).

        Returns:
            a JSON list, one object per ticker and period with headlines, sorted by ticker and period
            each {"ticker": "KSTR", "period": "2026-01-05", "count": 3, "score": 0.41, "score_low": 0.05, "score_high": 0.77, "share_negative": 0.0, "share_neutral": 0.33, "share_positive": 0.67, "bullishness": 1.1}
            period is the period's first day; score is the mean of P(positive) - P(negative) over its headlines, in [-1, 1]
            score_low and score_high bound its 95 % interval (normal approximation, Student's t); null for a period of one headline
            bullishness is ln((1 + positive headlines) / (1 + negative headlines))
            without any ticker the key is "group", with the value "all"
            a tool error with a one-line message for no items, more than the app's limit, an item without text or date, an unreadable date, or dates with and without a UTC offset
        """
        if not items:
            raise refusal("Give at least one item, {\"text\": ..., \"date\": ...}.")
        if len(items) > MAX_ROWS:
            raise refusal(f"At most {MAX_ROWS:,} items a call; got {len(items):,}. For more, run `finsent signal`.")
        if freq not in FREQS:
            raise refusal(f"freq {freq!r}: use D (day), W (week from Monday) or M (month).")
        for number, item in enumerate(items, start=1):
            missing = [key for key in ("text", "date") if not (isinstance(item, dict) and str(item.get(key) or "").strip())]
            if missing:
                raise refusal(f"Item {number} of {len(items)} has no {' and no '.join(missing)}; give each item "
                              "a text and a date.")
        frame = pd.DataFrame({"date": [str(item["date"]) for item in items], "text": [item["text"] for item in items]})
        if any(item.get("ticker") for item in items):
            frame["ticker"] = [str(item["ticker"]) if item.get("ticker") else None for item in items]
        try:
            signal, _, _ = self.signal(frame, freq, "items", "item")
        except SignalError as err:
            message = str(err).removeprefix("items: ")
            raise refusal(message[:1].upper() + message[1:]) from None
        return json.dumps(records(signal))


def read_feed(path: str) -> pd.DataFrame:
    """An uploaded feed's date, text and ticker columns (text: TEXT_COLUMNS' first present); at most MAX_ROWS rows."""
    name = Path(path).name
    try:
        if Path(path).suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            rows = pq.ParquetFile(path).metadata.num_rows
            frame = pd.read_parquet(path) if rows <= MAX_ROWS else None
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=MAX_ROWS + 1, encoding="utf-8-sig")
            rows = len(frame)
    except (ValueError, OSError, UnicodeDecodeError) as err:
        raise SignalError(f"{name}: not a readable CSV or Parquet file ({first_line(err)}); save it as a UTF-8 CSV") \
            from None
    if rows > MAX_ROWS:
        raise SignalError(f"{name}: more than {MAX_ROWS:,} rows; the app takes up to {MAX_ROWS:,} (run "
                          "`finsent classify`, then `finsent signal`, for a larger file)")
    columns = [str(c) for c in frame.columns]
    frame.columns = [c.strip().lower() for c in columns]
    text = next((c for c in TEXT_COLUMNS if c in frame), None)
    missing = [what for what, present in (("date", "date" in frame), ("text", text)) if not present]
    if missing:
        raise SignalError(f"{name}: no {' and no '.join(missing)} column (its columns are {columns[:8]}); name them "
                          "date, text and (optionally) ticker")
    picked = {"date": frame["date"], "text": frame[text].fillna("").astype(str)}
    if "ticker" in frame:
        picked["ticker"] = frame["ticker"]
    return pd.DataFrame(picked)


CSV_MAX_AGE_S = 600  # as the Batch tab's results: kept this long for the download


def write_signal(signal: pd.DataFrame, folder: str) -> str:
    """The signal as a CSV in `folder`, for the download; signal CSVs older than CSV_MAX_AGE_S there go first."""
    for old in Path(folder).glob("signal-*.csv"):
        if time.time() - old.stat().st_mtime > CSV_MAX_AGE_S:
            old.unlink(missing_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".csv", prefix="signal-", dir=folder, delete=False, newline="",
                                     encoding="utf-8") as handle:
        signal.to_csv(handle, index=False)
    return handle.name
