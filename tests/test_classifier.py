"""Label scoring (`score` mode) on the tiny random Phi, against a brute-force reference.

The tiny tokenizer splits every label into two tokens, a space and the word, so the
labels share their first token: scoring only a first token would tie all three.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from finsent.space.adapter_info import INFO_FILE, AdapterMismatch, make_info, read_info, weights_sha256, write_info
from finsent.space.classifier import LABELS, build_completion, build_prompt, load_classifier, prior_shift

HEADLINES = [
    "Kestrel Oyj lifts its full-year outlook",
    "Norvale Group cuts 200 jobs",
    "Ferrow Bank to publish results on 2 May",
    "A",  # a one-letter headline: the shortest prompt in the batch
]


@pytest.fixture(scope="module")
def tiny_adapter(tiny_phi, tmp_path_factory):
    """A LoRA adapter with random (non-zero) weights on the tiny Phi, saved with its tokenizer."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(1)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "fc1"], init_lora_weights=False,
                        task_type="CAUSAL_LM")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_phi), config)
    path = tmp_path_factory.mktemp("tiny-adapter")
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_phi).save_pretrained(path)
    write_info(path, make_info(str(tiny_phi), str(tiny_phi), {"negative": 20, "neutral": 20, "positive": 20}))
    return path


def reference_probs(model, tokenizer, texts):
    """One full forward per headline and label, no cache, no padding: softmax of summed log-probs."""
    rows, device = [], next(model.parameters()).device
    with torch.inference_mode():
        for text in texts:
            prompt = tokenizer(build_prompt(text)).input_ids
            scores = []
            for label in LABELS:
                ids = tokenizer(build_prompt(text) + build_completion(label)).input_ids
                logp = model(input_ids=torch.tensor([ids], device=device)).logits[0].float().log_softmax(-1)
                scores.append(sum(logp[i - 1, ids[i]].item() for i in range(len(prompt), len(ids))))
            rows.append(torch.tensor(scores).softmax(-1).numpy())
    return np.stack(rows)


def test_labels_are_multi_token_with_a_shared_first_token(tiny_phi):
    classifier = load_classifier(str(tiny_phi), dtype="float32")
    label_ids = classifier._label_ids
    assert all(len(ids) == 2 for ids in label_ids)
    assert len({ids[0] for ids in label_ids}) == 1


@pytest.mark.parametrize("share_prefix", [True, False])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_score_matches_brute_force(tiny_phi, share_prefix, batch_size):
    classifier = load_classifier(str(tiny_phi), dtype="float32")
    classifier.share_prefix = share_prefix
    rows = classifier.tokenizer([build_prompt(t) for t in HEADLINES]).input_ids
    assert (classifier._prefix(rows)[0] > 20) == share_prefix  # the instruction really is shared
    probs = classifier.predict_proba(HEADLINES, batch_size=batch_size)
    expected = reference_probs(classifier.model, classifier.tokenizer, HEADLINES)
    assert probs.shape == (len(HEADLINES), 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(probs, expected, atol=1e-4)


@pytest.mark.parametrize("share_prefix", [True, False])
def test_packed_as_trees_matches_brute_force(tiny_phi, share_prefix, monkeypatch):
    """A headline, its variants, a repeat and an unrelated headline: a tree shares what they share, and each row
    scores as alone, whether all fit one tree or each tree holds what MAX_TREE tokens allow."""
    from finsent.space import classifier as classifier_module

    classifier = load_classifier(str(tiny_phi), dtype="float32")
    classifier.share_prefix = share_prefix
    texts = [HEADLINES[0], "Kestrel Oyj its full-year outlook", "Kestrel Oyj lifts its outlook", HEADLINES[0],
             HEADLINES[1], "A"]
    rows = classifier.tokenizer([build_prompt(t) for t in texts]).input_ids
    [tree] = classifier._trees(rows)
    assert len(tree.tokens) < sum(len(r) - tree.start for r in rows)  # the words shared are one node each...
    assert len(classifier._trees(rows[:3] + rows[4:])[0].tokens) == len(tree.tokens)  # ...and a repeat adds none
    expected = reference_probs(classifier.model, classifier.tokenizer, texts)
    np.testing.assert_allclose(classifier.predict_proba(texts, packed=True), expected, atol=1e-5)
    monkeypatch.setattr(classifier_module, "MAX_TREE", len(tree.tokens) // 2)
    trees = classifier._trees(rows)
    assert len(trees) > 1 and sorted(r for t in trees for r in t.rows) == list(range(len(texts)))
    assert all(len(t.tokens) <= len(tree.tokens) // 2 or len(t.rows) == 1 for t in trees)
    np.testing.assert_allclose(classifier.predict_proba(texts, packed=True), expected, atol=1e-5)
    assert classifier.predict_proba([], packed=True).shape == classifier.predict_proba([]).shape == (0, 3)


def test_adapter_is_merged_and_scores_like_the_unmerged_model(tiny_phi, tiny_adapter):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    classifier = load_classifier(str(tiny_phi), str(tiny_adapter), dtype="float32")
    assert not hasattr(classifier.model, "peft_config")  # merged into plain weights
    unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_phi), tiny_adapter)
    expected = reference_probs(unmerged, classifier.tokenizer, HEADLINES)
    np.testing.assert_allclose(classifier.predict_proba(HEADLINES), expected, atol=1e-4)
    base = load_classifier(str(tiny_phi), dtype="float32").predict_proba(HEADLINES)
    assert np.abs(base - expected).max() > 1e-3  # the adapter changes the answer


@pytest.mark.parametrize("device", [
    "cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA here"))])
def test_four_bit_with_unmerged_adapter(tiny_phi, tiny_adapter, device):
    classifier = load_classifier(str(tiny_phi), str(tiny_adapter), load_in_4bit=True, dtype="float32", device=device)
    assert str(classifier.device).startswith(device)
    assert hasattr(classifier.model, "peft_config")  # 4-bit weights are not merged into
    result = classifier.classify(HEADLINES)
    assert len(result) == len(HEADLINES) and all(set(r) == set(LABELS) for r in result)
    assert all(abs(sum(r.values()) - 1) < 1e-6 for r in result)
    # same as the brute force through the 4-bit PEFT model itself
    expected = reference_probs(classifier.model, classifier.tokenizer, HEADLINES)
    np.testing.assert_allclose(classifier.predict_proba(HEADLINES), expected, atol=1e-4)
    np.testing.assert_allclose(classifier.predict_proba(HEADLINES, packed=True), expected, atol=1e-4)


def _copy_adapter(source, target, **info_changes):
    import shutil

    shutil.copytree(source, target)
    info = read_info(str(target))
    write_info(target, {**info, **info_changes})
    return target


def test_prior_shift_moves_scores_from_the_training_mix_to_the_target(tiny_phi, tiny_adapter, tmp_path):
    # Trained on 10% negative, 60% neutral, 30% positive: balanced scores divide by those shares, renormalised.
    skewed = _copy_adapter(tiny_adapter, tmp_path / "skewed",
                           train_label_counts={"negative": 10, "neutral": 60, "positive": 30})
    learned = load_classifier(str(tiny_phi), str(skewed), dtype="float32", label_prior="train").predict_proba(HEADLINES)
    balanced = load_classifier(str(tiny_phi), str(skewed), dtype="float32").predict_proba(HEADLINES)
    expected = learned / np.array([0.1, 0.6, 0.3])
    np.testing.assert_allclose(balanced, expected / expected.sum(axis=1, keepdims=True), atol=1e-6)
    natural = {"negative": 0.2, "neutral": 0.5, "positive": 0.3}
    shifted = load_classifier(str(tiny_phi), str(skewed), dtype="float32", label_prior=natural).predict_proba(HEADLINES)
    expected = learned / np.array([0.1, 0.6, 0.3]) * np.array([0.2, 0.5, 0.3])
    np.testing.assert_allclose(shifted, expected / expected.sum(axis=1, keepdims=True), atol=1e-6)


def test_temperature_divides_the_label_log_scores_before_the_prior_shift(tiny_phi, tiny_adapter, tmp_path):
    counts = {"negative": 10, "neutral": 60, "positive": 30}
    plain = _copy_adapter(tiny_adapter, tmp_path / "plain", train_label_counts=counts, temperature=1.0)
    warm = _copy_adapter(tiny_adapter, tmp_path / "warm", train_label_counts=counts, temperature=2.5)
    learned = load_classifier(str(tiny_phi), str(plain), dtype="float32", label_prior="train").predict_proba(HEADLINES)
    classifier = load_classifier(str(tiny_phi), str(warm), dtype="float32")
    assert classifier.temperature == 2.5
    expected = learned ** (1 / 2.5) / np.array([0.1, 0.6, 0.3])  # softened, then moved to equal priors
    np.testing.assert_allclose(classifier.predict_proba(HEADLINES), expected / expected.sum(axis=1, keepdims=True),
                               atol=1e-6)


def test_prior_shift_arithmetic():
    assert prior_shift({"negative": 1, "neutral": 1, "positive": 1}) is None  # balanced already
    assert prior_shift({"negative": 1, "neutral": 2, "positive": 1}, "train") is None
    assert prior_shift(None) is None  # nothing recorded
    shift = prior_shift({"negative": 1, "neutral": 2, "positive": 1})  # shares 1/4, 1/2, 1/4 -> 1/3 each
    np.testing.assert_allclose(shift, np.log([4 / 3, 2 / 3, 4 / 3]))
    with pytest.raises(ValueError, match="positive share"):
        prior_shift({"negative": 1, "neutral": 2, "positive": 1}, {"negative": 1.0})


def test_an_adapter_for_another_prompt_or_base_is_refused(tiny_phi, tiny_adapter, tmp_path):
    old = _copy_adapter(tiny_adapter, tmp_path / "old", prompt_version=1)
    with pytest.raises(AdapterMismatch, match="prompt version 1.*retrain"):
        load_classifier(str(tiny_phi), str(old), dtype="float32")
    (tmp_path / "legacy").mkdir()
    legacy = _copy_adapter(tiny_adapter, tmp_path / "legacy" / "a")
    (legacy / INFO_FILE).unlink()  # adapters from before finsent.json used prompt version 1
    with pytest.raises(AdapterMismatch, match="prompt version 1"):
        load_classifier(str(tiny_phi), str(legacy), dtype="float32")
    other = _copy_adapter(tiny_adapter, tmp_path / "other", base_weights_sha256="0" * 64)
    with pytest.raises(AdapterMismatch, match="weights sha256 000000000000.*but the base"):
        load_classifier(str(tiny_phi), str(other), dtype="float32")
    assert load_classifier(str(tiny_phi), str(other), dtype="float32", allow_other_base=True)


def test_weights_digest_names_the_tensors_not_the_file(tiny_phi, tmp_path):
    from safetensors.torch import load_file, save_file

    tensors = load_file(tiny_phi / "model.safetensors")
    reordered = dict(reversed(list(tensors.items())))
    (tmp_path / "a").mkdir()
    save_file(reordered, tmp_path / "a" / "model.safetensors", metadata={"format": "pt", "note": "other header"})
    assert weights_sha256(tmp_path / "a") == weights_sha256(tiny_phi)
    name = next(iter(tensors))
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] += 1e-3
    (tmp_path / "b").mkdir()
    save_file(tensors, tmp_path / "b" / "model.safetensors")
    assert weights_sha256(tmp_path / "b") != weights_sha256(tiny_phi)
    assert weights_sha256(tmp_path) is None  # no weights here
