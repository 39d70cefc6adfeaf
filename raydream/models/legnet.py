"""LegNet-style CNN after the DREAM 2022 winner (Penzar et al., Bioinformatics 2023).

Stem convolution (k=7) + BatchNorm + SiLU, then EfficientNetV2-like blocks: a 1x1
expansion, a grouped convolution, squeeze-and-excitation and a 1x1 projection, whose output
is concatenated with the block input and resized to the block's width by a convolution. A
1x1 convolution maps to logits over the 18 expression bins, averaged over positions; the
prediction is the expected bin. The winner trained it on one-hot input plus two flag
channels (reverse strand; whole-number label) with soft-classification targets.
The published model is wider; the defaults here are sized for CPU search.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from raydream.models.heads import BINS, bin_prior_logits
from raydream.models.checks import require_odd
from raydream.models.registry import register_model


@dataclass(frozen=True)
class LegNetConfig:
    in_channels: int = 4  # one-hot (6 with the reverse-strand and whole-number flags)
    stem_channels: int = 64
    stem_kernel: int = 7
    block_channels: tuple[int, ...] = (128, 96, 64, 64)  # width after each block
    expansion: int = 4  # 1x1 expansion factor inside a block
    kernel_size: int = 7  # grouped convolution kernel
    group_width: int = 16  # channels per group of the grouped convolution
    se_reduction: int = 4  # squeeze-and-excitation bottleneck factor
    num_bins: int = 18  # logits over bins 0..17
    initial_prediction: float = 11.0  # expected bin at init (a search: the training mean)

    def __post_init__(self) -> None:
        object.__setattr__(self, "block_channels", tuple(self.block_channels))
        require_odd(self, "stem_kernel", "kernel_size")
        if not self.block_channels or min(self.block_channels) < 1:
            raise ValueError("block_channels must list at least one positive width")
        if self.expansion < 1 or self.se_reduction < 1 or self.group_width < 1:
            raise ValueError("expansion, se_reduction and group_width must be >= 1")
        if self.num_bins < 2:
            raise ValueError(f"num_bins must be >= 2, got {self.num_bins}")


class SqueezeExcite(nn.Module):
    """Channel gates from global average pooling: (B, C, L) -> (B, C, L)."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.gate = nn.Sequential(
            nn.Linear(channels, hidden), nn.SiLU(), nn.Linear(hidden, channels), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x.mean(dim=-1))[:, :, None]


def _conv_bn_silu(c_in: int, c_out: int, kernel: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm1d(c_out),
        nn.SiLU(),
    )


class LegNetBlock(nn.Module):
    """(B, C_in, L) -> (B, C_out, L): inverted residual branch, concat, resize conv."""

    def __init__(self, c_in: int, c_out: int, config: LegNetConfig):
        super().__init__()
        wide = c_in * config.expansion
        groups = max(1, wide // config.group_width)
        while wide % groups:
            groups -= 1
        self.branch = nn.Sequential(
            _conv_bn_silu(c_in, wide, 1),  # 1x1 expansion
            _conv_bn_silu(wide, wide, config.kernel_size, groups=groups),  # grouped conv
            SqueezeExcite(wide, config.se_reduction),
            _conv_bn_silu(wide, c_in, 1),  # 1x1 projection
        )
        self.resize = _conv_bn_silu(2 * c_in, c_out, config.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x, self.branch(x)], dim=1)  # (B, 2 C_in, L)
        return self.resize(x)  # (B, C_out, L)


@register_model("legnet", LegNetConfig, output=BINS)
class LegNet(nn.Module):
    def __init__(self, config: LegNetConfig):
        super().__init__()
        c = config
        self.stem = _conv_bn_silu(c.in_channels, c.stem_channels, c.stem_kernel)
        widths = (c.stem_channels, *c.block_channels)
        self.blocks = nn.Sequential(*(LegNetBlock(a, b, c) for a, b in zip(widths[:-1], widths[1:])))
        self.head = nn.Conv1d(widths[-1], c.num_bins, 1)
        with torch.no_grad():
            self.head.bias.copy_(bin_prior_logits(c.num_bins, c.initial_prediction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, L) -> (B, num_bins) logits."""
        x = self.stem(x)  # (B, C_stem, L)
        x = self.blocks(x)  # (B, C_last, L)
        return self.head(x).mean(dim=-1)  # 1x1 conv, global average pool -> (B, K)
