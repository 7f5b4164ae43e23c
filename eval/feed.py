"""Write the example news feed: 3 fictional companies over 90 days, one of whose news turns sour on a known date.

    python eval/feed.py -o space/examples/feed.csv     # the committed file; the same seed writes the same bytes

Every headline is written for this feed, about fictional companies (none of the behaviour suite's or the
training templates'), in plain wording a finance reader labels at a glance; no PhraseBank text. From 1 January
to 31 March 2026, each company has 1 to 3 headlines a weekday and at most one a weekend day, at a time between
08:00 and 19:59 Helsinki time, written with its UTC offset (+02:00, and +03:00 from the summer time change on
29 March), so no headline's UTC day differs from its local day. Each headline's kind (negative, neutral or
positive) follows its company's mix, dealt per month (`deck`); Ravndal Shipping's mix turns from mostly positive to mostly negative
on SHIFT, 1 February, and the other two keep theirs. The file holds `date`, `ticker` and `text`, in time order;
the kind each headline was written as stays here (`make_feed`), not in the file, which is what a model is
asked to label. tests/test_signal.py checks that `finsent signal` finds the shift, and only it.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import random
import re
from pathlib import Path

from finsent.space.classifier import LABELS

SEED = 33
START, DAYS = datetime.date(2026, 1, 1), 90  # 1 January to 31 March 2026
SHIFT = datetime.date(2026, 2, 1)
SUMMER_TIME = datetime.date(2026, 3, 29)  # Helsinki moves from +02:00 to +03:00 (the last Sunday of March)
FEED = Path(__file__).resolve().parent.parent / "space" / "examples" / "feed.csv"

# ticker -> (name, mix before SHIFT, mix from SHIFT); a mix is (negative, neutral, positive) shares
COMPANIES = {
    "RVND": ("Ravndal Shipping", (0.10, 0.25, 0.65), (0.65, 0.25, 0.10)),
    "BLMS": ("Bellmere Software", (0.20, 0.35, 0.45), (0.20, 0.35, 0.45)),
    "SLTV": ("Saltvik Foods", (0.30, 0.40, 0.30), (0.30, 0.40, 0.30)),
}
SHIFTED = "RVND"

TEMPLATES = {
    "negative": (
        "{company} cuts its full-year profit forecast",
        "{company} to cut {n} jobs as orders fall",
        "{company}'s quarterly operating profit falls {pct} percent",
        "{company} swings to an operating loss of EUR {amount} million",
        "{company}'s net sales dropped {pct} percent to EUR {amount} million",
        "{company} loses a EUR {amount} million contract with {client}",
        "{company} warns of weaker demand and withdraws its outlook",
        "{company}'s shares slump after a profit warning",
        "{company} suspends its dividend after a quarterly loss",
        "{company} misses analysts' estimates as costs rise",
    ),
    "neutral": (
        "{company} will publish its {report} on {day} {month}",
        "{company}'s annual general meeting will be held in {city} on {day} {month}",
        "{company} has {n} employees in {countries} countries",
        "{company} will hold a capital markets day in {city}",
        "{company} publishes the notice of its annual general meeting",
        "{company} to present at an investor conference in {city}",
        "{company} names its auditor for the coming financial year",
        "{company}'s board will meet in {city} on {day} {month}",
    ),
    "positive": (
        "{company} raises its full-year profit forecast",
        "{company} wins a EUR {amount} million order from {client}",
        "{company}'s quarterly operating profit rises {pct} percent",
        "{company}'s net sales grew {pct} percent to EUR {amount} million",
        "{company} beats analysts' profit estimates and lifts its dividend",
        "{company} reports record quarterly sales and a higher profit",
        "{company}'s order intake climbed {pct} percent in the quarter",
        "{company} returns to profit as sales recover",
        "{company} raises its dividend by {pct} percent",
        "{company}'s shares jump after a strong quarterly report",
    ),
}
WORDS = {
    "client": ("a Finnish grid operator", "a Belgian retailer", "an Estonian port authority", "a Scottish distiller",
               "a Swiss rail operator", "a Latvian utility", "a Portuguese shipyard"),
    "city": ("Turku", "Rotterdam", "Gothenburg", "Hamburg", "Tallinn", "Copenhagen", "Antwerp"),
    "month": ("April", "May", "June"),
    "report": ("first-quarter report", "interim report", "annual report"),
}
NUMBERS = {"pct": (5, 30), "amount": (10, 250), "n": (12, 90), "countries": (3, 12), "day": (2, 28)}  # n: tens


def make_feed(seed: int = SEED) -> list[dict]:
    """The feed's rows in time order, each {date, ticker, text} and the `kind` it was written as.

    The kinds of a company's headlines in a month are dealt from a shuffled deck that holds its mix exactly (to
    the nearest headline), not drawn one by one: a stable company's months then differ by the model's reading and
    the wording, not by a run of luck in the draw."""
    rng = random.Random(seed)
    slots = {}  # (ticker, month) -> [(date, ticker)]
    for offset in range(DAYS):
        day = START + datetime.timedelta(days=offset)
        for ticker in COMPANIES:
            for _ in range(rng.randint(1, 3) if day.weekday() < 5 else rng.randint(0, 1)):
                minute = rng.randrange(8 * 60, 20 * 60)
                zone = "+03:00" if day >= SUMMER_TIME else "+02:00"
                slots.setdefault((ticker, day.month), []).append(
                    (f"{day.isoformat()}T{minute // 60:02d}:{minute % 60:02d}:00{zone}", ticker))
    rows = []
    for (ticker, month), times in slots.items():
        name, before, after = COMPANIES[ticker]
        mix = before if datetime.date(START.year, month, 1) < SHIFT else after
        for (date, _), kind in zip(times, deck(mix, len(times), rng), strict=True):
            rows.append({"date": date, "ticker": ticker, "text": fill(rng.choice(TEMPLATES[kind]), name, rng),
                         "kind": kind})
    return sorted(rows, key=lambda row: (row["date"], row["ticker"]))


def deck(mix: tuple[float, ...], count: int, rng: random.Random) -> list[str]:
    """`count` kinds in the shares of `mix` (largest remainders round), shuffled."""
    exact = [share * count for share in mix]
    numbers = [int(x) for x in exact]
    for i in sorted(range(len(mix)), key=lambda i: numbers[i] - exact[i])[: count - sum(numbers)]:
        numbers[i] += 1
    cards = [label for label, number in zip(LABELS, numbers, strict=True) for _ in range(number)]
    rng.shuffle(cards)
    return cards


def fill(template: str, company: str, rng: random.Random) -> str:
    values = {"company": company}
    for slot in re.findall(r"{(\w+)}", template):
        if slot in WORDS:
            values[slot] = rng.choice(WORDS[slot])
        elif slot in NUMBERS:
            number = rng.randint(*NUMBERS[slot])
            values[slot] = f"{number * 10:,}" if slot == "n" else str(number)
    return template.format(**values).replace("s's ", "s' ")  # "Foods's" -> "Foods'"


def write_feed(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["date", "ticker", "text"], extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", default=str(FEED), help="the CSV to write (default: space/examples/feed.csv)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"the draw (default {SEED}: the committed file)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    rows = make_feed(args.seed)
    write_feed(Path(args.output), rows)
    print(f"feed: {len(rows)} headlines, {len(COMPANIES)} companies, {DAYS} days -> {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
