"""The training templates of `--augment` (train/augment.py): headlines about fictional companies, with labels.

Written apart from the behaviour suite's test templates (eval/behaviour_cases.py), so that the suite
measures what the model learned, not templates it memorised. Nothing here is shared with them:
- company and bank names, and their first words (the stems): disjoint;
- frames: no frame is a test frame, even with its slots renamed (tests/test_augment.py);
- verbs, metrics, periods, cities, currencies, people, roles, clients and business units: every
  phrase in these lists is absent, as a whole phrase, from the test templates and their word lists.
What may overlap, because a headline cannot do without it: single common words inside those phrases
("costs", "profit", "sales", "ratio", "loss", "dividend", "shares"), month names, and numbers
(their bands are this file's own). Slots fill as the suite's do (eval/behaviour.py `fill`):
`{low}` < `{high}` are a pair of amounts, `{ratio}` with `{ratio_low}` < `{ratio_high}` one
lower-is-better ratio and two of its values.

Each capability is one the shipped adapter fails (BENCHMARKS.md, issue 22), plus a few contrast
frames of the opposite label (a loss that deepened, a growth metric that fell), so that no single
word ("loss", "down", "flat") can stand for the label.
"""

from __future__ import annotations

COMPANIES = (
    "Kelvaro Instruments", "Tusmark AB", "Ilvesranta Packaging", "Penhallow Motors", "Sorvikko Dairy",
    "Aldenmoor Brewing", "Quenby Optics", "Harjuvesi Corp", "Ystrad Aviation", "Noravik ASA", "Teglund Furniture",
    "Vireo Semiconductors", "Kuusamon Foundry", "Blackmere Media", "Oskarvik Plastics", "Lindhaven Hotels",
    "Rasmala Pumps", "Thornbury Coatings", "Elvenstad Wind", "Mauritz Fibres", "Calderwick Tyres",
    "Jokisalo Ceramics", "Prestvik Networks", "Wendell Amory Corp", "Suvanto Industries", "Greyfell Mining",
    "Ardentia Labs", "Holmqvist Freight A/S", "Zellin Components", "Marlowe & Quist",
)
BANKS = ("Tervola Savings Bank", "Eastmarch Bancorp", "Kalmari Bank", "Ridgeway Building Society",
         "Solberg Insurance", "Hovika Credit Union", "Lakeshire Bank", "Vuorela Mortgage Bank")

WORDS = {
    "company": COMPANIES,
    "bank": BANKS,
    "client": ("a Swedish bus operator", "an Austrian steelmaker", "a French telecom operator",
               "an Italian shipowner", "a Norwegian fish farmer", "a Czech brewery", "an Irish airline"),
    "cur": ("DKK", "PLN", "CZK", "AUD", "CAD", "HUF"),
    "quarter": ("Q1", "Q2", "Q3", "Q4", "January-March", "April-June", "nine-month", "interim"),
    "period": ("in Q2", "in Q3", "in the April-June period", "in the review period", "year on year",
               "in the latest quarter", "in the July-September period", "in 2023"),
    "horizon": ("in 2026", "over the coming quarters", "in the current financial year",
                "in the first half of next year", "over the next two years"),
    "city": ("Oulu", "Vaasa", "Bergen", "Poznan", "Graz", "Bilbao", "Tartu", "Odense", "Linz", "Malmo", "Riga"),
    "month": ("January", "March", "May", "July", "September", "December"),
    "year": ("2022", "2023", "2024"),
    "person": ("Helmi Vartiainen", "Oscar Delacroix", "Sanna Pulkkinen", "Ruth Abernethy", "Niklas Strand",
               "Leena Mattsson"),
    "role": ("chief technology officer", "general counsel", "chief risk officer", "head of sales",
             "chair of the board", "chief commercial officer"),
    "unit": ("industrial coatings", "data centre", "pet food", "garden tools", "road construction", "medical imaging"),
    # higher is better
    "growth": ("turnover", "operating income", "gross profit", "net income", "comparable sales",
               "order backlog", "adjusted EBIT", "operating cash flow"),
    # lower is better, in money
    "cost": ("personnel expenses", "financing costs", "borrowings", "freight costs", "overheads",
             "administrative expenses", "warranty costs", "maintenance costs", "labour costs"),
    "up": ("went up", "advanced", "expanded", "surged", "moved up"),
    "down": ("went down", "slipped", "contracted", "eased", "retreated"),
    "up_to": ("improve", "expand", "advance", "go up"),  # infinitives, for guidance
    "down_to": ("contract", "weaken", "go down", "slip"),
    "aim": ("projection", "target", "goal", "forecast range"),  # what guidance is called
}

# (lowest, highest, decimals): decimals -1 rounds to tens
NUMBERS = {
    "pct": (5, 40, 0),
    "small_pct": (0.5, 3.0, 1),  # growth short of ...
    "big_pct": (7.0, 18.0, 1),  # ... what the market had expected
    "tenth_pct": (0.1, 0.4, 1),  # a change too small to be news
    "amount": (3.0, 900.0, 1),  # millions
    "n": (30, 2500, -1),
    "countries": (2, 20, 0),
    "day": (1, 28, 0),
    "hour": (8, 17, 0),
    "dps": (0.05, 2.40, 2),
}
PAIR = {"band": NUMBERS["amount"], "ratio": (1.4, 2.5)}  # `low` < `high`: high is 1.4 to 2.5 times low
RATIOS = {  # lower is better: (lowest, highest, decimals, unit)
    "loss ratio": (55.0, 85.0, 1, " %"),
    "expense ratio": (18.0, 35.0, 1, " %"),
    "debt-to-equity ratio": (30.0, 150.0, 0, " %"),
    "employee attrition": (4.0, 18.0, 1, " %"),
    "default rate": (0.5, 5.0, 1, " %"),
    "scrap rate": (1.0, 8.0, 1, " %"),
    "loan delinquency rate": (0.5, 4.0, 1, " %"),
}

POS, NEU, NEG = "positive", "neutral", "negative"

NEGATED_BAD_NEWS = (
    ("{company}'s loss before taxes was reduced to {cur} {low} million, compared with {cur} {high} million a "
     "year ago", POS),
    ("{company} posted a smaller operating loss of {cur} {low} million against {cur} {high} million", POS),
    ("The operating loss at {company} contracted to {cur} {low} million {period}", POS),
    ("{company} trimmed its {quarter} loss to {cur} {low} million", POS),
    ("{bank} booked smaller loan write-downs of {cur} {low} million {period}, against {cur} {high} million", POS),
    ("{bank}'s loan impairments eased to {cur} {low} million from {cur} {high} million", POS),
    ("{bank} set aside {cur} {low} million for doubtful loans, down from {cur} {high} million", POS),
    ("{company} scraps plans to lay off {n} staff", POS),
    ("{company} withdraws the notice of redundancies for {n} employees in {city}", POS),
    ("{company} reverses its decision to shut the {city} site", POS),
    ("{company} recalls all temporarily laid-off staff at its {city} works", POS),
    ("{company} returned to profit {period} after a loss a year earlier", POS),
    ("{company} booked smaller writedowns of {cur} {low} million, against {cur} {high} million a year before", POS),
    # contrasts: bad news that grew
    ("{company}'s operating loss deepened to {cur} {high} million from {cur} {low} million", NEG),
    ("{company} swung to a loss of {cur} {low} million {period}", NEG),
    ("{bank} raised its reserves for doubtful loans to {cur} {high} million from {cur} {low} million", NEG),
    ("{company} announces redundancies of {n} staff in {city}", NEG),
)

LOWER_IS_BETTER = (
    ("{Cost} at {company} {down} by {pct} % {period}", POS),
    ("{company} lowered its {cost} to {cur} {low} million, from {cur} {high} million a year earlier", POS),
    ("{company} says its {cost} were {pct} % lower {period}", POS),
    ("{company} brought its {ratio} down to {ratio_low} from {ratio_high}", POS),
    ("{company}'s {ratio} {down} to {ratio_low}, against {ratio_high} a year earlier", POS),
    ("{company} reports a {pct} % decrease in {cost}", POS),
    ("{company} said its {cost} {down} to {cur} {low} million, from {cur} {high} million", POS),
    ("Lower {cost} lifted {company}'s margins {period}", POS),
    ("{Cost} at {company} {up} by {pct} % {period}", NEG),
    ("{company}'s {ratio} {up} to {ratio_high}, against {ratio_low} a year earlier", NEG),
    ("{company} reports a {pct} % increase in {cost}", NEG),
    ("{company} said its {cost} {up} to {cur} {high} million, from {cur} {low} million", NEG),
    ("Higher {cost} weighed on {company}'s result {period}", NEG),
    # contrasts: a metric where higher is better moves the other way
    ("{company} said its {growth} {down} to {cur} {low} million, from {cur} {high} million", NEG),
    ("{Growth} at {company} {up} by {pct} % {period}", POS),
)

AGAINST_EXPECTATIONS = (
    ("{company}'s {quarter} {growth} of {cur} {high} million topped the {cur} {low} million analysts had "
     "pencilled in", POS),
    ("{company} outperformed forecasts with {quarter} {growth} of {cur} {high} million", POS),
    ("{company} reported {growth} up {big_pct} %, well above the {small_pct} % consensus", POS),
    ("Analysts had expected {small_pct} % growth in {company}'s {growth}; it came in at {big_pct} %", POS),
    ("{company}'s {growth} {up} only {small_pct} % {period}, while analysts had forecast {big_pct} %", NEG),
    ("{company}'s {quarter} {growth} disappointed, at {cur} {low} million against {cur} {high} million expected",
     NEG),
    ("{company}'s {growth} {up} to {cur} {low} million but undershot the consensus of {cur} {high} million", NEG),
    ("{company} reported {quarter} {growth} below forecasts", NEG),
    ("Though its {growth} {up} {small_pct} %, {company} lagged the {big_pct} % the market had priced in", NEG),
    ("{company}'s {quarter} {growth} was in line with forecasts", NEU),
    ("{company}'s {quarter} {growth} of {cur} {amount} million was close to the consensus", NEU),
    ("{company} posted {growth} largely as the market had anticipated {period}", NEU),
    ("{company}'s {quarter} {growth} landed in line with the average analyst estimate of {cur} {amount} million",
     NEU),
)

FLAT_CHANGES = (
    ("{company}'s {growth} was flat at {cur} {amount} million {period}", NEU),
    ("{company} kept its {growth} steady at {cur} {amount} million", NEU),
    ("{company}'s {growth} was level with the previous year at {cur} {amount} million", NEU),
    ("{company}'s {growth} was broadly stable, moving {tenth_pct} %, at {cur} {amount} million", NEU),
    ("{company}'s {growth} showed no change {period}, at {cur} {amount} million", NEU),
    ("{company} reports {growth} of {cur} {amount} million, on a par with a year ago", NEU),
    ("{company}'s {ratio} stayed level at {ratio_low}", NEU),
    ("{company}'s workforce was steady at {n}", NEU),
    ("{company}'s {growth} moved by less than {tenth_pct} % {period}", NEU),
    ("{company}'s {cost} were flat at {cur} {amount} million", NEU),
    # contrasts: a change that is news
    ("{company}'s {growth} {up} {pct} % to {cur} {amount} million", POS),
    ("{company}'s {growth} {down} {pct} % to {cur} {amount} million", NEG),
)

# A plan with no result yet is neutral, but a change of guidance is the news itself and carries its sign: v1 had
# 7 neutral frames of 13 here, one of them "updated financial targets", and its adapters read raised forecasts as
# neutral (BENCHMARKS.md, issue 22); v3 has 6 of 17. "raises", guidance's commonest verb, with
# other nouns than the suite's (it says forecast, guidance, outlook).
HEDGED_FUTURE = (
    ("{company} is looking into a listing of its {unit} arm", NEU),
    ("{company} aims to decide on the {city} investment by {month}", NEU),
    ("{company} could divest its {unit} operations", NEU),
    ("{company} is weighing strategic options for its {unit} unit", NEU),
    ("{company} says it may seek a partner for its {unit} business", NEU),
    ("{company} sees its {growth} staying roughly at the current level {horizon}", NEU),
    ("{company} guides for {growth} to {up_to} {horizon}", POS),
    ("{company} lifts its {growth} outlook {horizon}", POS),
    ("{company} hikes its {growth} {aim} {horizon}", POS),
    ("{company} raises its {growth} {aim} {horizon}", POS),
    ("{company} revises its {growth} {aim} upwards {horizon}", POS),
    ("{company} is preparing to hire {n} people {horizon}", POS),
    ("{company} anticipates its {growth} will {down_to} {horizon}", NEG),
    ("{company} lowers its guidance for {growth} {horizon}", NEG),
    ("{company} revises its {growth} {aim} downwards {horizon}", NEG),
    ("{company} reduces its {growth} {aim} {horizon}", NEG),
    ("{company} could shed as many as {n} positions {horizon}", NEG),
)

ROUTINE_NOTICES = (
    ("{company} to report {quarter} earnings on {day} {month}", NEU),
    ("{company}'s extraordinary general meeting convenes in {city} on {day} {month}", NEU),
    ("{company} has a staff of {n} across {countries} countries", NEU),
    ("{company} confirms a dividend of {cur} {dps} per share, unchanged from last year", NEU),
    ("The record date for {company}'s dividend is {day} {month}", NEU),
    ("{company} names {person} {role}, effective {day} {month}", NEU),
    ("{person} becomes {role} of {company} on {day} {month}", NEU),
    ("{company} will host a conference call for analysts at {hour}:30 on {day} {month}", NEU),
    ("{company} runs production in {countries} countries", NEU),
    ("{company}'s nomination committee proposes {person} as a new board member", NEU),
    ("{company} publishes its annual report for {year}", NEU),
    ("Trading in {company}'s new shares begins on {day} {month}", NEU),
    ("{company} signs a service agreement with {client}; terms were not disclosed", NEU),
)

# name: frames. The names are the suite's MFT capabilities these frames teach (eval/behaviour_cases.py).
CAPABILITIES = {
    "negated_bad_news": NEGATED_BAD_NEWS,
    "lower_is_better": LOWER_IS_BETTER,
    "against_expectations": AGAINST_EXPECTATIONS,
    "flat_changes": FLAT_CHANGES,
    "hedged_future": HEDGED_FUTURE,
    "routine_notices": ROUTINE_NOTICES,
}
