"""The behavioural suite's test templates: what eval/behaviour.py draws its cases from.

Every sentence is written for this suite, about fictional companies; none is PhraseBank
text. Templates fill `{slots}` from the word lists and number bands below; a slot
written with a capital (`{Period}`) is the same value, capitalised, and "Foods's" is written
"Foods'". Training
templates (issue 22's augmentation) belong elsewhere, with their own words, names
and frames, so that the suite never measures memorised templates.

Three kinds of test (CheckList, Ribeiro et al. 2020):
- MFT: each sentence has an expected label;
- INV: two wordings of one fact must get the same label;
- DIR: the second sentence states the same news more strongly, so the news' own
  label must not lose probability (more than eval/behaviour.py's MARGIN).
"""

from __future__ import annotations

from dataclasses import dataclass

COMPANIES = (
    "Varnholm Oyj", "Quillby Systems", "Osterlund Marine", "Brisa Textiles", "Halvoro Energy", "Mirekko Foods",
    "Tallgren Logistics", "Pellinor Pharma", "Santeri Steel", "Korvala Paper", "Aldwyn Robotics",
    "Nimbra Telecom", "Fjellmark Foods", "Ostrava Glassworks", "Lumenko Oyj", "Drummond Ashby plc",
    "Kettering Vale Group", "Rautila Engineering", "Ombria Software", "Vessmark Shipping", "Haldor Cables",
    "Sirkka Retail", "Tamsin Biotech", "Glenrock Minerals", "Pohjavaara Oyj", "Corvel Chemicals",
    "Marrow & Finch", "Yllas Elevators", "Brenmoor Holdings", "Kaivola Timber",
)
BANKS = ("Corvina Bank", "Aaltomaa Savings Bank", "Northgate Mutual", "Helvik Bank", "Rosendal Capital",
         "Kilvo Credit", "Merrow Bancorp", "Saarni Bank")
CLIENTS = ("a Nordic utility", "a German carmaker", "a Polish railway operator", "a Dutch retailer",
           "a Canadian mining group", "a Spanish shipyard", "a Baltic grid operator", "a Japanese paper mill")

WORDS = {
    "company": COMPANIES,
    "bank": BANKS,
    "client": CLIENTS,
    "cur": ("EUR", "USD", "SEK", "GBP", "NOK", "CHF"),
    "quarter": ("first-quarter", "second-quarter", "third-quarter", "fourth-quarter", "half-year", "full-year"),
    "period": ("in the first quarter", "in the second quarter", "in the third quarter", "in January-June",
               "in the fourth quarter", "in the first nine months"),
    "horizon": ("this year", "next year", "for the full year", "in the second half"),
    "city": ("Tampere", "Gdansk", "Porto", "Leeds", "Ghent", "Aarhus", "Brno", "Uppsala", "Lyon", "Kaunas"),
    "month": ("January", "February", "March", "April", "May", "June", "August", "September", "October",
              "November"),
    "person": ("Aino Lehtisalo", "Mark Ridley", "Petra Kolmar", "Jonas Ekholm", "Irene Vasko", "Tuomas Reinikka"),
    "role": ("chief financial officer", "chief executive officer", "head of investor relations",
             "chief operating officer"),
    "unit": ("packaging", "logistics", "consumer electronics", "forestry equipment", "catering", "software"),
    # higher is better
    "growth": ("net sales", "operating profit", "order intake", "net profit", "revenue", "EBITDA"),
    # lower is better, in money
    "cost": ("operating costs", "net debt", "interest expenses", "production costs", "fixed costs",
             "raw material costs", "energy costs"),
    "up": ("rose", "increased", "climbed", "grew"),
    "down": ("fell", "decreased", "declined", "dropped"),
    "intensifier": ("sharply", "strongly", "significantly", "steeply", "substantially"),
}

# Numbers: (lowest, highest, decimals); drawn uniformly. Bands keep a number's meaning: a `pct` is a clear
# change, `tiny_pct` a change too small to matter much, `large_pct` a large one.
NUMBERS = {
    "pct": (6, 35, 0),
    "tiny_pct": (1, 2, 0),
    "large_pct": (20, 40, 0),
    "small_pct": (1.0, 3.5, 1),  # growth short of ...
    "big_pct": (8.0, 15.0, 1),  # ... what analysts expected
    "amount": (5.0, 400.0, 1),  # millions
    "n": (40, 1200, -1),  # headcounts and job cuts, in tens
    "countries": (3, 14, 0),
    "day": (1, 28, 0),
    "hour": (9, 16, 0),
    "dps": (0.10, 1.50, 2),  # a dividend per share
}
# `low` < `high`, two amounts in millions: high is 1.3 to 2 times low
PAIR = {"band": NUMBERS["amount"], "ratio": (1.3, 2.0)}
# Lower-is-better ratios, each in its own band: `ratio` names one, `ratio_low` < `ratio_high` are its values.
RATIOS = {
    "combined ratio": (88.0, 104.0, 1, " %"),
    "cost-to-income ratio": (45.0, 75.0, 1, " %"),
    "customer churn": (0.8, 3.5, 1, " %"),
    "gearing": (20.0, 90.0, 0, " %"),
    "leverage": (1.2, 4.0, 1, " times EBITDA"),
    "non-performing loan ratio": (0.5, 4.0, 1, " %"),
}
NUMERIC = ("pct", "amount", "low", "high", "n", "dps")  # what INV redraws within its band


@dataclass(frozen=True)
class Frame:
    """A sentence with an expected label; `why` says why, where a reader might hesitate."""

    text: str
    label: str
    why: str = ""


@dataclass(frozen=True)
class Pair:
    """Two sentences filled from one draw: INV wants one label for both; DIR wants `label`'s probability in `b`
    no lower than in `a`."""

    a: str
    b: str
    label: str


@dataclass(frozen=True)
class Capability:
    name: str
    kind: str  # MFT, INV or DIR
    title: str  # what passes, in a few words
    frames: tuple  # Frame (MFT, and INV by redrawing) or Pair (INV and DIR written out)
    redraw: tuple[str, ...] = ()  # INV by redrawing: the slots whose values change between the two sentences


NEGATED_BAD_NEWS = (
    Frame("{company}'s {quarter} operating loss narrowed to {cur} {low} million from {cur} {high} million", "positive"),
    Frame("{company} narrowed its net loss to {cur} {low} million {period}", "positive"),
    Frame("{company}'s pre-tax loss shrank to {cur} {low} million from {cur} {high} million a year earlier",
          "positive"),
    Frame("{bank}'s provisions for bad loans fell to {cur} {low} million from {cur} {high} million", "positive"),
    Frame("{bank}'s loan loss provisions {down} {pct} % {period}", "positive"),
    Frame("{bank}'s credit losses {down} {pct} % {period}", "positive"),
    Frame("{company} calls off the planned layoffs of {n} workers", "positive"),
    Frame("{company} cancels its plan to cut {n} jobs in {city}", "positive"),
    Frame("{company} will not close its {city} plant after all, saving {n} jobs", "positive"),
    Frame("{company}'s impairment charges fell to {cur} {low} million from {cur} {high} million", "positive"),
    Frame("{company} ends the temporary layoffs at its {city} mill", "positive"),
    Frame("Layoffs at {company}'s {city} factory are no longer needed, the company says", "positive"),
)

LOWER_IS_BETTER = (
    Frame("{company}'s {cost} {down} {pct} % {period}", "positive"),
    Frame("{company}'s {cost} {down} to {cur} {low} million from {cur} {high} million", "positive"),
    Frame("{company}'s {ratio} {down} to {ratio_low} from {ratio_high} {period}", "positive"),
    Frame("{company} cut its {cost} by {pct} % {period}", "positive"),
    Frame("{company} reports lower {cost} {period}", "positive"),
    Frame("{company}'s {cost} {up} {pct} % {period}", "negative"),
    Frame("{company}'s {cost} {up} to {cur} {high} million from {cur} {low} million", "negative"),
    Frame("{company}'s {ratio} {up} to {ratio_high} from {ratio_low} {period}", "negative"),
    Frame("{company}'s {cost} jumped by {pct} % {period}", "negative"),
    Frame("{company} reports higher {cost} {period}", "negative"),
)

AGAINST_EXPECTATIONS = (
    Frame("{company}'s {quarter} operating profit of {cur} {high} million beat analysts' forecast of {cur} {low} "
          "million", "positive"),
    Frame("{company}'s {quarter} {growth} beat market expectations", "positive"),
    Frame("{company}'s {quarter} {growth} came in above the consensus estimate", "positive"),
    Frame("{company}'s {growth} {up} {big_pct} % {period}, ahead of the {small_pct} % analysts had expected",
          "positive"),
    Frame("{company}'s {quarter} {growth} {up} {small_pct} %, short of the {big_pct} % analysts expected", "negative",
          "a miss: the rise is smaller than the market priced in"),
    Frame("{company}'s {quarter} operating profit rose to {cur} {low} million but missed the {cur} {high} million "
          "consensus", "negative", "a miss, even though profit rose"),
    Frame("{company}'s {quarter} {growth} fell short of analysts' estimates", "negative"),
    Frame("{company}'s {growth} grew {small_pct} % {period}, below the {big_pct} % the market had forecast",
          "negative", "a miss, even though it grew"),
    Frame("{company}'s {quarter} {growth} came in as analysts had expected", "neutral",
          "in line: nothing the market did not expect"),
    Frame("{company}'s {quarter} operating profit of {cur} {amount} million matched the consensus forecast", "neutral",
          "in line"),
    Frame("{company}'s {growth} met market expectations {period}", "neutral", "in line"),
)

ROUTINE_NOTICES = (
    Frame("{company} will publish its {quarter} report on {day} {month}", "neutral"),
    Frame("{company}'s annual general meeting will be held in {city} on {day} {month}", "neutral"),
    Frame("{company} employs {n} people in {countries} countries", "neutral"),
    Frame("{company} will pay an unchanged dividend of {cur} {dps} per share", "neutral"),
    Frame("{company}'s board proposes a dividend of {cur} {dps} per share, the same as a year earlier", "neutral"),
    Frame("{company}'s shares will trade ex-dividend on {day} {month}", "neutral"),
    Frame("{company} appoints {person} as {role} from {day} {month}", "neutral"),
    Frame("{company} holds a capital markets day in {city} on {day} {month}", "neutral"),
    Frame("{company} had {n} employees at the end of {month}", "neutral"),
    Frame("{company}'s {quarter} results briefing starts at {hour}:00 CET on {day} {month}", "neutral"),
)

FLAT_CHANGES = (
    Frame("{company}'s {growth} remained unchanged at {cur} {amount} million {period}", "neutral"),
    Frame("{company}'s {growth} held flat at {cur} {amount} million", "neutral"),
    Frame("{company}'s {growth} stayed at last year's level of {cur} {amount} million", "neutral"),
    Frame("{company}'s {growth} held stable {period}, at {cur} {amount} million", "neutral"),
    Frame("{company}'s headcount was unchanged at {n}", "neutral"),
    Frame("{company}'s {growth} remained virtually unchanged from a year earlier, at {cur} {amount} million", "neutral"),
    Frame("{company}'s {ratio} was unchanged at {ratio_low} {period}", "neutral"),
    Frame("{company}'s {growth} totalled {cur} {amount} million {period}, the same as a year earlier", "neutral"),
    Frame("{company}'s {growth} remained essentially flat, up 0.1 %, at {cur} {amount} million", "neutral",
          "a change of 0.1 % is no news"),
)

HEDGED_FUTURE = (
    Frame("{company} plans to open a new office in {city}", "neutral", "a plan, no result stated"),
    Frame("{company} plans to publish its new strategy in {month}", "neutral", "a plan, no result stated"),
    Frame("{company} may sell its {unit} business", "neutral", "a possibility, with no price or effect stated"),
    Frame("{company} is considering a bond issue {horizon}", "neutral", "a possibility, no result stated"),
    Frame("{company} expects to announce the outcome of its {unit} review in {month}", "neutral",
          "a date, no result stated"),
    Frame("{company} expects its {growth} to remain at last year's level {horizon}", "neutral",
          "guidance of no change"),
    Frame("{company} expects its {growth} to grow by {pct} % {horizon}", "positive",
          "guidance of growth is good news now"),
    Frame("{company} expects its {growth} to rise {horizon}", "positive", "guidance of growth"),
    Frame("{company} expects its {growth} to fall {horizon}", "negative", "guidance of decline is bad news now"),
    Frame("{company} warns that its {growth} may decline {horizon}", "negative", "a profit warning, hedged"),
    Frame("{company} may cut up to {n} jobs {horizon}", "negative", "possible layoffs are bad news"),
)

# A change of guidance is the news itself (issue 22: an adapter trained on templated plans and flat figures read
# "raises its forecast" as neutral). Not in MFT_FRAMES, so the INV capabilities draw what they drew before.
GUIDANCE_CHANGES = (
    Frame("{company} raises its {growth} forecast {horizon}", "positive", "a raised forecast is good news now"),
    Frame("{company} upgrades its {growth} guidance {horizon}", "positive"),
    Frame("{company} increases its {growth} forecast to {cur} {amount} million {horizon}", "positive"),
    Frame("{company} now expects higher {growth} {horizon} than it forecast earlier", "positive"),
    Frame("{company} cuts its {growth} forecast {horizon}", "negative", "a cut forecast is bad news now"),
    Frame("{company} downgrades its {growth} guidance {horizon}", "negative"),
    Frame("{company} withdraws its {growth} outlook {horizon}", "negative", "a withdrawn outlook signals trouble"),
    Frame("{company} now expects lower {growth} {horizon} than it forecast earlier", "negative"),
    Frame("{company} reiterates its {growth} forecast {horizon}", "neutral", "a confirmed forecast changes nothing"),
    Frame("{company} keeps its {growth} guidance unchanged {horizon}", "neutral"),
    Frame("{company} confirms its earlier {growth} outlook {horizon}", "neutral"),
)

MFT_FRAMES = NEGATED_BAD_NEWS + LOWER_IS_BETTER + AGAINST_EXPECTATIONS + ROUTINE_NOTICES + FLAT_CHANGES + HEDGED_FUTURE

WORD_ORDER = (
    Pair("{company}'s {growth} {up} {pct} % {period} on strong demand",
         "On strong demand, {company}'s {growth} {up} {pct} % {period}", "positive"),
    Pair("{company}'s {growth} {down} {pct} % {period} as demand weakened",
         "As demand weakened, {company}'s {growth} {down} {pct} % {period}", "negative"),
    Pair("{company}'s {cost} {up} {pct} % {period}", "{Period}, {company}'s {cost} {up} {pct} %", "negative"),
    Pair("{company}'s {cost} {down} {pct} % {period}", "{Period}, {company}'s {cost} {down} {pct} %", "positive"),
    Pair("{company} cuts {n} jobs in {city}", "In {city}, {company} cuts {n} jobs", "negative"),
    Pair("{company} wins a {cur} {amount} million order from {client}",
         "A {cur} {amount} million order from {client} goes to {company}", "positive"),
    Pair("{company}'s operating loss narrowed to {cur} {low} million from {cur} {high} million",
         "From {cur} {high} million, {company}'s operating loss narrowed to {cur} {low} million", "positive"),
    Pair("{company} will pay an unchanged dividend of {cur} {dps} per share",
         "An unchanged dividend of {cur} {dps} per share will be paid by {company}", "neutral"),
    Pair("{company}'s {quarter} {growth} beat analysts' expectations",
         "Analysts' expectations were beaten by {company}'s {quarter} {growth}", "positive"),
    Pair("{company}'s {quarter} {growth} fell short of analysts' estimates",
         "Analysts' estimates were not met by {company}'s {quarter} {growth}", "negative"),
    Pair("{company}'s annual general meeting will be held in {city} on {day} {month}",
         "On {day} {month}, {company}'s annual general meeting will be held in {city}", "neutral"),
    Pair("{company}'s {growth} remained unchanged at {cur} {amount} million {period}",
         "{Period}, {company}'s {growth} remained unchanged at {cur} {amount} million", "neutral"),
)

SHARPLY = (
    Pair("{company}'s {growth} {up} {period}", "{company}'s {growth} {up} {intensifier} {period}", "positive"),
    Pair("{company}'s {growth} {down} {period}", "{company}'s {growth} {down} {intensifier} {period}", "negative"),
    Pair("Demand for {company}'s products {up} {period}", "Demand for {company}'s products {up} {intensifier} {period}",
         "positive"),
    Pair("Demand for {company}'s products {down} {period}",
         "Demand for {company}'s products {down} {intensifier} {period}", "negative"),
    Pair("{company}'s operating loss widened {period}", "{company}'s operating loss widened {intensifier} {period}",
         "negative"),
    Pair("{company}'s shares rose after it won a {cur} {amount} million order",
         "{company}'s shares rose {intensifier} after it won a {cur} {amount} million order", "positive"),
    Pair("{company}'s shares fell after it cut its outlook",
         "{company}'s shares fell {intensifier} after it cut its outlook", "negative"),
)

BIGGER_CHANGE = (
    Pair("{company}'s {growth} {up} {tiny_pct} % {period}", "{company}'s {growth} {up} {large_pct} % {period}",
         "positive"),
    Pair("{company}'s {growth} {down} {tiny_pct} % {period}", "{company}'s {growth} {down} {large_pct} % {period}",
         "negative"),
    Pair("{company}'s {growth} {up} by {tiny_pct} % to {cur} {amount} million",
         "{company}'s {growth} {up} by {large_pct} % to {cur} {amount} million", "positive"),
    Pair("{company}'s {growth} {down} by {tiny_pct} % to {cur} {amount} million",
         "{company}'s {growth} {down} by {large_pct} % to {cur} {amount} million", "negative"),
    Pair("{company} cuts its workforce by {tiny_pct} %", "{company} cuts its workforce by {large_pct} %", "negative"),
    Pair("{company}'s share price rose {tiny_pct} % after its results",
         "{company}'s share price rose {large_pct} % after its results", "positive"),
)

CAPABILITIES = (
    Capability("negated_bad_news", "MFT", "shrinking or called-off bad news is positive", NEGATED_BAD_NEWS),
    Capability("lower_is_better", "MFT", "costs, debt, ratios: falling is positive, rising negative", LOWER_IS_BETTER),
    Capability("against_expectations", "MFT", "beat is positive, miss negative, in line neutral",
               AGAINST_EXPECTATIONS),
    Capability("routine_notices", "MFT", "dates, meetings, headcounts, unchanged dividends are neutral",
               ROUTINE_NOTICES),
    Capability("flat_changes", "MFT", "unchanged or negligible changes are neutral", FLAT_CHANGES),
    Capability("hedged_future", "MFT", "plans are neutral; guidance and warnings as stated", HEDGED_FUTURE),
    Capability("inv_company", "INV", "another company name keeps the label", MFT_FRAMES, ("company", "bank")),
    Capability("inv_currency", "INV", "another currency keeps the label",
               tuple(f for f in MFT_FRAMES if "{cur}" in f.text), ("cur",)),
    Capability("inv_number", "INV", "another number in the same band keeps the label",
               tuple(f for f in MFT_FRAMES if any(f"{{{slot}}}" in f.text for slot in NUMERIC)), NUMERIC),
    Capability("inv_word_order", "INV", "the same fact in another word order keeps the label", WORD_ORDER),
    Capability("dir_sharply", "DIR", '"sharply" and the like do not weaken the news', SHARPLY),
    Capability("dir_bigger_change", "DIR", "a 20-40 % change is no weaker news than a 1-2 % one", BIGGER_CHANGE),
    # Added later, so last: each capability draws from its own seeded stream, and a capability drawn after the
    # others cannot change their cases.
    Capability("guidance_changes", "MFT", "a raised forecast is positive, a cut one negative, a kept one neutral",
               GUIDANCE_CHANGES),
)
