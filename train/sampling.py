"""Class-balanced epochs over an unbalanced training set.

Each epoch holds as many rows of every label as the smallest label has: all of
the smallest label's rows, and a fresh random draw from each larger one, in a
random order. Over several epochs the model sees many more distinct rows of the
large labels than a fixed balanced subset holds, while every batch keeps equal
label priors on average (`--balance_classes true`, with `--train_size all`).
"""

from __future__ import annotations

import numpy as np
import torch
from trl import SFTTrainer


class BalancedEpochs(torch.utils.data.Sampler):
    def __init__(self, labels: list[str], seed: int):
        values = np.asarray(labels)
        self.groups = [np.flatnonzero(values == label) for label in sorted(set(labels))]
        self.per_label = min(len(group) for group in self.groups)
        self.seed, self.epoch = seed, 0

    def __len__(self) -> int:
        return self.per_label * len(self.groups)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1  # the trainer iterates once per epoch: the next one draws afresh
        picked = np.concatenate([rng.choice(group, self.per_label, replace=False) for group in self.groups])
        return iter(rng.permutation(picked).tolist())


class BalancedSFTTrainer(SFTTrainer):
    """SFTTrainer whose training batches come from BalancedEpochs over the given labels."""

    def __init__(self, *args, train_labels: list[str], **kwargs):
        self.train_labels = train_labels
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, train_dataset=None):
        return BalancedEpochs(self.train_labels, self.args.seed)
