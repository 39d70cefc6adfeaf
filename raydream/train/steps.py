"""Framework-free pieces of an epoch: encode a batch, train over batches, predict.

These take any iterable of numpy batches ({"sequence": str array, "expression": float
array}), so the Ray Train loop, tests and benchmarks share them.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from raydream.data.encode import one_hot, random_reverse_complement
from raydream.train.config import TrainConfig

Batch = Mapping[str, np.ndarray]


def encode_batch(batch: Batch, config: TrainConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot sequences (B, 4, L) and float32 targets (B,) on `device`."""
    x = torch.from_numpy(one_hot(batch["sequence"], config.seq_len, config.align))
    y = torch.as_tensor(np.asarray(batch["expression"], dtype=np.float32))
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[Batch],
    config: TrainConfig,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> tuple[float, int]:
    """One pass of MSE training. Returns (sum of per-sample losses, number of samples)."""
    model.train()
    loss_sum, count = 0.0, 0
    for batch in batches:
        x, y = encode_batch(batch, config, device)
        if len(y) < 2:  # BatchNorm needs two samples; a lone trailing sample is skipped
            continue
        if config.rc_augment:
            x = random_reverse_complement(x, generator)
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += float(loss.detach()) * len(y)
        count += len(y)
    return loss_sum, count


@torch.no_grad()
def predict(
    model: nn.Module, batches: Iterable[Batch], config: TrainConfig, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and measured values over all batches, as float64 arrays (N,)."""
    model.eval()
    preds, labels = [], []
    for batch in batches:
        x, y = encode_batch(batch, config, device)
        preds.append(model(x).float().cpu().numpy())
        labels.append(y.cpu().numpy())
    if not preds:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(preds).astype(np.float64), np.concatenate(labels).astype(np.float64)
