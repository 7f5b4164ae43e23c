"""Explanations measured: faithfulness (ERASER) and speed of occlusion against integrated gradients, in one run.

    python eval/bench_explain.py --json runs/bench_explain.json            # the shipped adapter: test split + suite
    python eval/bench_explain.py --limit 40 --json runs/bench_explain-quick.json   # a quick look

Three ways to rank a headline's words, on the scorer the app serves (the shipped adapter on the embedded
SmolLM2, its dtype, temperature and label prior):
- occlusion: space/explain.py, the product's explainer (every variant in one call, packed as a tree after the
  shared prefix cache);
- integrated gradients: on the input embeddings of the headline's tokens, from a zero baseline, STEPS
  midpoint steps in one batch, for the predicted label's probability as the user sees it (temperature and
  prior applied); token attributions summed over each word's tokens. Captum's LayerIntegratedGradients on
  the embedding layer computes the same thing; it is written out here to need no other package;
- random: k words drawn at random (seeded), averaged over RANDOM_DRAWS draws: the floor.

For k = 1, 2, 3 (DeYoung et al., 2020, "ERASER"), with p the predicted label's probability:
- comprehensiveness = p(headline) - p(headline without its k top words): higher is more faithful;
- sufficiency = p(headline) - p(its k top words alone): lower is more faithful.
A headline counts for k when it has more than k words. Every removal is scored in the same batches,
so batch-to-batch noise of bf16 falls on every method alike. Each mean has a percentile bootstrap
interval over headlines, and so has each paired difference against occlusion.

Speed: milliseconds per headline, median, for the explainer's one call (occlusion) and for integrated
gradients' forward and backward pass, each timed on its own, one headline at a time, as the app runs.
The data: the shipped adapter's 900-row test split (drawn again from the PhraseBank at ../shared) and
the behaviour suite's sentences (eval/behaviour.py, fictional). Nothing of the texts is written out.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from finsent.eval import behaviour
from finsent.eval.uncertainty import mean_interval
from finsent.space.classifier import DEFAULT_ADAPTER, LABELS, PROMPT_TEMPLATE, build_prompt, load_classifier
from finsent.space.embedded import EMBEDDED_MODEL_ID
from finsent.space.explain import classifier_scorer, explain, only, units, without
from finsent.train.bench_throughput import machine
from finsent.train.data import load_split

KS = (1, 2, 3)
STEPS = 20  # integrated gradients' steps (Captum's default is 50: this favours the gradient method's speed)
RANDOM_DRAWS = 5
METHODS = ("occlusion", "integrated_gradients", "random")


def integrated_gradients(classifier, text: str, target: int, steps: int = STEPS) -> list[float]:
    """Each word's (space/explain.py's units) integrated gradient toward label `target`, summed over its tokens."""
    model, tokenizer = classifier.model, classifier.tokenizer
    prompt = build_prompt(text)
    at = PROMPT_TEMPLATE.index("{text}")  # where the headline starts in the prompt
    encoded = tokenizer(prompt, return_offsets_mapping=True)
    spans = units(text)
    owner = []  # each token's word, or -1 for the prompt's own tokens
    for _, end in encoded.offset_mapping:
        char = end - 1 - at
        owner.append(next((w for w, (s, e) in enumerate(spans) if s <= char < e), -1))
    ids = torch.tensor([encoded.input_ids], device=classifier.device)
    embeddings = model.get_input_embeddings()(ids).detach()  # (1, T, H)
    in_text = torch.tensor(owner, device=ids.device)[None, :, None] >= 0
    baseline = torch.where(in_text, torch.zeros_like(embeddings), embeddings)  # the prompt kept, the headline zeroed
    alphas = ((torch.arange(steps, device=ids.device) + 0.5) / steps).to(embeddings.dtype)[:, None, None]
    path = (baseline + alphas * (embeddings - baseline)).requires_grad_(True)  # (steps, T, H)
    if any(len(ids_) != 1 for ids_ in classifier._label_ids):  # SmolLM2's and Phi-2's labels are one token each
        raise ValueError("integrated gradients here score one-token labels only; this tokenizer splits a label")
    label_ids = [ids_[0] for ids_ in classifier._label_ids]
    with torch.enable_grad():
        logits = model(inputs_embeds=path).logits[:, -1].float().log_softmax(-1)[:, label_ids]
        scores = logits / classifier.temperature
        if classifier.log_prior_shift is not None:
            scores = scores + torch.tensor(classifier.log_prior_shift, device=scores.device)
        scores.softmax(-1)[:, target].sum().backward()
    per_token = ((embeddings - baseline)[0].float() * path.grad.float().mean(0)).sum(-1)
    words = [0.0] * len(spans)
    for token, word in enumerate(owner):
        if word >= 0:
            words[word] += float(per_token[token])
    return words


def timed(function, *args):
    start = time.perf_counter()
    out = function(*args)
    return out, (time.perf_counter() - start) * 1000


def rank(weights) -> list[int]:
    return sorted(range(len(weights)), key=lambda i: -weights[i])


def measure(classifier, texts: list[str], seed: int, steps: int) -> dict:
    """Every method's faithfulness and speed on `texts`: {method: {metric: {mean, interval, n}}, ms: ...}."""
    scorer = classifier_scorer(classifier)
    rng = np.random.default_rng(seed)
    plans, ms = [], {"occlusion": [], "integrated_gradients": []}
    for text in texts:
        explained, took = timed(explain, text, scorer)
        ms["occlusion"].append(took)
        target = LABELS.index(explained.label)
        gradients, took = timed(integrated_gradients, classifier, text, target, steps)
        ms["integrated_gradients"].append(took)
        spans = [(w.start, w.end) for w in explained.words]
        orders = {"occlusion": rank([explained.weight(w) for w in explained.words]),
                  "integrated_gradients": rank(gradients)}
        draws = [list(rng.permutation(len(spans))) for _ in range(RANDOM_DRAWS)]
        plans.append((text, target, spans, orders, draws))
    # every removal of every method, scored together (the same batches for all)
    queries, index = [], {}
    for n, (text, _, spans, orders, draws) in enumerate(plans):
        queries.append(text)
        index[n, "full"] = len(queries) - 1
        for k in KS:
            if len(spans) <= k:
                continue
            for method, order in [*orders.items(), *((f"random{d}", draw) for d, draw in enumerate(draws))]:
                top = [spans[i] for i in order[:k]]
                index[n, method, k, "without"] = len(queries)
                index[n, method, k, "only"] = len(queries) + 1
                queries += [without(text, top), only(text, top)]
    probs = classifier.predict_proba(queries, batch_size=32)
    results = {"headlines": len(texts)}
    per_item = {}
    for method in METHODS:
        for k in KS:
            comp, suff = [], []
            for n, (_, target, spans, _, _) in enumerate(plans):
                if len(spans) <= k:
                    continue
                names = [f"random{d}" for d in range(RANDOM_DRAWS)] if method == "random" else [method]
                full = probs[index[n, "full"], target]
                comp.append(np.mean([full - probs[index[n, m, k, "without"], target] for m in names]))
                suff.append(np.mean([full - probs[index[n, m, k, "only"], target] for m in names]))
            per_item[method, k] = (np.array(comp), np.array(suff))
            results.setdefault(method, {})[f"k{k}"] = {
                "n": len(comp),
                "comprehensiveness": summary(comp, seed), "sufficiency": summary(suff, seed)}
    for other in ("integrated_gradients", "random"):
        results[f"occlusion - {other}"] = {
            f"k{k}": {metric: summary(per_item["occlusion", k][i] - per_item[other, k][i], seed)
                      for i, metric in enumerate(("comprehensiveness", "sufficiency"))} for k in KS}
    results["ms_per_headline"] = {method: {"median": round(statistics.median(times), 1),
                                           "p95": round(float(np.percentile(times, 95)), 1)}
                                  for method, times in ms.items()}
    results["words_per_headline"] = {"median": statistics.median(len(p[2]) for p in plans)}
    return results


def summary(values, seed: int) -> dict:
    return {"mean": round(float(np.mean(values)), 4),
            "interval": [round(x, 4) for x in mean_interval(values, seed=seed)]}


def texts_of(name: str, limit: int | None, seed: int) -> list[str]:
    if name == "test split":
        texts = list(load_split(DEFAULT_ADAPTER)["test"]["text"])
    else:
        texts = list(dict.fromkeys(t for case in behaviour.draw_suite() for t in case.texts))
    if limit and limit < len(texts):
        chosen = np.random.default_rng(seed).choice(len(texts), size=limit, replace=False)
        texts = [texts[i] for i in sorted(chosen)]
    return [t.strip() for t in texts]


def table(results: dict) -> str:
    lines = []
    for data, r in results["data"].items():
        lines += [f"\n{data}: {r['headlines']} headlines, median {r['words_per_headline']['median']} words; ms per "
                  f"headline (median): occlusion {r['ms_per_headline']['occlusion']['median']}, integrated gradients "
                  f"{r['ms_per_headline']['integrated_gradients']['median']}",
                  "", "| method | k | comprehensiveness ↑ | sufficiency ↓ |", "| --- | ---: | ---: | ---: |"]
        for method in METHODS:
            for k in KS:
                m = r[method][f"k{k}"]
                lines.append(f"| {method} | {k} | " + " | ".join(
                    f"{m[x]['mean']:.3f} [{m[x]['interval'][0]:.3f}, {m[x]['interval'][1]:.3f}]"
                    for x in ("comprehensiveness", "sufficiency")) + " |")
    return "\n".join(lines)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", default=str(DEFAULT_ADAPTER), help="default: the shipped adapter")
    parser.add_argument("--base_model", default=EMBEDDED_MODEL_ID)
    parser.add_argument("--data", nargs="+", default=["test split", "behaviour suite"],
                        choices=["test split", "behaviour suite"])
    parser.add_argument("--limit", type=int, help="a seeded sample of this many headlines from each")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"integrated gradients' steps (default {STEPS})")
    parser.add_argument("--dtype", help="default: as the app (bf16 where the CPU computes it natively)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the results here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    classifier = load_classifier(args.base_model, args.adapter, dtype=args.dtype)
    results = {"machine": machine(), "precision": classifier.precision, "adapter": args.adapter,
               "steps": args.steps, "random_draws": RANDOM_DRAWS, "seed": args.seed, "limit": args.limit,
               "date": datetime.date.today().isoformat(), "data": {}}
    explain("warm up the prefix cache", classifier_scorer(classifier))
    start = time.perf_counter()
    for name in args.data:
        results["data"][name] = measure(classifier, texts_of(name, args.limit, args.seed), args.seed, args.steps)
        print(json.dumps({name: results["data"][name]["ms_per_headline"]}), flush=True)
    results["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(results["machine"]))
    print(table(results))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
