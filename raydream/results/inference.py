"""Predict with a trained model: a checkpoint loaded once, on the device you choose.

    import raydream
    model = raydream.load_model("ray_results/resnet-.../TrainRunTrial_.../checkpoint_000007", device="cuda")
    model.predict(["TGCATTTTTTTCACATC...GGTTACGGCTGTT", ...])      # numpy array, float64
    raydream.predict([ckpt_a, ckpt_b], sequences)                 # the mean of several models

Networks predict as they were validated: the same encoding, both strands averaged when they
were trained with `rc_test_average`, and in fp32 whatever precision trained them. Tree models
predict on the CPU. Sequences are checked first (A/C/G/T/N, upper or lower case, within the
DREAM length bounds); a bad one is a `DataError` naming its index.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence, Union

import numpy as np
import torch

from raydream.core.errors import ConfigError, DataError, RayDreamError
from raydream.core.typed import from_dict
from raydream.data.dream import RowRules, sequence_problem
from raydream.models.trees import TreeModel
from raydream.train.checkpoint import META_FILE, restore_model
from raydream.train.config import TrainConfig
from raydream.train.steps import predict as predict_batches

DEFAULT_BATCH_SIZE = 512


def resolve_device(device: "str | torch.device | None") -> torch.device:
    """A torch device from a name ("cpu", "cuda", "cuda:1", "mps") or None (the CPU).

    Raises:
        ConfigError: an unknown name, or a device this machine does not have.
    """
    try:
        found = torch.device(device if device is not None else "cpu")
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device {device!r} is not a torch device ({err}); use cpu, cuda or cuda:N") from None
    if found.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r}: this machine has no CUDA GPU that torch can use; use device='cpu'")
    if found.type == "cuda" and found.index is not None and found.index >= torch.cuda.device_count():
        raise ConfigError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    if found.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r}: MPS is not available on this machine")
    return found


def check_sequences(sequences: Iterable[str], rules: RowRules = RowRules()) -> np.ndarray:
    """Upper-cased sequences as an object array, each checked by `rules`.

    Raises:
        DataError: naming the index of the first sequence that is not a DNA string within the
            length bounds, or an empty input.
    """
    if isinstance(sequences, (str, bytes)):
        raise DataError("expected a list of sequences, got a single string; wrap it in a list")
    checked = []
    for i, seq in enumerate(sequences):
        if not isinstance(seq, str):
            raise DataError(f"sequence {i}: expected a DNA string, got {type(seq).__name__}")
        seq = seq.strip().upper()
        if problem := sequence_problem(seq, rules):
            raise DataError(f"sequence {i}: {problem}")
        checked.append(seq)
    if not checked:
        raise DataError("no sequences to predict")
    return np.asarray(checked, dtype=object)


@dataclass
class TrainedModel:
    """A model rebuilt from its checkpoint, on `device`, with what built it (`meta`: the
    model's name and config, the training config, the epoch and its validation metrics)."""

    module: "torch.nn.Module | TreeModel"
    meta: dict[str, Any]
    checkpoint: Path
    device: torch.device

    @property
    def name(self) -> str:
        """The model family, e.g. "resnet"."""
        return self.meta["model"]

    @functools.cached_property
    def train_config(self) -> TrainConfig:
        """The training config the checkpoint records, typed (once).

        Raises:
            DataError: the checkpoint's record of it is damaged (naming the file).
        """
        try:
            return from_dict(TrainConfig, self.meta["train_config"], "train_config")
        except RayDreamError as err:
            raise DataError(f"{self.checkpoint / META_FILE}: {err}") from None

    def predict(self, sequences: Iterable[str], batch_size: int = DEFAULT_BATCH_SIZE,
                rules: RowRules = RowRules()) -> np.ndarray:
        """Predicted expression (float64, one per sequence, in order)."""
        return self.predict_checked(check_sequences(sequences, rules), batch_size)

    def predict_checked(self, seqs: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """`predict` of sequences `check_sequences` has checked already."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if isinstance(self.module, TreeModel):
            return self.module.predict(seqs)
        config = self.train_config
        dummy = np.zeros(len(seqs))
        batches = ({"sequence": seqs[i: i + batch_size], "expression": dummy[i: i + batch_size]}
                   for i in range(0, len(seqs), batch_size))
        with torch.inference_mode():
            return predict_batches(self.module, batches, config, self.device)[0]


def load_model(checkpoint: str | os.PathLike, device: "str | torch.device | None" = None) -> TrainedModel:
    """Load a checkpoint directory once, onto `device` (default: the CPU).

    Raises:
        DataError: not a raydream checkpoint, or a damaged one.
        ConfigError: a device this machine does not have.
    """
    where = resolve_device(device)
    module, meta = restore_model(checkpoint, map_location=where)
    if not isinstance(module, TreeModel):
        module = module.to(where)
    return TrainedModel(module, meta, Path(checkpoint), where)


Models = Union[TrainedModel, str, os.PathLike, Sequence[Union[TrainedModel, str, os.PathLike]]]


def predict(models: Models, sequences: Iterable[str], device: "str | torch.device | None" = None,
            batch_size: int = DEFAULT_BATCH_SIZE, rules: RowRules = RowRules()) -> np.ndarray:
    """Predicted expression of `sequences` by one model, or the mean over several (an
    ensemble). models: a `TrainedModel`, a checkpoint directory, or a list of either;
    checkpoints given as paths are loaded onto `device`."""
    many = models if isinstance(models, (list, tuple)) else [models]
    if not many:
        raise ConfigError("no model to predict with")
    seqs = check_sequences(sequences, rules)  # once, for every model
    predictions = [(m if isinstance(m, TrainedModel) else load_model(m, device)).predict_checked(seqs, batch_size)
                   for m in many]
    return np.mean(predictions, axis=0)
