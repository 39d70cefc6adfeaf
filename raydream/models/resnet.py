"""ResNet-style CNN, the best model of a DREAM 2022 team report (validation R^2 0.537).

Residual blocks of two Conv1d + BatchNorm layers with PReLU, each block followed by a
max-pool that halves the length; global max pool; MLP head with a softplus output (measured
expression is non-negative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from raydream.models.checks import require_dropout, require_odd
from raydream.models.registry import register_model


POOLS = ("max", "avg", "max_avg")


@dataclass(frozen=True)
class ResNetConfig:
    in_channels: int = 4  # one-hot A/C/G/T
    channels: int = 64  # width of the stem and every residual block (report: 64)
    kernel_size: int = 5  # kernel of the block convolutions (report: 5)
    stem_kernel: int = 7  # kernel of the first convolution
    num_blocks: int = 3  # residual blocks; each halves the length
    hidden: int = 64  # width of the head's hidden layer
    dropout: float = 0.1  # dropout before the output layer
    initial_prediction: float = 11.0  # output at init (a search: the training mean)
    pool: str = "max"  # global pooling: "max" (report), "avg", or "max_avg" (both, concatenated)

    def __post_init__(self) -> None:
        require_odd(self, "kernel_size", "stem_kernel")
        if not 1 <= self.num_blocks <= 6:
            raise ValueError(f"num_blocks must be in 1..6 (each halves the length), got {self.num_blocks}")
        if self.channels < 1 or self.hidden < 1:
            raise ValueError("channels and hidden must be >= 1")
        require_dropout(self)
        if self.initial_prediction <= 0:
            raise ValueError("initial_prediction must be > 0 (softplus output)")
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {self.pool!r}")


class ResidualBlock(nn.Module):
    """max-pool /2 of x + PReLU(BN(Conv(PReLU(BN(Conv(x)))))).

    The second PReLU sits inside the residual branch rather than after the sum: behind the
    max-pools, an activation after the sum only ever passes its positive side on, so its
    negative slope would never learn.
    """

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        pad = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv1d(channels, channels, kernel_size, padding=pad, bias=False),
            nn.BatchNorm1d(channels),
            nn.PReLU(channels),
            nn.Conv1d(channels, channels, kernel_size, padding=pad, bias=False),
            nn.BatchNorm1d(channels),
            nn.PReLU(channels),
        )
        self.pool = nn.MaxPool1d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, L) -> (B, C, ceil(L / 2))."""
        return self.pool(x + self.body(x))


@register_model("resnet", ResNetConfig)
class ResNet(nn.Module):
    def __init__(self, config: ResNetConfig):
        super().__init__()
        c = config
        self.stem = nn.Sequential(
            nn.Conv1d(c.in_channels, c.channels, c.stem_kernel, padding=c.stem_kernel // 2, bias=False),
            nn.BatchNorm1d(c.channels),
            nn.PReLU(c.channels),
        )
        self.blocks = nn.Sequential(*(ResidualBlock(c.channels, c.kernel_size) for _ in range(c.num_blocks)))
        self.pool = c.pool
        self.head = nn.Sequential(
            nn.Linear(c.channels * (2 if c.pool == "max_avg" else 1), c.hidden),
            nn.PReLU(c.hidden),
            nn.Dropout(c.dropout),
            nn.Linear(c.hidden, 1),
        )
        # softplus^-1(y) = y + log(1 - exp(-y)): the untrained model predicts initial_prediction.
        y = c.initial_prediction
        nn.init.constant_(self.head[-1].bias, y + math.log(-math.expm1(-y)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, L) one-hot -> (B,) predicted expression (>= 0)."""
        x = self.stem(x)  # (B, C, L)
        x = self.blocks(x)  # (B, C, L / 2**num_blocks)
        x = _global_pool(x, self.pool)  # (B, C), or (B, 2C) for max_avg
        return F.softplus(self.head(x)).squeeze(-1)  # (B,)


def _global_pool(x: torch.Tensor, pool: str) -> torch.Tensor:
    """(B, C, L) -> (B, C) by max or mean over positions, or (B, 2C) for both. A mean counts
    how often a filter's motif occurs, as k-mer counts do; a max says whether it occurs."""
    if pool == "max":
        return x.amax(dim=-1)
    if pool == "avg":
        return x.mean(dim=-1)
    return torch.cat([x.amax(dim=-1), x.mean(dim=-1)], dim=1)
