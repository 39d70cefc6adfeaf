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
    expansion: int = 4  # 1x1 expansion inside a block, of its output width (LegNet: 4)
    kernel_size: int = 7  # grouped convolution kernel
    group_width: int = 2  # channels per group of the grouped convolution (LegNet: 2)
    se_reduction: int = 4  # squeeze-and-excitation bottleneck factor (LegNet: 4)
    num_bins: int = 18  # logits over bins 0..17
    initial_prediction: float = 11.0  # expected bin at init (a search: the training mean)
    final_silu: bool = False  # SiLU on the bin logits before pooling, as LegNet (its bias then starts at 0)

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
    """Channel gates from global average pooling: (B, C, L) -> (B, C, L), through a
    bottleneck of `hidden` units."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        hidden = max(1, hidden)
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
    """(B, C_in, L) -> (B, C_out, L): inverted residual branch, concat, resize conv.

    As in LegNet, the branch widens to C_out x expansion channels, and its
    squeeze-and-excitation bottleneck has C_in / se_reduction units.
    """

    def __init__(self, c_in: int, c_out: int, config: LegNetConfig):
        super().__init__()
        wide = c_out * config.expansion
        groups = max(1, wide // config.group_width)
        while wide % groups:
            groups -= 1
        self.branch = nn.Sequential(
            _conv_bn_silu(c_in, wide, 1),  # 1x1 expansion
            _conv_bn_silu(wide, wide, config.kernel_size, groups=groups),  # grouped conv
            SqueezeExcite(wide, c_in // config.se_reduction),
            _conv_bn_silu(wide, c_in, 1),  # 1x1 projection
        )
        self.resize = _conv_bn_silu(2 * c_in, c_out, config.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x, self.branch(x)], dim=1)  # (B, 2 C_in, L)
        return self.resize(x)  # (B, C_out, L)


def _legnet_init(module: nn.Module) -> None:
    """LegNet's initialisation (its published training code): convolutions He-normal over
    kernel x output channels, BatchNorm at identity, linear layers (the squeeze-and-excitation
    gates) N(0, 0.001), every bias 0; the gates then start half open for every channel."""
    if isinstance(module, nn.Conv1d):
        fan_out = module.kernel_size[0] * module.out_channels
        nn.init.normal_(module.weight, 0.0, (2.0 / fan_out) ** 0.5)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm1d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.001)
        nn.init.zeros_(module.bias)


@register_model("legnet", LegNetConfig, output=BINS)
class LegNet(nn.Module):
    def __init__(self, config: LegNetConfig):
        super().__init__()
        c = config
        self.stem = _conv_bn_silu(c.in_channels, c.stem_channels, c.stem_kernel)
        widths = (c.stem_channels, *c.block_channels)
        self.blocks = nn.Sequential(*(LegNetBlock(a, b, c) for a, b in zip(widths[:-1], widths[1:])))
        self.head = nn.Conv1d(widths[-1], c.num_bins, 1)
        self.final = nn.SiLU() if c.final_silu else nn.Identity()
        self.apply(_legnet_init)
        if not c.final_silu:  # a prior through SiLU would not be one: LegNet's zero bias then
            with torch.no_grad():
                self.head.bias.copy_(bin_prior_logits(c.num_bins, c.initial_prediction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, L) -> (B, num_bins) logits."""
        x = self.stem(x)  # (B, C_stem, L)
        x = self.blocks(x)  # (B, C_last, L)
        return self.final(self.head(x)).mean(dim=-1)  # 1x1 conv, global average pool -> (B, K)
