"""Behavioural tests of a headline classifier (CheckList for finance): failure rates per capability.

    python eval/behaviour.py                                # the shipped default adapter on its embedded base
    python eval/behaviour.py --base-only --out base.json    # the base model alone
    python eval/behaviour.py --tfidf                        # TF-IDF trained on the adapter's own training rows
    python eval/behaviour.py --adapter space/default-adapter --record   # into its eval_results.json, report, card

A seeded suite of templated headlines about fictional companies (eval/behaviour_cases.py),
`--cases` per capability: minimum functionality tests (an expected label), invariance tests
(two wordings of one fact; a failure is a label flip) and directional tests (stronger news;
a failure is the news' label losing more than MARGIN of probability). Per capability it
reports the failure rate with its 95 % Wilson interval, how many of its frames (templates) have
a failing case, and the worst failing cases. A frame's cases tend to fail together, so the
interval is the rate's on these frames' wordings; other wordings of the skill may fare otherwise.
`finsent evaluate --behaviour` runs the same suite on every model it evaluates.

Anything with `predict_proba(texts) -> (n, 3) array` in LABELS order can be tested:
finsent's Classifier, the TF-IDF baseline (eval/baseline.py), a scripted fake.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import re
import string
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from finsent.eval import behaviour_cases
from finsent.eval.behaviour_cases import CAPABILITIES, Capability, Frame
from finsent.eval.uncertainty import LEVEL, wilson_interval
from finsent.space.classifier import DEFAULT_ADAPTER, LABELS
from finsent.space.explain import batch_scorer, explain
from finsent.train.data import UsageError, text_key

logger = logging.getLogger("finsent.behaviour")

CASES = 100  # per capability: a failure rate's 95 % interval is then at most about +-0.1 wide
SEED = 0
MARGIN = 0.05  # DIR: how much probability the news' label may lose before it counts as a failure
EXAMPLES = 3  # failing cases kept per capability, the worst first
WHY_WORDS = 3  # with explain: the words that pushed a failing MFT case most toward its wrong label
SUITE = "finsent CheckList for finance, v1"


@dataclass(frozen=True)
class Case:
    capability: str
    texts: tuple[str, ...]  # one sentence (MFT) or two (INV, DIR)
    label: str  # MFT: the expected label; DIR: the label whose probability must not fall; INV: the fact's label
    template: str  # the frame it was filled from (a Pair's two, joined by " / ")


def draw_suite(cases: int = CASES, seed: int = SEED) -> list[Case]:
    """`cases` per capability (fewer where its templates cannot make so many distinct ones), the same for the
    same seed. No sentence occurs twice in the suite, compared as the data split compares texts (text_key)."""
    if cases < 1:
        raise ValueError(f"cases per capability must be at least 1, not {cases}")
    seen, suite = set(), []
    for capability in CAPABILITIES:
        rng = random.Random(f"{SUITE}/{seed}/{capability.name}")
        drawn = 0
        for _ in range(cases * 50):  # tries: a capability whose templates run out stops short
            if drawn == cases:
                break
            frame = rng.choice(capability.frames)
            texts = _texts(capability, frame, rng)
            keys = {text_key(t) for t in texts}
            if len(keys) < len(texts) or keys & seen:
                continue
            seen |= keys
            template = frame.text if isinstance(frame, Frame) else f"{frame.a} / {frame.b}"
            suite.append(Case(capability.name, texts, frame.label, template))
            drawn += 1
        if drawn < cases:
            logger.warning("%s: its templates made %d distinct cases, not %d", capability.name, drawn, cases)
    return suite


def _texts(capability: Capability, frame, rng: random.Random) -> tuple[str, ...]:
    if isinstance(frame, Frame) and capability.kind == "MFT":
        return (fill(frame.text, draw_values(fields(frame.text), rng)),)
    if isinstance(frame, Frame):  # INV by redrawing some slots of one sentence
        values = draw_values(fields(frame.text), rng)
        changed = [f for f in fields(frame.text) if f.lower() in capability.redraw]
        other = values
        for _ in range(20):
            other = {**values, **draw_values(changed, rng)}
            if other != values:
                break
        return fill(frame.text, values), fill(frame.text, other)
    values = draw_values(fields(frame.a) | fields(frame.b), rng)
    return fill(frame.a, values), fill(frame.b, values)


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def fill(template: str, values: dict[str, str]) -> str:
    """The template with its slots filled; `{Slot}` is `{slot}`'s value capitalised; a name ending in s takes
    the possessive "s'" ("Mirekko Foods' sales"), not "s's"."""
    filled = {}
    for name in fields(template):
        value = values[name.lower()]
        filled[name] = value[:1].upper() + value[1:] if name[:1].isupper() else value
    return re.sub(r"s's\b", "s'", template.format(**filled))


def draw_values(names, rng: random.Random, lists=behaviour_cases) -> dict[str, str]:
    """A value for each slot named (lower-cased); slots drawn together (low/high, ratio/ratio_low/ratio_high) come
    together. Names are drawn in sorted order, so a draw depends on the set of names only. `lists` holds the
    WORDS, NUMBERS, PAIR and RATIOS to draw from: the suite's own, or the training templates' (train/augment.py)."""
    WORDS, NUMBERS, PAIR, RATIOS = lists.WORDS, lists.NUMBERS, lists.PAIR, lists.RATIOS
    values = {}
    for name in sorted({n.lower() for n in names}):
        if name in values:
            continue
        if name in ("low", "high"):
            lowest, highest, decimals = PAIR["band"]
            low = rng.uniform(lowest, highest / PAIR["ratio"][1])
            values |= {"low": _number(low, decimals), "high": _number(low * rng.uniform(*PAIR["ratio"]), decimals)}
        elif name in ("ratio", "ratio_low", "ratio_high"):
            metric = rng.choice(sorted(RATIOS))
            lowest, highest, decimals, unit = RATIOS[metric]
            gap = (highest - lowest) / 5  # a clear change: at least a fifth of the metric's band
            low = rng.uniform(lowest, highest - gap)
            high = rng.uniform(low + gap, highest)
            values |= {"ratio": metric, "ratio_low": _number(low, decimals) + unit,
                       "ratio_high": _number(high, decimals) + unit}
        elif name in NUMBERS:
            lowest, highest, decimals = NUMBERS[name]
            values[name] = _number(rng.uniform(lowest, highest), decimals)
        elif name in WORDS:
            values[name] = rng.choice(WORDS[name])
        else:
            raise KeyError(f"no values for the slot {{{name}}}: add it to {lists.__name__}.WORDS or NUMBERS")
    return values


def _number(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}" if decimals > 0 else f"{int(round(value, decimals)):,}"


def suite_info(suite: list[Case], cases: int, seed: int, margin: float = MARGIN) -> dict:
    """What eval_results.json's `behaviour` section says of the suite: enough to draw the same one again."""
    digest = hashlib.sha256("\n".join("\t".join(c.texts) for c in suite).encode()).hexdigest()
    return {"suite": SUITE, "seed": seed, "cases_per_capability": cases, "cases": len(suite), "sha256": digest,
            "margin": margin, "level": LEVEL, "interval": "Wilson score",
            "failures": {"MFT": "the label is not the expected one",
                         "INV": "the label differs between two wordings of one fact",
                         "DIR": f"stronger news loses more than {margin} of its label's probability"}}


def run_suite(model, suite: list[Case], margin: float = MARGIN, examples: int = EXAMPLES,
              explain_failures: bool = False) -> dict[str, dict]:
    """{capability: its cases, failures, failure rate with its Wilson interval, failing examples (worst first)}.

    `model.predict_proba(texts)` scores every distinct sentence once: an (n, 3) array in LABELS order.
    `explain_failures`: each failing MFT example kept also gets `why`, the WHY_WORDS words that pushed most
    toward the label it gave (space/explain.py: how much that label's probability falls without the word)."""
    texts = sorted({t for case in suite for t in case.texts})
    probs = np.asarray(model.predict_proba(texts), dtype=float)
    if probs.shape != (len(texts), len(LABELS)) or not np.isfinite(probs).all():
        raise ValueError(f"predict_proba gave an array of shape {probs.shape}; expected ({len(texts)}, "
                         f"{len(LABELS)}) finite probabilities in the order {LABELS}")
    row = {t: probs[i] for i, t in enumerate(texts)}
    results = {}
    for capability in CAPABILITIES:
        cases = [c for c in suite if c.capability == capability.name]
        if not cases:
            continue
        judged = [judge(capability.kind, c, [row[t] for t in c.texts], margin) for c in cases]
        failing = sorted((j for j in judged if j["severity"] > 0), key=lambda j: -j["severity"])
        failures = len(failing)
        result = {"kind": capability.kind, "title": capability.title, "cases": len(cases), "failures": failures,
                  "failure_rate": failures / len(cases), "interval": wilson_interval(failures, len(cases)),
                  # a template's cases tend to fail together, so the interval holds for these frames' wordings,
                  # not for the skill in other words: how many frames fail says how broad a failure is
                  "frames": len({c.template for c in cases}),
                  "failing_frames": len({j["template"] for j in failing})}
        if capability.kind == "MFT":
            result["by_label"] = {label: {"cases": sum(c.label == label for c in cases),
                                          "failures": sum(j["severity"] > 0 and c.label == label
                                                          for c, j in zip(cases, judged, strict=True))}
                                  for label in LABELS if any(c.label == label for c in cases)}
        result["failing"] = [{k: v for k, v in j.items() if k != "severity"} for j in _varied(failing, examples)]
        if explain_failures:
            for case in result["failing"]:
                if "expected" in case:  # an MFT case: one sentence, one wrong label
                    case["why"] = why(model, case["texts"][0], case["predicted"])
        results[capability.name] = result
    return results


def why(model, text: str, label: str, words: int = WHY_WORDS) -> list[dict]:
    """Up to `words` words of `text` that pushed `model` toward `label`, strongest first: [{word, weight}]; a word
    whose push rounds to nothing (under 0.005) is not listed."""
    explained = explain(text, batch_scorer(model.predict_proba))
    return [{"word": w.text, "weight": round(w.change[label], 4)} for w in explained.top(words, label)
            if w.change[label] >= 0.005]


def _varied(failing: list[dict], examples: int) -> list[dict]:
    """The first `examples` of `failing` (worst first), one per template before any template comes twice."""
    templates, firsts, rest = set(), [], []
    for j in failing:
        (rest if j["template"] in templates else firsts).append(j)
        templates.add(j["template"])
    return (firsts + rest)[:examples]


def judge(kind: str, case: Case, probs: list[np.ndarray], margin: float = MARGIN) -> dict:
    """The case as scored, with `severity` > 0 when it fails: MFT, the wrong label's probability; INV, how far
    apart the two predictions are where their labels differ; DIR, how much more than `margin` the label lost."""
    predicted = [LABELS[int(p.argmax())] for p in probs]
    if kind == "MFT":
        return {"texts": list(case.texts), "template": case.template, "expected": case.label,
                "predicted": predicted[0],
                "probability": round(float(probs[0].max()), 4),
                "severity": float(probs[0].max()) if predicted[0] != case.label else 0.0}
    if kind == "INV":
        gap = float(np.abs(probs[0] - probs[1]).max())
        return {"texts": list(case.texts), "template": case.template, "predicted": predicted,
                "severity": gap if predicted[0] != predicted[1] else 0.0}
    k = LABELS.index(case.label)
    loss = float(probs[0][k] - probs[1][k])
    return {"texts": list(case.texts), "template": case.template, "label": case.label,
            "probabilities": [round(float(probs[0][k]), 4), round(float(probs[1][k]), 4)],
            "severity": loss - margin if loss > margin else 0.0}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--base-only", action="store_true", help="test the base model alone, without the adapter")
    which.add_argument("--tfidf", action="store_true",
                       help="test the TF-IDF baseline trained on the adapter's own training rows (its split drawn "
                       "again from the source it records)")
    which.add_argument("--record", action="store_true",
                       help="test every model of the adapter folder's eval_results.json (base, fine-tuned, TF-IDF) "
                       "and add the results to it, its eval_report.md and its model card; nothing else changes")
    parser.add_argument("--adapter", default=str(DEFAULT_ADAPTER),
                        help="a trained-model folder or Hub id (default: the shipped space/default-adapter)")
    parser.add_argument("--base", help="the base model (default: the adapter's own)")
    parser.add_argument("--out", help="also write the results to this JSON file")
    parser.add_argument("--cases", type=int, default=CASES, help=f"cases per capability (default {CASES})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"the suite's seed (default {SEED})")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"),
                        help="compute precision (default: bf16 where the hardware has it, else fp32)")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    args = make_parser().parse_args(argv)
    try:
        results = behaviour(args)
    except UsageError as err:  # the user's to fix: one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    from finsent.eval.report import behaviour_lines

    print("\n".join(behaviour_lines(results)))
    return 0


def behaviour(args: argparse.Namespace) -> dict:
    """Draw the suite, test the model(s) and write what was asked; results in eval_results.json's shape:
    {"behaviour": suite_info, "runs": {name: {"description", "behaviour": run_suite's}}}."""
    logger.info("arguments: %s", vars(args))
    if args.cases < 1:
        raise UsageError(f"--cases {args.cases}: give at least 1 case per capability")
    out = Path(args.out) if args.out else None
    if out is not None and (out.suffix != ".json" or not out.parent.is_dir()):
        raise UsageError(f"--out {args.out}: give a .json file in a folder that exists")
    folder = Path(args.adapter)
    if (args.tfidf or args.record) and not folder.is_dir():
        raise UsageError(f"--adapter {args.adapter}: --tfidf and --record need an adapter folder")
    results = record(folder, args) if args.record else score_one(folder, args)
    if out is not None:
        from finsent.eval.report import write_text_atomic

        write_text_atomic(out, json.dumps(results, indent=2) + "\n")
        logger.info("results in %s", out)
    return results


def score_one(folder: Path, args: argparse.Namespace) -> dict:
    """The suite on one model: the adapter on its base, the base alone, or the TF-IDF baseline."""
    from finsent.eval import evaluate

    suite = draw_suite(args.cases, args.seed)
    if args.tfidf:
        name, (model, description) = "baseline", tfidf_model(folder)
    else:
        base = args.base or evaluate.adapter_base(args.adapter)
        adapter = None if args.base_only else args.adapter
        if adapter and folder.is_dir():
            evaluate.check_adapter(folder)
        model = evaluate.get_classifier(base, adapter, dtype=args.dtype)
        name = "base" if args.base_only else "fine_tuned"
        description = f"`{base}`" + (f" + adapter `{adapter}`" if adapter else "") + f", {model.precision}"
    return {"behaviour": suite_info(suite, args.cases, args.seed),
            "runs": {name: {"description": description, "behaviour": run_suite(model, suite, explain_failures=True)}}}


def tfidf_model(folder: Path):
    """(the TF-IDF baseline fitted on the adapter's training rows, its description): what evaluate trains."""
    from finsent.eval.baseline import MODEL, fit_tfidf
    from finsent.train.data import load_split

    train = load_split(folder)["train"]  # a DataError, a UsageError, names the fix
    return fit_tfidf(train), f"{MODEL}, trained on the training rows of `{folder}` ({len(train)} rows)"


def record(folder: Path, args: argparse.Namespace) -> dict:
    """Test each model an evaluated adapter folder's eval_results.json holds, as it was evaluated, and add the
    results to it, to its report and to its card; every other byte stays. Refused where the report or card is not
    what its results render (a report quoting test texts, a card edited by hand): evaluate with --behaviour then."""
    from finsent.eval import evaluate, report
    from finsent.model_card.card import REQUIRED, build_card

    path = folder / report.RESULTS_FILE
    if not path.is_file():
        raise UsageError(f"--adapter {folder}: no {report.RESULTS_FILE}; evaluate it with finsent evaluate "
                         "--behaviour instead")
    results = json.loads(path.read_text())
    card_too = all((folder / name).is_file() for name in REQUIRED)
    report_path, card_path = folder / report.REPORT_FILE, folder / "README.md"
    if report_path.is_file() and report_path.read_text() != _report(results, folder):
        raise UsageError(f"{report_path}: not what its results render (test texts quoted, or edited); "
                         "evaluate it again with finsent evaluate --behaviour")
    if card_too and card_path.is_file() and card_path.read_text() != str(build_card(folder, str(folder))):
        raise UsageError(f"{card_path}: not the card its results render; evaluate it again with finsent evaluate "
                         "--behaviour")
    results.pop("behaviour", None)  # a suite recorded before is replaced
    for run in results["runs"].values():
        run.pop("behaviour", None)
    suite = draw_suite(args.cases, args.seed)
    for name, run in results["runs"].items():
        if name == "baseline":
            model, _ = tfidf_model(folder)
        elif run.get("label_prior") not in (None, "balanced"):
            raise UsageError(f"{path}: its {name} run decided for the label prior {run['label_prior']!r}; "
                             "evaluate it again with finsent evaluate --behaviour")
        else:  # as evaluate loaded it: its quantization, precision and prior (None: scores left as trained)
            precision = run.get("precision")
            model = evaluate.get_classifier(
                run["model"], str(folder) if run.get("adapter") else None,
                load_in_4bit=run.get("quantization") or "false",
                dtype=args.dtype or (precision if precision in ("bfloat16", "float16", "float32") else None),
                label_prior=run.get("label_prior") or "train")
        run["behaviour"] = run_suite(model, suite, explain_failures=True)
    results["behaviour"] = suite_info(suite, args.cases, args.seed)
    report.write_text_atomic(path, json.dumps(results, indent=2) + "\n")  # first: the report and card are made from them
    report.write_text_atomic(report_path, _report(results, folder))
    if card_too:
        report.write_text_atomic(card_path, str(build_card(folder, str(folder))))
    logger.info("behaviour added to %s, %s%s", path, report_path, f" and {card_path}" if card_too else "")
    return results


def _report(results: dict, folder: Path) -> str:
    """The report as evaluate renders it, from results and the figures beside them (no quoted test texts)."""
    from finsent.eval import report

    stems = report.evaluation_figures(results, folder)
    figures = [stem.with_name(stem.name + suffix) for suffix in (".html", ".png") for stem in stems]
    return report.render_report(results, [path for path in figures if path.is_file()], folder)


if __name__ == "__main__":
    raise SystemExit(main())
