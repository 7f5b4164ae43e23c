"""Sentiment as a signal: per group (a company, say) and period, the count, the mean score with its 95 % interval,
each label's share and the bullishness; read in chunks, so memory does not grow with the number of rows.

    from finsent.space.signals import Spec, read_labelled, aggregate, signal_chart
    spec = Spec(time="date", by="ticker", freq="W")
    table, counts = aggregate(read_labelled("labelled.parquet", spec), spec)   # one row per ticker and week
    signal_chart(table, spec).show()

A row's score is P(positive) - P(negative), from `finsent classify`'s columns (`negative`, `positive`, with its
`--prefix` if it was given one), or the row's own `score` column where it has one (a document scored by
`classify --by_sentence`: the mean of its sentences' scores). Its label is the `label` column, else the most
probable label. A row without a score (classify's `status` says why: missing, empty, not text) is left out and
counted. Per group and period:

- `count`: the scored rows;
- `score`: their mean score, in [-1, 1];
- `score_low`, `score_high`: its 95 % interval, mean +- t(0.975, n-1) * sd / sqrt(n), clipped to [-1, 1];
  none (empty) for a period of one row. A normal approximation with Student's t, from the streamed count, sum
  and sum of squares: a bootstrap would need every score of a group in memory at once. On symmetric scores it
  covers the true mean 95 % of the time from 3 rows; on skewed ones (a feed's mostly mild good news and a tail of
  bad, simulated in tests/test_signal.py) it falls short with few rows: 86 % at 5 rows, 93 % at 12, 94 % at 40.
  Read the interval of a period with few rows, or with one score repeated (sd 0: zero width), as rough;
- `share_negative`, `share_neutral`, `share_positive`: each label's share of the rows;
- `bullishness`: ln((1 + positive) / (1 + negative)), the label counts' log ratio (Antweiler & Frank 2004,
  "Is all that talk just noise?", Journal of Finance 59(3)).

Periods (`freq`): D, a calendar day; W, a week from Monday; M, a calendar month; each named by its first day
(`period`). Only periods with rows are listed. Dates are ISO 8601 text (2026-01-05, 2026-01-05 09:30,
2026-01-05T09:30:00+02:00, ...Z) or a Parquet date or timestamp column. A date with a UTC offset is converted to
`tz` (default UTC) before its day is taken; a date without one is taken as written, as a time in `tz`. A column
that mixes the two is refused: a naive time could be in any zone. Other formats (03/01/2026 is March in the US
and January elsewhere) are refused rather than guessed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

try:  # inside the project: finsent.space; deployed alone as a Space: top-level modules
    from .classifier import LABELS
    from .errors import first_line
except ImportError:
    from classifier import LABELS
    from errors import first_line

LEVEL = 0.95
FREQS = {"D": "day", "W": "week (from Monday)", "M": "month"}
CHUNK_ROWS = 65_536  # rows read at a time: a few MB of the needed columns
ALL = "all"  # the one group's name when there is no `by`
SHARES = tuple(f"share_{label}" for label in LABELS)
COLUMNS = ("period", "count", "score", "score_low", "score_high", *SHARES, "bullishness")
# A UTC offset after a time, in what pandas read as ISO 8601: T09:30Z, 09:30:00+02:00, T0930+0200 (in a bare date,
# 01-12 is a month and a day, not a time and an offset: the time must follow a T or a space)
OFFSET = re.compile(r"[T ]\d{2}(?::?\d{2}){0,2}(?:[.,]\d+)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)
ISO_HINT = "write ISO 8601 dates, such as 2026-01-05, 2026-01-05 09:30 or 2026-01-05T09:30:00+02:00"
ZONES_HINT = "write every date with its UTC offset (2026-01-05T09:30:00+02:00, or Z for UTC), or none"


class SignalError(ValueError):
    """Input the user must fix: the message is one line naming the file, the row or the column, and the fix."""


@dataclass(frozen=True)
class Spec:
    """What to aggregate: the time column, the grouping column (None: one group, "all"), the period, the zone
    dates are converted to, and classify's column prefix."""

    time: str = "date"
    by: str | None = None
    freq: str = "D"
    tz: str = "UTC"
    prefix: str = ""

    def __post_init__(self):
        if self.freq not in FREQS:
            raise SignalError(f"freq {self.freq!r}: use D (day), W (week from Monday) or M (month)")
        try:
            pd.Timestamp("2026-01-05", tz=self.tz)
        except Exception:
            raise SignalError(f"time zone {self.tz!r}: give an IANA name such as UTC, Europe/Helsinki or "
                              "America/New_York") from None

    @property
    def group(self) -> str:
        """The output's group column: the `by` column's name, else `group`."""
        return self.by or "group"

    def column(self, name: str) -> str:
        return self.prefix + name


@dataclass
class Counts:
    """What the rows were: read, aggregated, left out for having no score."""

    rows: int = 0
    scored: int = 0
    unscored: int = 0
    first_naive: int | None = field(default=None, repr=False)  # the first row with a date of each kind
    first_aware: int | None = field(default=None, repr=False)


def scoring(columns: Iterable[str], spec: Spec) -> tuple[list[str], str | None]:
    """(the columns a row's score and label are read from, None) or ([], why not): classify's output or not."""
    columns = set(columns)
    label = [spec.column("label")] if spec.column("label") in columns else []
    if spec.column("score") in columns:
        return [spec.column("score"), *label], None
    probabilities = [spec.column(name) for name in LABELS]
    if all(name in columns for name in probabilities):
        return [*probabilities, *label], None
    return [], f"no {spec.column('score')} column and no {'/'.join(probabilities)} columns"


def needed(columns: list[str], spec: Spec, source: str = "the table") -> list[str]:
    """The columns to read, or a SignalError naming what is missing."""
    for flag, name in (("time", spec.time), ("by", spec.by)):
        if name is not None and name not in columns:
            raise SignalError(f"{source}: no {name!r} column (its columns are {columns[:8]}); name the "
                              f"{'date' if flag == 'time' else 'grouping'} column with --{flag}")
    score, why = scoring(columns, spec)
    if why:
        raise SignalError(f"{source}: {why}: not classify's output; run `finsent classify` on it first")
    return [spec.time, *([spec.by] if spec.by else []), *score]


def read_labelled(path: str | Path, spec: Spec, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """A .parquet or .csv file's needed columns, `chunk_rows` rows at a time (Parquet: its row groups' batches;
    CSV: pyarrow's streaming reader, dates and groups kept as text)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = Path(path)
    kind = path.suffix.lower()
    try:
        if kind in (".parquet", ".pq"):
            parquet = pq.ParquetFile(path, pre_buffer=False)  # pre-buffered, its reads pile up: 3 M rows, +110 MB
            columns = needed(parquet.schema_arrow.names, spec, str(path))
            for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
                yield batch.to_pandas()
            return
        if kind != ".csv":
            raise SignalError(f"{path}: read .parquet or .csv files (by extension)")
        header = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16)).schema.names
        columns = needed(header, spec, str(path))
        # every column's type named: the streaming reader infers one from the first block, and a later block of
        # other values (a first block of empty scores, say) would then fail
        text = {name: pa.string() for name in (spec.time, spec.by, spec.column("label")) if name}
        text.update({name: pa.float64() for name in columns if name not in text})
        reader = pacsv.open_csv(
            path, read_options=pacsv.ReadOptions(block_size=1 << 22),  # 4 MB of the file a batch
            parse_options=pacsv.ParseOptions(newlines_in_values=True),  # a quoted headline may hold a line break
            convert_options=pacsv.ConvertOptions(include_columns=columns, column_types=text))
        for batch in reader:
            yield batch.to_pandas()
    except (pa.ArrowException, OSError) as err:
        raise SignalError(f"{path}: not a readable {kind[1:].upper()} file ({first_line(err)})") \
            from None


def aggregate(frames: Iterable[pd.DataFrame], spec: Spec, source: str = "the table",
              row_name: str = "row") -> tuple[pd.DataFrame, Counts]:
    """The signal table of `frames` (chunks of one table, in order) and what its rows were.

    Per (group, period) only sums are kept: count, sum and sum of squares of the score, and each label's count,
    so memory grows with the groups and periods, not with the rows. `row_name` is what an error calls a row
    (row 3: the third data row, the header not counted).
    """
    counts, totals = Counts(), None
    for frame in frames:
        first = counts.rows + 1
        counts.rows += len(frame)
        score, labels = scores(frame, spec)
        keep = ~np.isnan(score)
        counts.unscored += int((~keep).sum())
        rows = np.flatnonzero(keep)
        if not len(rows):
            continue
        counts.scored += len(rows)
        periods = period_starts(frame[spec.time].iloc[rows], spec, first, rows, counts, source, row_name)
        groups = (frame[spec.by].iloc[rows].astype("string").replace("", pd.NA).fillna(f"(no {spec.by})").to_numpy(object)
                  if spec.by else np.full(len(rows), ALL, object))
        part = pd.DataFrame({"group": groups, "period": periods, "count": 1.0, "sum": score[rows],
                             "sumsq": score[rows] ** 2,
                             **{label: (labels[rows] == i).astype(float) for i, label in enumerate(LABELS)}})
        part = part.groupby(["group", "period"], sort=False).sum()
        totals = part if totals is None else totals.add(part, fill_value=0)
    return summarise(totals, spec), counts


def scores(frame: pd.DataFrame, spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """Each row's score (NaN: none) and label index (-1: none)."""
    columns = set(frame.columns)
    probabilities = [spec.column(name) for name in LABELS]
    has_probabilities = all(name in columns for name in probabilities)
    if has_probabilities:
        probs = frame[probabilities].to_numpy(dtype=float, na_value=np.nan)
    if spec.column("score") in columns:
        score = frame[spec.column("score")].to_numpy(dtype=float, na_value=np.nan)
    else:
        score = probs[:, LABELS.index("positive")] - probs[:, LABELS.index("negative")]
    if spec.column("label") in columns:
        names = frame[spec.column("label")].astype("string").fillna("").to_numpy(object)
        labels = pd.Categorical(names, categories=LABELS).codes.astype(int)  # -1: no label
    elif has_probabilities:
        labels = np.where(np.isnan(probs).any(axis=1), -1, np.nan_to_num(probs).argmax(axis=1))
    else:
        labels = np.full(len(frame), -1)
    return score, labels


def period_starts(values: pd.Series, spec: Spec, first: int, rows: np.ndarray, counts: Counts, source: str,
                  row_name: str) -> np.ndarray:
    """Each date's period, as its first day (datetime64[D]); a SignalError names the first row it cannot read."""
    def where(i: int) -> str:
        return f"{source}: {row_name} {first + int(rows[i])}"

    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in ("datetime64", "datetime", "date"):  # a Parquet timestamp or date column
        times = pd.to_datetime(values.reset_index(drop=True))
        aware = np.full(len(values), isinstance(times.dtype, pd.DatetimeTZDtype))
    else:
        text = values.astype("string").str.strip().reset_index(drop=True)
        missing = text.isna() | (text == "")
        if missing.any():
            raise SignalError(f"{where(int(np.flatnonzero(missing)[0]))}: no date; every scored row needs one")
        times = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
        bad = times.isna()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SignalError(f"{where(i)}: date {text.iloc[i]!r} is not an ISO 8601 date; {ISO_HINT}")
        aware = text.str.contains(OFFSET).to_numpy(bool)
    note_zones(aware, first, rows, counts, source, row_name)  # from here, every date has an offset or none has
    if aware.all():
        times = times.dt.tz_convert(spec.tz).dt.tz_localize(None)  # the wall time in the zone
    elif isinstance(times.dtype, pd.DatetimeTZDtype):  # naive text, read as UTC: the time as written
        times = times.dt.tz_localize(None)
    days = times.dt.floor("D") if spec.freq == "D" else \
        times.dt.to_period("W-SUN" if spec.freq == "W" else "M").dt.start_time  # W-SUN: weeks ending on Sunday
    return days.to_numpy("datetime64[D]")


def note_zones(aware: np.ndarray, first: int, rows: np.ndarray, counts: Counts, source: str, row_name: str) -> None:
    """Remember the first row with a UTC offset and the first without; both: a SignalError naming one of each."""
    if counts.first_aware is None and aware.any():
        counts.first_aware = first + int(rows[np.flatnonzero(aware)[0]])
    if counts.first_naive is None and not aware.all():
        counts.first_naive = first + int(rows[np.flatnonzero(~aware)[0]])
    if counts.first_aware is not None and counts.first_naive is not None:
        raise SignalError(f"{source}: dates with and without a UTC offset ({row_name} {counts.first_aware} has one, "
                          f"{row_name} {counts.first_naive} has none), so the times cannot be put in one zone; "
                          + ZONES_HINT)


def summarise(totals: pd.DataFrame | None, spec: Spec) -> pd.DataFrame:
    """The sums per (group, period) -> the signal table, sorted by group and period."""
    if totals is None:
        return pd.DataFrame({spec.group: pd.Series(dtype=str), **{name: pd.Series(dtype=float) for name in COLUMNS}})
    totals = totals.sort_index()
    n = totals["count"].to_numpy()
    mean = totals["sum"].to_numpy() / n
    low, high = interval(n, mean, totals["sumsq"].to_numpy())
    counts = totals[list(LABELS)].to_numpy()
    table = pd.DataFrame({
        spec.group: totals.index.get_level_values("group").astype(str),
        "period": totals.index.get_level_values("period"),
        "count": n.astype(np.int64),
        "score": mean, "score_low": low, "score_high": high,
        **{share: counts[:, i] / n for i, share in enumerate(SHARES)},
        "bullishness": np.log((1 + counts[:, LABELS.index("positive")]) / (1 + counts[:, LABELS.index("negative")])),
    })
    table["period"] = pd.to_datetime(table["period"]).dt.date
    return table.reset_index(drop=True)


def interval(n: np.ndarray, mean: np.ndarray, sumsq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean's 95 % interval from count, mean and sum of squares: mean +- t * sd / sqrt(n), clipped to [-1, 1];
    NaN for n = 1, where there is no spread to measure."""
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = np.clip((sumsq - n * mean**2) / (n - 1), 0, None)  # sample variance; scores in [-1, 1]: no cancellation to fear
        half = np.array([t_quantile(LEVEL, k - 1) if k > 1 else np.nan for k in n]) * np.sqrt(variance / n)
    return np.clip(mean - half, -1, 1), np.clip(mean + half, -1, 1)


def t_quantile(level: float, df: int) -> float:
    """Student's t two-sided `level` quantile with `df` degrees of freedom (the Space has no scipy): exact for
    df 1 and 2; above, the Cornish-Fisher expansion of Abramowitz & Stegun 26.7.5, within 0.13 % of the exact
    value at df 3 and closer from there (tests/test_signal.py compares it with scipy's)."""
    p = (1 + level) / 2
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    z = NormalDist().inv_cdf(p)
    g = ((z**3 + z) / 4, (5 * z**5 + 16 * z**3 + 3 * z) / 96, (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
         (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160)
    return z + sum(gi / df ** (i + 1) for i, gi in enumerate(g))


def signal_chart(table: pd.DataFrame, spec: Spec, title: str | None = None):
    """The mean score per period with its 95 % interval as a band, one colour per group (the legend shows and hides
    a group), and the rows per period as bars beneath, stacked over the groups, on the same time axis."""
    import plotly.graph_objects as go
    from plotly.colors import DEFAULT_PLOTLY_COLORS
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.04)
    for i, (group, rows) in enumerate(table.groupby(spec.group, sort=True)):
        colour = DEFAULT_PLOTLY_COLORS[i % len(DEFAULT_PLOTLY_COLORS)]
        band = colour.replace("rgb", "rgba").replace(")", ", 0.18)")
        x = pd.to_datetime(rows["period"])
        common = {"legendgroup": str(group), "x": x}
        fig.add_trace(go.Scatter(**common, y=rows["score_high"], mode="lines", line={"width": 0}, showlegend=False,
                                 hoverinfo="skip"), row=1, col=1)
        fig.add_trace(go.Scatter(**common, y=rows["score_low"], mode="lines", line={"width": 0}, fill="tonexty",
                                 fillcolor=band, showlegend=False, hoverinfo="skip"), row=1, col=1)
        fig.add_trace(go.Scatter(
            **common, y=rows["score"], name=str(group), mode="lines+markers", line={"color": colour},
            customdata=np.stack([rows["score_low"], rows["score_high"], rows["count"]], axis=1),
            hovertemplate=f"{group}<br>%{{x|%Y-%m-%d}}: score %{{y:.2f}} [%{{customdata[0]:.2f}}, "
                          "%{customdata[1]:.2f}], %{customdata[2]} rows<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Bar(**common, y=rows["count"], name=str(group), marker_color=colour, showlegend=False,
                             hovertemplate=f"{group}<br>%{{x|%Y-%m-%d}}: %{{y}} rows<extra></extra>"), row=2, col=1)
    fig.add_hline(y=0, line={"color": "gray", "width": 1, "dash": "dot"}, row=1, col=1)
    period = FREQS[spec.freq].split(" ")[0]
    fig.update_layout(title=title or f"Sentiment per {period}: mean score with its 95 % interval",
                      barmode="stack", legend_title_text=spec.group, hovermode="closest")
    fig.update_yaxes(title_text="score: P(positive) - P(negative)", range=[-1.05, 1.05], row=1, col=1)
    fig.update_yaxes(title_text="rows", row=2, col=1)
    return fig


def records(table: pd.DataFrame) -> list[dict]:
    """The table as JSON-ready rows: periods as YYYY-MM-DD, no interval as null."""
    rows = table.astype(object).where(table.notna(), None).to_dict("records")
    for row in rows:
        row["period"] = str(row["period"])
    return rows
