"""Training on users' corrections (`finsent train --corrections`), and continuing an adapter on them (`--init_adapter`).

    finsent train --config corrections-embedded --corrections feedback/ --output_dir runs/corrected
    # = the shipped adapter, continued on the corrections the app kept in feedback/ (space/feedback.py), with 400
    #   of its own training rows replayed beside them, on its own split: minutes on a CPU

A correction is a headline and the label a user chose (`read_corrections`: a headline's latest label). Corrections
join the training rows only. Any that is a test or eval row of the split is refused (UsageError): it would be
scored on what it was taught. Training rows of a corrected headline give way to the correction.

A continuation loads the adapter trainable on its own base and draws its split again (data.load_split: the rows
must match the sha256 it recorded), so its test score before and after is on the same rows. Its "own training
rows" are that split's train side and the templated rows its finsent.json records (train/augment.py); `--replay`
of them, drawn with the training seed, keep it from forgetting what the corrections do not cover.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from finsent.space.adapter_info import read_info, weights_sha256
from finsent.space.classifier import LABELS
from finsent.space.errors import first_line
from finsent.space.feedback import read_corrections
from finsent.train import augment
from finsent.train.data import COLUMNS, UsageError, load_split, text_key

logger = logging.getLogger("finsent.train")


def correction_rows(source: str, splits: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict]:
    """(the corrections as training rows, what finsent.json records of them); UsageError for a bad source or a
    correction that is a test or eval row."""
    try:
        rows, record = read_corrections(source)
    except ValueError as err:
        raise UsageError(f"--corrections {err}") from None
    if not rows:
        raise UsageError(f"--corrections {source}: it holds no corrections yet")
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    held_out = {text_key(t): side for side in ("test", "eval") for t in splits[side]["text"]}
    leaks = [(text, held_out[text_key(text)]) for text in table["text"] if text_key(text) in held_out]
    if leaks:
        text, side = leaks[0]
        raise UsageError(f"--corrections {source}: {len(leaks)} of its {len(table)} headlines are test or eval rows "
                         f"of the split (first: {text!r}, {side}); training on them would score the model on what it "
                         "was taught. Remove them from the corrections (or draw another split with --split_seed).")
    return table, record


def without(rows: pd.DataFrame, corrections: pd.DataFrame) -> pd.DataFrame:
    """`rows` less those of a corrected headline: the user's label replaces theirs."""
    corrected = set(corrections["text"].map(text_key))
    kept = rows[~rows["text"].map(text_key).isin(corrected)]
    if len(kept) < len(rows):
        logger.info("%d training row(s) gave way to a correction of the same headline", len(rows) - len(kept))
    return kept


@dataclass
class Continuation:
    """An adapter to continue: where it is, its finsent.json, its base and its split."""

    source: str
    folder: Path
    info: dict
    base_model: str
    splits: dict[str, pd.DataFrame]

    @classmethod
    def load(cls, source: str) -> Continuation:
        folder = Path(source)
        if not folder.is_dir():
            try:
                from huggingface_hub import snapshot_download

                folder = Path(snapshot_download(source))
            except Exception as err:  # not found, no access, no network
                reason = first_line(err)
                raise UsageError(f"--init_adapter {source}: no such folder, and the Hub has no such model ({reason})") \
                    from None
        if not (folder / "adapter_config.json").is_file():
            raise UsageError(f"--init_adapter {source}: not a LoRA adapter (no adapter_config.json)")
        base = json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"]
        return cls(source, folder, read_info(str(folder)), base, load_split(folder))

    def own_rows(self) -> pd.DataFrame:
        """What it trained on: its split's train rows and its templated rows, drawn again as recorded."""
        recorded = self.info.get("augment")
        if not recorded:
            return self.splits["train"]
        templated, again = augment.for_training(recorded["rows_per_capability"], recorded["seed"], self.splits)
        if again["sha256"] != recorded["sha256"]:
            raise UsageError(f"--init_adapter {self.source}: its templated rows ({recorded['templates']}) cannot be "
                             f"drawn again by this finsent ({again['templates']}); use the release it was trained with")
        return pd.concat([self.splits["train"], templated[list(COLUMNS)]], ignore_index=True)

    def replay(self, count: int, seed: int, corrections: pd.DataFrame) -> pd.DataFrame:
        if count < 0:
            raise UsageError(f"--replay {count}: give a number of rows, 0 or more")
        pool = without(self.own_rows(), corrections)
        return pool.sample(n=min(count, len(pool)), random_state=seed).reset_index(drop=True)

    def record(self, replayed: int) -> dict:
        return {"source": self.source, "weights_sha256": weights_sha256(self.folder), "replay_rows": replayed}

    def label_counts(self, corrections: pd.DataFrame) -> dict[str, int]:
        """The label mix it has learned: its own, plus the corrections."""
        own = self.info.get("train_label_counts") or {}
        return {label: int(own.get(label, 0)) + int((corrections["sentiment"] == label).sum()) for label in LABELS}
