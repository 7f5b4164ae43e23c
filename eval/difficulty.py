"""Is the test split harder than the pool the recipe was chosen on? Counts and accuracies, never texts.

    python eval/difficulty.py --data_file ../shared/data/financial_phrasebank/all-data.csv \
        --sweep runs/sweep/results.jsonl --trial all-2ep --adapter space/default-adapter

Sides: the test split train.py draws (seed 42, 300 per label) and the pool train/sweep.py folds
(every other distinct row). Per label it prints
- the share of each side's rows at each PhraseBank agreement level: the largest share of the
  annotators that agreed on the label (50, 66, 75 or 100 %, from the Sentences_*Agree.txt files
  beside the data file);
- per level, the accuracy of the adapter on test (its eval_results.json) and of the trial's fold
  models out of fold (decided as the recipe decides: temperature + equal priors);
- the pool's accuracy reweighted to the test's mix of levels: the part of the gap the mix explains;
- the share of rows with a near-duplicate among the rows their model trained on, on each side.
Then a yardstick no fine-tuning choice touched: the TF-IDF baseline fitted on the pool's folds
but one, out of fold against on the test split (the mean of its fold models there).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import balanced_accuracy_score

from finsent.eval.baseline import tfidf_baseline
from finsent.space.classifier import LABELS
from finsent.train.data import SplitSizes, UsageError, read_labelled, split_dataset, split_digests, text_key
from finsent.train.sweep import decisions, read_results, with_folds

LEVELS = {"50Agree": 50, "66Agree": 66, "75Agree": 75, "AllAgree": 100}  # each file holds the next one's sentences


def agreement(folder: Path) -> dict[str, int]:
    """text_key -> the highest agreement level whose file holds the sentence."""
    level = {}
    for name, value in LEVELS.items():
        path = folder / f"Sentences_{name}.txt"
        if not path.is_file():
            raise UsageError(f"no {path}: give --agreement_dir, the folder of the PhraseBank's Sentences_*Agree.txt files")
        level.update(dict.fromkeys(read_labelled(str(path), skip_malformed=True)["text"].map(text_key), value))
    return level


def out_of_fold(pool: pd.DataFrame, sweep: Path, trial: str) -> pd.Series:
    """The trial's out-of-fold labels for the pool's rows (temperature + equal priors)."""
    lines = [line for line in read_results(sweep) if line["trial"] == trial]
    if sorted(line["fold"] for line in lines) != sorted(set(pool["fold"])):
        raise UsageError(f"--sweep {sweep}: trial {trial!r} has folds {sorted(line['fold'] for line in lines)}, "
                         f"the pool {sorted(set(pool['fold']))}; give a trial swept on every fold, with the same --folds")
    truth, _, _, predicted = decisions(lines)
    index = np.concatenate([pool.index[pool["fold"] == line["fold"]] for line in lines])
    if list(pool.loc[index, "sentiment"]) != truth:
        raise UsageError(f"--sweep {sweep}: its rows are not this pool's; give the sweep's --data_file, --folds, --split_seed")
    return pd.Series(predicted["balanced_t"], index=index).reindex(pool.index)


def adapter_predictions(splits: dict[str, pd.DataFrame], adapter: Path) -> list[str]:
    """The fine-tuned predictions an evaluation recorded for this test split (checked by the split's digest)."""
    path = adapter / "eval_results.json"
    if not path.is_file():
        raise UsageError(f"--adapter {adapter}: no eval_results.json; evaluate it with eval/evaluate.py first")
    results = json.loads(path.read_text())
    if results.get("split") != "test" or results.get("data_sha256") != split_digests(splits)["test.csv"]:
        raise UsageError(f"--adapter {adapter}: its eval_results.json is not of this test split; evaluate it with "
                         "eval/evaluate.py on this --data_file (and the same --test_size and --split_seed) first")
    if "fine_tuned" not in results.get("runs", {}):
        raise UsageError(f"--adapter {adapter}: its eval_results.json has no fine-tuned run; evaluate it with --adapter")
    return results["runs"]["fine_tuned"]["predictions"]


def by_level(test: pd.DataFrame, pool: pd.DataFrame) -> pd.DataFrame:
    """Per label and level: each side's share of the label's rows and its accuracy."""
    table = {}
    for name, side in (("test", test), ("pool", pool)):
        groups = side.groupby(["sentiment", "agree"])
        rows = groups.size()
        table[f"{name} share"] = rows / rows.groupby(level=0).transform("sum")
        table[f"{name} rows"] = rows
        table[f"{name} accuracy"] = groups["correct"].mean()
    return pd.DataFrame(table)


def near_duplicates(test: pd.DataFrame, pool: pd.DataFrame, above: float = 0.8) -> dict[str, tuple[float, float]]:
    """Per label, the share of rows with a training row closer than `above` (TF-IDF cosine): for test the
    pool (the shipped adapter's training rows), for a pool row the other folds (its fold model's)."""
    vectors = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(pd.concat([test["text"], pool["text"]]))
    t, p = vectors.transform(test["text"]), vectors.transform(pool["text"])
    test_near = (t @ p.T).max(axis=1).toarray().ravel() > above
    pool_near = np.zeros(len(pool), dtype=bool)
    for fold in set(pool["fold"]):
        inside = (pool["fold"] == fold).to_numpy()
        pool_near[inside] = (p[inside] @ p[~inside].T).max(axis=1).toarray().ravel() > above
    return {label: (float(test_near[(test["sentiment"] == label).to_numpy()].mean()),
                    float(pool_near[(pool["sentiment"] == label).to_numpy()].mean())) for label in LABELS}


def tfidf_yardstick(test: pd.DataFrame, pool: pd.DataFrame) -> tuple[float, float]:
    """(out-of-fold balanced accuracy, mean balanced accuracy of the fold models on test) of TF-IDF."""
    out = pd.Series(index=pool.index, dtype=object)
    on_test = []
    for fold in sorted(set(pool["fold"])):
        predicted, _ = tfidf_baseline(pool[pool["fold"] != fold], pd.concat([pool[pool["fold"] == fold], test]))
        held = int((pool["fold"] == fold).sum())
        out[pool.index[pool["fold"] == fold]] = predicted[:held]
        on_test.append(balanced_accuracy_score(test["sentiment"], predicted[held:]))
    return balanced_accuracy_score(pool["sentiment"], out.tolist()), float(np.mean(on_test))


def report(test: pd.DataFrame, pool: pd.DataFrame) -> str:
    """The tables, as Markdown."""
    table = by_level(test, pool)
    lines = ["| label | agreement | test share | pool share | test rows | pool rows | test accuracy | pool accuracy |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for (label, level), row in table.iterrows():
        lines.append(f"| {label} | {level} % | {row['test share']:.3f} | {row['pool share']:.3f} | {row['test rows']:.0f} | "
                     f"{row['pool rows']:.0f} | {row['test accuracy']:.3f} | {row['pool accuracy']:.3f} |")
    lines += ["", "| label | test accuracy | pool accuracy | pool accuracy at the test's mix of levels |",
              "| --- | ---: | ---: | ---: |"]
    recalls = []
    for label in LABELS:
        part = table.loc[label]
        reweighted = float((part["test share"] * part["pool accuracy"]).sum())
        recalls.append((test[test["sentiment"] == label]["correct"].mean(), pool[pool["sentiment"] == label]["correct"].mean(), reweighted))
        lines.append(f"| {label} | {recalls[-1][0]:.3f} | {recalls[-1][1]:.3f} | {reweighted:.3f} |")
    means = np.mean(recalls, axis=0)
    lines.append(f"| **balanced** | **{means[0]:.3f}** | **{means[1]:.3f}** | **{means[2]:.3f}** |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_file", required=True, help="all-data.csv, as the sweep and the evaluation read it")
    parser.add_argument("--agreement_dir", help="folder of Sentences_*Agree.txt (default: the data file's)")
    parser.add_argument("--sweep", required=True, help="a sweep's results.jsonl, or its --out folder (train/sweep.py)")
    parser.add_argument("--trial", required=True, help="the trial of the sweep to compare")
    parser.add_argument("--adapter", required=True, help="a folder with the eval_results.json of its test split")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--test_size", type=int, default=300)
    parser.add_argument("--split_seed", type=int, default=42)
    args = parser.parse_args(argv)
    try:
        sweep = Path(args.sweep) / "results.jsonl" if Path(args.sweep).is_dir() else Path(args.sweep)
        for flag, path in (("--data_file", args.data_file), ("--sweep", sweep), ("--adapter", args.adapter)):
            if not Path(path).exists():
                raise UsageError(f"{flag} {path}: no such file or folder")
        level = agreement(Path(args.agreement_dir or Path(args.data_file).parent))
        splits, _ = split_dataset(read_labelled(args.data_file), SplitSizes(train=None, test=args.test_size, eval=0),
                                  seed=args.split_seed)
        test, pool = splits["test"].copy(), with_folds(splits["train"], args.folds, args.split_seed)  # the sweep's folds
        test["correct"] = np.asarray(adapter_predictions(splits, Path(args.adapter))) == test["sentiment"]
        pool["correct"] = out_of_fold(pool, sweep, args.trial) == pool["sentiment"]
        for side in (test, pool):
            side["agree"] = side["text"].map(lambda text: level.get(text_key(text), 0))  # 0: in no agreement file
    except UsageError as err:  # the user's to fix: one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"adapter {args.adapter} on test against trial {args.trial} out of fold; agreement 0 % = in no Sentences_*Agree.txt\n")
    print(report(test, pool))
    near = near_duplicates(test, pool)
    print("\nnear-duplicates (a training row at TF-IDF cosine > 0.8), share of rows, test / pool: "
          + ", ".join(f"{label} {t:.3f} / {p:.3f}" for label, (t, p) in near.items()))
    oof, on_test = tfidf_yardstick(test, pool)
    print(f"\nTF-IDF baseline, balanced accuracy: {oof:.3f} out of fold, {on_test:.3f} on test (mean of {args.folds} fold models)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
