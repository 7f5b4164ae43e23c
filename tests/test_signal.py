"""finsent signal (eval/aggregate.py over space/signals.py): the arithmetic on hand-checkable tables, periods and time
zones, the interval's coverage, bad input, the example feed, and the shift in it found through the shipped model.

Every table here is written for these tests (fictional tickers); only the shift test runs a real model.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_default_adapter import needs_embedded

from finsent.eval import aggregate as signal_script
from finsent.eval import feed
from finsent.eval.headline_tables import read_provenance
from finsent.space.classifier import LABELS
from finsent.space.signals import LEVEL, SignalError, Spec, aggregate, interval, read_labelled, records, t_quantile

COLUMNS = ["ticker", "period", "count", "score", "score_low", "score_high", "share_negative", "share_neutral",
           "share_positive", "bullishness"]


def labelled(rows: list[tuple]) -> pd.DataFrame:
    """classify's output for (date, ticker, negative, neutral, positive) rows, with its label column."""
    frame = pd.DataFrame(rows, columns=["date", "ticker", *LABELS])
    frame.insert(2, "text", [f"headline {i}" for i in range(len(frame))])
    probs = frame[list(LABELS)].to_numpy(dtype=float)
    frame["label"] = [LABELS[int(p.argmax())] if not np.isnan(p).any() else "" for p in probs]
    return frame


# KSTR: three rows on Monday 5 January, scores +0.6, -0.6, 0.0 (P(pos) - P(neg)); one on Tuesday, +0.8.
# VALE: one row on Monday, +0.2, and one row with no scores (classify's `empty`), left out.
TABLE = labelled([
    ("2026-01-05T09:00:00+02:00", "KSTR", 0.1, 0.2, 0.7),
    ("2026-01-05T10:00:00+02:00", "KSTR", 0.7, 0.2, 0.1),
    ("2026-01-05T11:00:00+02:00", "KSTR", 0.3, 0.4, 0.3),
    ("2026-01-06T09:00:00+02:00", "KSTR", 0.0, 0.2, 0.8),
    ("2026-01-05T12:00:00+02:00", "VALE", 0.2, 0.4, 0.4),
    ("2026-01-05T13:00:00+02:00", "VALE", None, None, None),
])


@pytest.fixture
def table_files(tmp_path):
    """TABLE as classify writes it: Parquet, and CSV (empty cells for the row without scores)."""
    parquet, csv_path = tmp_path / "labelled.parquet", tmp_path / "labelled.csv"
    TABLE.to_parquet(parquet, index=False)
    TABLE.to_csv(csv_path, index=False)
    return parquet, csv_path


def run(*argv) -> int:
    return signal_script.main([str(a) for a in argv] + ["--quiet"])


def test_a_hand_checkable_day(table_files, tmp_path):
    out = tmp_path / "signal.csv"
    assert run(table_files[0], "-o", out, "--by", "ticker") == 0
    table = pd.read_csv(out)
    assert list(table.columns) == COLUMNS
    assert table[["ticker", "period", "count"]].values.tolist() == [
        ["KSTR", "2026-01-05", 3], ["KSTR", "2026-01-06", 1], ["VALE", "2026-01-05", 1]]
    kstr = table.iloc[0]
    # mean (0.6 - 0.6 + 0.0) / 3 = 0; sd = sqrt((0.36 + 0.36 + 0) / 2) = 0.6; t(0.975, 2) = 4.3027;
    # half-width 4.3027 * 0.6 / sqrt(3) = 1.4905, clipped to [-1, 1]
    assert kstr["score"] == pytest.approx(0) and (kstr["score_low"], kstr["score_high"]) == (-1, 1)
    assert [kstr[f"share_{label}"] for label in LABELS] == pytest.approx([1 / 3] * 3)
    assert kstr["bullishness"] == pytest.approx(0)  # ln((1 + 1) / (1 + 1))
    tuesday = table.iloc[1]  # one row: its score, no interval; bullishness ln((1 + 1) / (1 + 0))
    assert tuesday["score"] == pytest.approx(0.8) and math.isnan(tuesday["score_low"])
    assert tuesday["bullishness"] == pytest.approx(math.log(2)) and tuesday["share_positive"] == 1
    provenance = json.loads((tmp_path / "signal.csv.json").read_text())
    assert (provenance["rows"], provenance["scored"], provenance["unscored"]) == (6, 5, 1)


def test_csv_and_parquet_and_any_chunk_size_give_one_table(table_files):
    spec = Spec(by="ticker", freq="W")
    whole, counts = aggregate(read_labelled(table_files[0], spec), spec)
    for path in table_files:
        for chunk_rows in (1, 2, 4):
            chunked, _ = aggregate(read_labelled(path, spec, chunk_rows=chunk_rows), spec)
            pd.testing.assert_frame_equal(chunked, whole)
    assert whole["count"].tolist() == [4, 1] and counts.unscored == 1  # weeks from Monday 5 January


def test_weeks_start_on_monday_months_on_the_first_and_offsets_move_the_day():
    """23:30+02:00 on Sunday 11 January is 21:30 UTC, still Sunday; in Tokyo (+09:00) it is Monday 12 January."""
    frame = labelled([("2026-01-11T23:30:00+02:00", "KSTR", 0.1, 0.2, 0.7),
                      ("2026-01-12T08:00:00+02:00", "KSTR", 0.1, 0.2, 0.7),
                      ("2026-02-01T00:30:00+02:00", "KSTR", 0.1, 0.2, 0.7)])  # 31 January, 22:30 UTC

    def periods(freq, tz="UTC"):
        table, _ = aggregate([frame], Spec(freq=freq, tz=tz))
        return [(str(p), n) for p, n in zip(table["period"], table["count"], strict=True)]

    assert periods("D") == [("2026-01-11", 1), ("2026-01-12", 1), ("2026-01-31", 1)]
    assert periods("W") == [("2026-01-05", 1), ("2026-01-12", 1), ("2026-01-26", 1)]
    assert periods("M") == [("2026-01-01", 3)]
    assert periods("D", "Asia/Tokyo") == [("2026-01-12", 2), ("2026-02-01", 1)]
    assert periods("M", "Europe/Helsinki") == [("2026-01-01", 2), ("2026-02-01", 1)]


def test_dates_without_offsets_are_taken_as_written_and_parquet_timestamps_work(tmp_path):
    naive = labelled([("2026-01-11 23:30", "KSTR", 0.1, 0.2, 0.7), ("2026-01-12", "KSTR", 0.1, 0.2, 0.7)])
    assert [str(p) for p in aggregate([naive], Spec(tz="Asia/Tokyo"))[0]["period"]] == ["2026-01-11", "2026-01-12"]
    stamped = naive.assign(date=pd.to_datetime(["2026-01-11T23:30:00+02:00", "2026-01-12T08:00:00+02:00"], utc=True))
    stamped.to_parquet(tmp_path / "t.parquet")
    spec = Spec(tz="Asia/Tokyo")
    table, _ = aggregate(read_labelled(tmp_path / "t.parquet", spec), spec)
    assert [str(p) for p in table["period"]] == ["2026-01-12"] and table["count"].tolist() == [2]


def test_a_score_column_is_used_where_there_is_one_and_the_prefix_is_followed():
    """A document of `classify --by_sentence`: its `score` is its sentences' mean, not P(pos) - P(neg) of the mean."""
    frame = labelled([("2026-01-05", "KSTR", 0.1, 0.2, 0.7)]).assign(score=[0.25])
    assert aggregate([frame], Spec())[0]["score"].tolist() == [0.25]
    prefixed = labelled([("2026-01-05", "KSTR", 0.1, 0.2, 0.7)]).rename(columns=lambda c: "pred_" + c
                                                                         if c in (*LABELS, "label") else c)
    assert aggregate([prefixed], Spec(prefix="pred_"))[0]["score"].tolist() == pytest.approx([0.6])
    with pytest.raises(SignalError, match="no score column and no negative/neutral/positive columns"):
        from finsent.space.signals import needed

        needed(list(prefixed.columns), Spec())


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 8, 12, 30, 100, 10_000])
def test_the_t_quantile_is_scipys(df):
    from scipy import stats

    assert t_quantile(LEVEL, df) == pytest.approx(stats.t.ppf(0.975, df), rel=1.5e-3)


@pytest.mark.parametrize("n, expected", [(5, 0.862), (12, 0.933), (40, 0.944)])
def test_the_interval_covers_the_true_mean_about_95_percent_of_the_time(n, expected):
    """4,000 groups of n headlines each, scores drawn from a skewed three-point mix like a feed's (mostly mildly
    positive, a tail of strong negatives; true mean 0.12): the share of groups whose interval holds 0.12 is the
    coverage. On such skewed scores a normal interval falls short with few rows: `expected` is the coverage over
    40,000 groups (one run of this simulation, seed 1), 0.86 at 5 rows, 0.93 at 12, 0.94 at 40 (and 0.95 at 100);
    on a symmetric mix it was 0.95 to 0.96 from 3 rows. Over 4,000 groups the standard error is about
    sqrt(0.95 * 0.05 / 4000) = 0.0034; the tolerance, 0.012, is about 3.5 of them, and this seed is fixed."""
    rng = np.random.default_rng(33)
    values, weights = np.array([-0.9, 0.0, 0.6]), np.array([0.2, 0.3, 0.5])
    truth = float(values @ weights)  # -0.9 * 0.2 + 0.6 * 0.5 = 0.12
    replicates = 4000
    scores = rng.choice(values, p=weights, size=(replicates, n))
    low, high = interval(np.full(replicates, n), scores.mean(axis=1), (scores**2).sum(axis=1))
    coverage = float(((low <= truth) & (truth <= high)).mean())
    assert abs(coverage - expected) < 0.012, coverage


def test_one_row_has_no_interval_and_a_constant_group_a_zero_width_one():
    low, high = interval(np.array([1, 3]), np.array([0.5, 0.5]), np.array([0.25, 0.75]))
    assert np.isnan(low[0]) and np.isnan(high[0]) and (low[1], high[1]) == (0.5, 0.5)


def test_records_are_json_with_dates_and_nulls():
    rows = records(aggregate([TABLE], Spec(by="ticker"))[0])
    assert json.loads(json.dumps(rows))[1] == {
        "ticker": "KSTR", "period": "2026-01-06", "count": 1, "score": pytest.approx(0.8), "score_low": None,
        "score_high": None, "share_negative": 0.0, "share_neutral": 0.0, "share_positive": 1.0,
        "bullishness": pytest.approx(math.log(2))}


def bad_table(tmp_path, name, frame):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("case, argv, message", [
    ("no date column", ["--time", "published"], "no 'published' column (its columns are ['date', 'ticker', "),
    ("no by column", ["--by", "sector"], "no 'sector' column"),
    ("no scores and no text", [], "not classify's output and no text column to score"),
    ("an unparseable date", [], "row 2: date '03/01/2026' is not an ISO 8601 date; write ISO 8601 dates"),
    ("a row without a date", [], "row 2: no date; every scored row needs one"),
    ("mixed time zones", [], "dates with and without a UTC offset (row 1 has one, row 2 has none)"),
    ("a bad time zone", ["--tz", "Mars/Olympus"], "time zone 'Mars/Olympus': give an IANA name"),
    ("a chart that is not html", ["--chart", "chart.png"], "--chart chart.png: name it .html"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, case, argv, message):
    good = labelled([("2026-01-05T09:00:00+02:00", "KSTR", 0.1, 0.2, 0.7),
                     ("2026-01-06T09:00:00+02:00", "KSTR", 0.1, 0.2, 0.7)])
    frame = {"an unparseable date": good.assign(date=["2026-01-05", "03/01/2026"]),
             "a row without a date": good.assign(date=["2026-01-05", ""]),
             "mixed time zones": good.assign(date=["2026-01-05T09:00:00Z", "2026-01-06 09:00"]),
             "no scores and no text": good.drop(columns=[*LABELS, "label", "text"])}.get(case, good)
    source = bad_table(tmp_path, "in.csv", frame)
    assert run(source, "-o", tmp_path / "out.parquet", *[a.replace("chart.png", str(tmp_path / "chart.png"))
                                                          for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err.replace(str(tmp_path) + "/", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_an_unknown_freq_is_refused_by_name_with_the_choices(tmp_path, capsys, table_files):
    with pytest.raises(SystemExit) as stopped:
        run(table_files[0], "-o", tmp_path / "out.csv", "--freq", "Q")
    assert stopped.value.code == 2
    err = capsys.readouterr().err.splitlines()  # argparse's usage, then the one line that says what is wrong
    assert err[-1].endswith("error: argument --freq: invalid choice: 'Q' (choose from 'D', 'W', 'M')")
    assert not (tmp_path / "out.csv").exists()


def test_an_existing_output_is_kept_without_overwrite(table_files, tmp_path, capsys):
    out = tmp_path / "out.parquet"
    out.write_text("mine")
    assert run(table_files[0], "-o", out) == 2 and out.read_text() == "mine"
    assert "pass --overwrite" in capsys.readouterr().err
    assert run(table_files[0], "-o", out, "--overwrite") == 0
    assert pq.read_table(out).column("group").to_pylist() == ["all", "all"]  # no --by: one group, two days
    assert read_provenance(out)["freq"] == "D"


def test_the_chart_is_html_and_png_where_a_browser_is(table_files, tmp_path):
    from finsent.eval.plots import find_browser
    from finsent.space.signals import signal_chart

    table, _ = aggregate([TABLE], Spec(by="ticker"))
    fig = signal_chart(table, Spec(by="ticker"))
    scores = [trace for trace in fig.data if trace.type == "scatter" and trace.showlegend is not False]
    assert [trace.name for trace in scores] == ["KSTR", "VALE"]  # one legend entry per group
    assert [trace.name for trace in fig.data if trace.type == "bar"] == ["KSTR", "VALE"]
    assert fig.data[-1].yaxis == "y2"  # the counts beneath, on the shared time axis
    assert run(table_files[0], "-o", tmp_path / "out.csv", "--by", "ticker", "--chart", tmp_path / "signal.html") == 0
    assert (tmp_path / "signal.html").stat().st_size > 1000
    assert (tmp_path / "signal.png").is_file() == (find_browser() is not None)


def test_a_table_of_texts_is_scored_first_by_classify(tmp_path, evaluated):
    source = tmp_path / "news.csv"
    with open(source, "w", newline="") as handle:
        csv.writer(handle).writerows([("date", "ticker", "text"), ("2026-01-05", "KSTR", "Kestrel Oyj raises its "
                                      "outlook"), ("2026-01-05", "KSTR", ""), ("2026-01-06", "VALE", "Vale cuts jobs")])
    assert run(source, "-o", tmp_path / "out.csv", "--by", "ticker", "--adapter", evaluated) == 0
    table = pd.read_csv(tmp_path / "out.csv")
    assert table["count"].tolist() == [1, 1]  # the empty text has no score
    assert json.loads((tmp_path / "out.csv.json").read_text())["classify"]["adapter"] == str(evaluated)


def test_the_committed_feed_is_what_the_generator_writes(tmp_path):
    written = feed.write_feed(tmp_path / "feed.csv", feed.make_feed())
    assert written.read_bytes() == feed.FEED.read_bytes()
    assert feed.FEED.stat().st_size < 200_000
    frame = pd.read_csv(feed.FEED)
    assert list(frame.columns) == ["date", "ticker", "text"] and set(frame["ticker"]) == set(feed.COMPANIES)


def test_the_feeds_companies_are_its_own():
    from finsent.eval.behaviour_cases import COMPANIES as SUITE
    from finsent.train.augment_templates import COMPANIES as TRAINING

    names = {name for name, *_ in feed.COMPANIES.values()}
    assert not names & set(SUITE) and not names & set(TRAINING)
    assert not {word for name in names for word in name.split()[:1]} & {n.split()[0] for n in (*SUITE, *TRAINING)}


@pytest.fixture(scope="module")
def feed_signal(tmp_path_factory):
    """The feed labelled by the shipped default model (classify as a user runs it), then its signal per month."""
    from finsent.eval import classify

    folder = tmp_path_factory.mktemp("feed")
    assert classify.main([str(feed.FEED), "-o", str(folder / "labelled.parquet"), "--quiet"]) == 0
    assert run(folder / "labelled.parquet", "-o", folder / "signal.csv", "--by", "ticker", "--freq", "M") == 0
    return pd.read_csv(folder / "signal.csv")


def overlap(a, b) -> bool:
    return a["score_low"] <= b["score_high"] and b["score_low"] <= a["score_high"]


@needs_embedded
def test_the_shift_in_the_feed_is_found_and_nothing_else(feed_signal):
    """Ravndal Shipping's news turns on 1 February: January's interval lies apart from February's and March's,
    which overlap; the two other companies' three months all overlap one another."""
    assert feed.SHIFT.isoformat() == "2026-02-01" and feed.SHIFTED == "RVND"
    months = {ticker: rows.set_index("period").to_dict("index") for ticker, rows in feed_signal.groupby("ticker")}
    january, february, march = (months[feed.SHIFTED][p] for p in ("2026-01-01", "2026-02-01", "2026-03-01"))
    assert january["score_low"] > 0 > february["score_high"] and 0 > march["score_high"]
    assert not overlap(january, february) and not overlap(january, march) and overlap(february, march)
    for ticker in set(months) - {feed.SHIFTED}:
        one, two, three = months[ticker].values()
        assert overlap(one, two) and overlap(one, three) and overlap(two, three), ticker
