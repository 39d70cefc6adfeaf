"""Framework-free pieces of an epoch: encode a batch, train over batches, predict.

These take any iterable of numpy batches ({"sequence": str array, "expression": float
array}), so the Ray Train loop, tests and benchmarks share them.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from raydream.train.checkpoint import read_checkpoint
from raydream.data.construct import PLASMID_UPSTREAM
from raydream.data.encode import (add_flag_channels, one_hot_tensor, random_flips, reverse_complement,
                                  reverse_complement_where, to_byte_matrix)
from raydream.models import create_model
from raydream.models.heads import expression_from_output
from raydream.train.config import TrainConfig
from raydream.train.losses import compute_loss
from raydream.train.optim import Recipe, make_recipe

Batch = Mapping[str, np.ndarray]


CODES = "codes"  # a batch's key for sequences already in `input_codes` form


def input_codes(batch: Batch, config: TrainConfig) -> np.ndarray:
    """A batch's sequences as the (B, `config.seq_len`) uint8 matrix the model's input is
    one-hot encoded from: aligned by `config.align`, its 5' side padded as `config.pad` says.
    A batch that holds the matrix already (under CODES) is taken as it is."""
    if CODES in batch:
        return batch[CODES]
    context = PLASMID_UPSTREAM if config.pad == "plasmid" else ""
    return to_byte_matrix(batch["sequence"], config.seq_len, config.align, context)


def encode_batch(
    batch: Batch,
    config: TrainConfig,
    device: torch.device,
    training: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Model input (B, C, L) and float32 targets (B,) on `device`, from a batch's
    "sequence" strings (or their CODES) and its "expression" values.

    The input is `config.seq_len` long, aligned by `config.align`, its 5' padding zeros or
    the plasmid upstream of the DREAM insert (`config.pad`).
    C is 4 (one-hot), or 6 with `config.input_flags`: the reverse-strand flag, then the
    whole-number-label flag. In training, reverse-complement augmentation (if on) flips half
    the batch, the flags describe each row and the targets go through `training_targets`;
    outside training both flags are 0, since a new sequence's label is unknown, and the
    targets are the measured values.
    """
    codes = torch.from_numpy(input_codes(batch, config))
    y = torch.as_tensor(np.asarray(batch["expression"], dtype=np.float32))
    # Random draws on the CPU, in a fixed order: a seed gives the same batch on any device.
    none = torch.zeros(len(y), dtype=torch.bool)
    flipped = random_flips(len(y), generator) if training and config.rc_augment else none
    whole = (y == y.floor()) if training else none
    if training:
        y = training_targets(y, config, generator)
    if device.type == "cuda":  # page-locked host memory: the copies below run asynchronously
        codes, y = codes.pin_memory(), y.pin_memory()
    # The bases cross to the device as bytes, and are one-hot encoded there.
    x = one_hot_tensor(codes.to(device, non_blocking=True))
    if flipped.any():
        x = reverse_complement_where(x, flipped)
    if config.input_flags:
        x = add_flag_channels(x, flipped, whole)
    return x, y.to(device, non_blocking=True)


def autocast(config: TrainConfig, device: torch.device) -> torch.autocast:
    """The forward pass's mixed-precision context for `config.precision` (fp32: a no-op).

    Raises:
        ValueError: fp16 on a device other than CUDA (its loss scaling is CUDA's).
    """
    if config.precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision fp16 needs a CUDA device, not {device.type}; use bf16 or fp32")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def training_targets(y: torch.Tensor, config: TrainConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Targets the loss sees in training: rounded to integer bins with `round_labels`, then
    smoothed with Gaussian noise of sd `label_noise_sd` (clipped at 0, like the assay)."""
    if config.round_labels:
        y = y.round()
    if config.label_noise_sd:
        y = (y + config.label_noise_sd * torch.randn(y.shape, generator=generator)).clamp(min=0)
    return y


def train_epoch(
    model: nn.Module,
    recipe: Recipe,
    batches: Iterable[Batch],
    config: TrainConfig,
    device: torch.device,
    generator: torch.Generator | None = None,
    weights: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[float, int]:
    """One training pass with `config.loss`. Returns (sum of per-sample losses, samples).

    The forward pass runs in `config.precision`; the loss is computed in fp32.

    weights: maps a batch's measured values to per-sample loss weights (e.g.
    `raydream.train.weights.DensityWeights`); None weighs every sample alike.
    """
    model.train()
    # Summed on the device and read once at the end: reading a CUDA loss every step would
    # make the host wait for the GPU before it could queue the next batch.
    loss_sum, count = torch.zeros((), dtype=torch.float64, device=device), 0
    for batch in batches:
        x, y = encode_batch(batch, config, device, training=True, generator=generator)
        if len(y) < 2:  # BatchNorm needs two samples; a lone trailing sample is skipped
            continue
        weight = None
        if weights is not None:
            weight = torch.from_numpy(weights(np.asarray(batch["expression"]))).to(device, non_blocking=True)
        with autocast(config, device):
            output = model(x)
        loss = compute_loss(
            output.float(), y, config.loss, config.huber_delta, config.soft_label_sd, config.soft_label_shift, weight
        )
        recipe.step(loss)
        loss_sum += loss.detach() * len(y)
        count += len(y)
    return float(loss_sum), count


@torch.no_grad()
def predict(
    model: nn.Module, batches: Iterable[Batch], config: TrainConfig, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and measured values over all batches, as float64 arrays (N,).

    Always in fp32, whatever `config.precision`: a score does not depend on how the model
    was trained, and checkpoints are evaluated the same way.

    With `config.rc_test_average`, each prediction is the mean over both strands.
    """
    model.eval()
    preds, labels = [], []
    for batch in batches:
        x, y = encode_batch(batch, config, device)
        pred = expression_from_output(model(x))
        if config.rc_test_average:
            x_rc = x.clone()
            x_rc[:, :4] = reverse_complement(x[:, :4])
            if config.input_flags:
                x_rc[:, 4] = 1.0  # the reverse-strand flag
            pred = (pred + expression_from_output(model(x_rc))) / 2
        preds.append(pred.float().cpu().numpy())
        labels.append(y.cpu().numpy())
    if not preds:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(preds).astype(np.float64), np.concatenate(labels).astype(np.float64)


def model_and_recipe(name: str, mcfg, tcfg: TrainConfig, steps_per_epoch: int, device: torch.device,
                     checkpoint_dir: str | None = None):
    """A worker's model and optimiser recipe, on `device`, and where training starts.

    The model is moved to the device before the recipe is built and before any state is
    loaded, so that the optimiser's state, the recipe's averaged model (`cosine_swa`) and the
    loaded weights all live on the worker's device. (Built on the CPU and moved afterwards, a
    resumed GPU worker kept its optimiser state and averaged model on the CPU.)

    Returns:
        (model, recipe, first epoch to train, best val R^2 so far).
    """
    raw = create_model(name, mcfg, head_scalars=tcfg.head_scalars).to(device)
    recipe = make_recipe(raw, tcfg, steps_per_epoch)
    if checkpoint_dir is None:
        return raw, recipe, 1, -np.inf
    state, meta = read_checkpoint(checkpoint_dir, map_location=device)
    raw.load_state_dict(state.get("train_model") or state["model"])
    recipe.load_state_dict(state["optimizer"])
    return raw, recipe, meta["epoch"] + 1, meta["metrics"]["best_val_r2"]
