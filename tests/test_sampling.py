"""Class-balanced epochs: every epoch balanced, the smallest label whole, the others drawn afresh."""

from __future__ import annotations

from collections import Counter

from conftest import SAMPLE_HEADLINES, tiny_args
from finsent.space.adapter_info import read_info
from finsent.train import train as train_script
from finsent.train.sampling import BalancedEpochs, BalancedSFTTrainer

LABELS = ["negative"] * 3 + ["neutral"] * 10 + ["positive"] * 6


def test_each_epoch_is_balanced_and_draws_the_larger_labels_afresh():
    sampler = BalancedEpochs(LABELS, seed=1)
    epochs = [list(sampler) for _ in range(4)]
    assert len(sampler) == 9 and all(len(epoch) == 9 and len(set(epoch)) == 9 for epoch in epochs)
    for epoch in epochs:
        assert Counter(LABELS[i] for i in epoch) == {"negative": 3, "neutral": 3, "positive": 3}
        assert {i for i in epoch if LABELS[i] == "negative"} == {0, 1, 2}  # the smallest label, whole
    neutral_seen = {i for epoch in epochs for i in epoch if LABELS[i] == "neutral"}
    assert len(neutral_seen) > 3  # fresh draws: more distinct rows than one epoch holds
    again = BalancedEpochs(LABELS, seed=1)
    assert [list(again) for _ in range(4)] == epochs  # seeded


def test_train_with_balanced_epochs_records_a_balanced_mix(tiny_phi, tmp_path):
    """On imbalanced data (the sample headlines are 50 a label, which would balance anyway): each epoch holds
    the smallest label's count of every label, and the trainer's dataloader draws through BalancedEpochs."""
    import pandas as pd

    sample = pd.read_csv(SAMPLE_HEADLINES)
    keep = {"negative": 20, "neutral": 50, "positive": 35}
    data = tmp_path / "imbalanced.csv"
    pd.concat([sample[sample.sentiment == label].head(n) for label, n in keep.items()]).to_csv(data, index=False)
    out = tmp_path / "run"
    args = train_script.parse(tiny_args(tiny_phi, out, "--balance_classes", "true", "--train_size", "all",
                                        "--load_in_4bit", "false", "--dtype", "float32", "--data_file", str(data)))
    trainer = train_script.train(*args)
    assert isinstance(trainer, BalancedSFTTrainer)
    rows = Counter(pd.read_csv(out / "split" / "train.csv")["sentiment"])
    assert len(set(rows.values())) == 3  # the training rows themselves stay imbalanced
    assert read_info(str(out))["train_label_counts"] == dict.fromkeys(rows, min(rows.values()))
    loader = trainer.get_train_dataloader()
    sampler = getattr(loader.batch_sampler, "sampler", None) or loader.sampler
    assert isinstance(sampler, BalancedEpochs)
    assert len(sampler) == 3 * min(rows.values())
