"""all-MiniLM-L6-v2 fine-tuned, beside the shipped adapter on its PhraseBank split: accuracy, paired test, speed.

    python eval/bench_minilm.py --json runs/bench_minilm.json       # 43 minutes on 2 CPU cores shared with other work
    python eval/bench_minilm.py --validate --json runs/bench_minilm_validation.json   # the settings' check alone

The shipped adapter's split is drawn again from the source its split/summary.json records (the PhraseBank, read
from ../shared/data; never copied here), checked against its recorded sha256. The MiniLM baseline
(eval/encoder_baseline.py, with its fixed SETTINGS) is fine-tuned on the split's training rows, the rows the
adapter's recorded TF-IDF baseline trained on, and scores the same 900 test rows. Reported:

- accuracy with its 95 % interval, and per label (eval/uncertainty.py, as `finsent evaluate` reports them);
- the paired difference of the shipped adapter against MiniLM, and of MiniLM against TF-IDF, on the same rows
  (paired bootstrap interval, McNemar's exact p), from the predictions the adapter's eval_results.json records;
- MiniLM's training seconds;
- scoring speed in headlines/s: the adapter as the app serves it, MiniLM and TF-IDF, each scoring the 900 rows in
  batches of 32 in this process, the three alternating; the median of --rounds timed rounds after a warm-up.

So that the figures are about the recorded models: TF-IDF refitted here must give the recorded baseline's
predictions (the same training and test rows), and the adapter scored here is compared with its recorded
predictions (the share that agree is printed).

--validate checks the fixed settings without reading a test row: MiniLM is trained on 90 % of the training rows
(each label's rows drawn with --seed) and its balanced accuracy on the other 10 % is printed after each epoch.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import os
import statistics
import time
from pathlib import Path

from finsent.eval.baseline import fit_tfidf
from finsent.eval.encoder_baseline import MODEL, SETTINGS, WEIGHTS, fit_minilm
from finsent.eval.metrics import compute_metrics
from finsent.eval.report import RESULTS_FILE
from finsent.eval.uncertainty import compare, intervals
from finsent.space.classifier import LABELS, load_classifier
from finsent.space.embedded import EMBEDDED_MODEL_ID
from finsent.train.bench_throughput import machine
from finsent.train.data import load_split, split_digests


def recorded(adapter: str, splits: dict) -> dict:
    """The adapter's eval_results.json, refused unless it was scored on this split's test rows."""
    results = json.loads((Path(adapter) / RESULTS_FILE).read_text())
    if results["data_sha256"] != split_digests(splits)["test.csv"] or results["rows"] != len(splits["test"]):
        raise SystemExit(f"error: {adapter}/{RESULTS_FILE} was scored on other rows than the split drawn here")
    return results


def holdout(train, share: float, seed: int):
    """(fit rows, validation rows): `share` of each label's rows, drawn with `seed`, held out."""
    held = train.groupby("sentiment", group_keys=False).sample(frac=share, random_state=seed)
    return train.drop(held.index), held


def scores(truth: list[str], predicted: list[str]) -> dict:
    metrics = compute_metrics(truth, predicted)
    bounds = intervals(truth, predicted)
    return {"accuracy": metrics["accuracy"], "interval": bounds["accuracy"], "macro_f1": metrics["macro"]["f1"],
            "macro_f1_interval": bounds["macro_f1"],
            "per_label": {label: {"accuracy": metrics["per_label"][label]["accuracy"],
                                  "interval": bounds["per_label"][label]["accuracy"]} for label in LABELS}}


def timed(predict, texts: list[str]) -> tuple[float, list[str]]:
    start = time.perf_counter()
    probs = predict(texts)
    return time.perf_counter() - start, [LABELS[int(i)] for i in probs.argmax(axis=1)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", default="space/default-adapter")
    parser.add_argument("--rounds", type=int, default=3, help="timed scoring rounds, after one warm-up")
    parser.add_argument("--validate", action="store_true",
                        help="instead: the settings' check on 10 %% of the training rows (no test row is read)")
    parser.add_argument("--seed", type=int, default=0, help="of the --validate draw (MiniLM's own seed is SETTINGS')")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)

    splits = load_split(args.adapter)
    train, test = splits["train"], splits["test"]
    out = {"machine": machine(), "date": datetime.date.today().isoformat(), "adapter": args.adapter,
           "model": MODEL, "weights": WEIGHTS, "settings": dataclasses.asdict(SETTINGS), "train_rows": len(train)}
    if args.validate:
        return validate(train, args.seed, out, args.json)
    texts, truth = test["text"].tolist(), test["sentiment"].tolist()
    results = recorded(args.adapter, splits)
    adapter_predicted, tfidf_recorded = (results["runs"][name]["predictions"] for name in ("fine_tuned", "baseline"))
    out["test_rows"] = len(test)

    load = [os.getloadavg()[0]]  # other processes on these cores slow every timing: recorded beside them
    cpu = time.process_time()
    minilm = fit_minilm(train)
    train_cpu = time.process_time() - cpu
    load.append(os.getloadavg()[0])
    tfidf = fit_tfidf(train)
    adapter = load_classifier(EMBEDDED_MODEL_ID, args.adapter)  # as the app serves it
    models = {"shipped adapter": lambda t: adapter.predict_proba(t, batch_size=32),
              "MiniLM": lambda t: minilm.predict_proba(t, batch_size=32),
              "TF-IDF": tfidf.predict_proba}
    seconds, labels = {name: [] for name in models}, {}
    for round_ in range(args.rounds + 1):  # the first round warms up and is dropped
        for name, predict in models.items():
            spent, labels[name] = timed(predict, texts)
            if round_:
                seconds[name].append(spent)
        load.append(os.getloadavg()[0])
    if labels["TF-IDF"] != tfidf_recorded:
        raise SystemExit("error: TF-IDF refitted here does not give the recorded baseline's predictions: "
                         "other training or test rows than the recorded ones")

    out["load_average"] = {"before training": load[0], "after training": load[1], "after each round": load[2:]}
    out["minilm"] = {**scores(truth, labels["MiniLM"]), "train_seconds": round(minilm.train_seconds, 1),
                     "train_cpu_seconds": round(train_cpu, 1),
                     "class_weights": minilm.class_weights, "epoch_losses": minilm.epoch_losses,
                     "predictions": labels["MiniLM"]}
    out["shipped_adapter"] = {**scores(truth, adapter_predicted), "precision": results["runs"]["fine_tuned"]["precision"],
                              "rescored_here": {"precision": adapter.precision, "agreement": sum(
                                  a == b for a, b in zip(adapter_predicted, labels["shipped adapter"], strict=True))
                                  / len(truth)}}
    out["tfidf"] = scores(truth, tfidf_recorded)
    out["paired"] = {"shipped adapter - MiniLM": compare(truth, adapter_predicted, labels["MiniLM"]),
                     "MiniLM - TF-IDF": compare(truth, labels["MiniLM"], tfidf_recorded)}
    out["speed"] = {name: {"headlines_per_s": round(len(texts) / statistics.median(times), 1),
                           "seconds": [round(t, 3) for t in times]} for name, times in seconds.items()}
    out["speed"]["shipped adapter"]["precision"] = adapter.precision
    out["speed"]["MiniLM"]["precision"] = "float32"

    print(f"{json.dumps(out['machine'])}, {out['date']}\n")
    print("| model | accuracy [95 %] | " + " | ".join(f"{label} [95 %]" for label in LABELS) + " | macro F1 [95 %] |")
    print("| --- | ---: |" + " ---: |" * len(LABELS) + " ---: |")
    for name, key in (("shipped adapter", "shipped_adapter"), ("MiniLM", "minilm"), ("TF-IDF", "tfidf")):
        s = out[key]
        cells = [f"{s['accuracy']:.3f} [{s['interval'][0]:.3f}, {s['interval'][1]:.3f}]"]
        cells += [f"{v['accuracy']:.3f} [{v['interval'][0]:.3f}, {v['interval'][1]:.3f}]"
                  for v in s["per_label"].values()]
        low, high = s["macro_f1_interval"]
        print(f"| {name} | " + " | ".join(cells) + f" | {s['macro_f1']:.3f} [{low:.3f}, {high:.3f}] |")
    print("\n| paired, same 900 rows | accuracy difference [95 %] | only the first right | only the second right | "
          "McNemar p |\n| --- | ---: | ---: | ---: | ---: |")
    for name, c in out["paired"].items():
        print(f"| {name} | {c['accuracy_difference']:+.3f} [{c['interval'][0]:+.3f}, {c['interval'][1]:+.3f}] | "
              f"{c['only_a_right']} | {c['only_b_right']} | {c['mcnemar_p']:.3g} |")
    print("\n| scoring 900 headlines, batch 32 | precision | headlines/s (median) | seconds per round |"
          "\n| --- | --- | ---: | --- |")
    for name, s in out["speed"].items():
        print(f"| {name} | {s.get('precision', 'float64')} | {s['headlines_per_s']:.1f} | "
              f"{', '.join(f'{t:.2f}' for t in s['seconds'])} |")
    print(f"\nMiniLM trained in {minilm.train_seconds:.0f} s ({train_cpu:.0f} CPU-seconds) on {minilm.train_rows} rows; "
          "the adapter rescored here agrees with its recorded predictions on "
          f"{out['shipped_adapter']['rescored_here']['agreement']:.3f} of the rows; 1-minute load average "
          + ", ".join(f"{x:.1f}" for x in load))
    write_json(out, args.json)
    return 0


def validate(train, seed: int, out: dict, path: str | None) -> int:
    """MiniLM trained on 90 % of `train`, scored on the other 10 % after each epoch."""
    fit_rows, held = holdout(train, 0.1, seed)
    check = fit_minilm(fit_rows, validation=held)
    out["validation"] = {"fit_rows": len(fit_rows), "validation_rows": len(held), "seed": seed,
                         "balanced_accuracy_by_epoch": check.validation_scores,
                         "epoch_losses": check.epoch_losses, "train_seconds": round(check.train_seconds, 1)}
    print(f"{json.dumps(out['machine'])}, {out['date']}\n")
    print(f"trained on {len(fit_rows)} rows in {check.train_seconds:.0f} s; balanced accuracy on {len(held)} held-out "
          "training rows by epoch: " + ", ".join(f"{s:.4f}" for s in check.validation_scores))
    write_json(out, path)
    return 0


def write_json(out: dict, path: str | None) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
