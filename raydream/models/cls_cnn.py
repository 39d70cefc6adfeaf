"""Classification CNN, the DREAM 2022 team report's classification baseline.

Convolutions with 40 channels and a fully connected layer to logits over the integer
expression bins (19 by default: 0..18); the prediction is the expected bin under the
softmax. Trained with cross-entropy on the rounded label or with soft labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from raydream.models.heads import BINS, bin_prior_logits
from raydream.models.checks import require_dropout, require_odd
from raydream.models.registry import register_model


@dataclass(frozen=True)
class ClsCNNConfig:
    in_channels: int = 4  # one-hot A/C/G/T (6 with LegNet-style flag channels)
    channels: int = 40  # filters of every convolution (report: 40)
    kernel_size: int = 9
    num_conv: int = 2  # convolution layers, each followed by ReLU and max-pool /2
    num_bins: int = 19  # logits for integer bins 0..num_bins-1 (report: 19)
    dropout: float = 0.2
    initial_prediction: float = 11.0  # expected bin at init (a search: the training mean)

    def __post_init__(self) -> None:
        require_odd(self, "kernel_size")
        if not 1 <= self.num_conv <= 5:
            raise ValueError(f"num_conv must be in 1..5, got {self.num_conv}")
        if self.num_bins < 2 or self.channels < 1:
            raise ValueError("num_bins must be >= 2 and channels >= 1")
        require_dropout(self)


@register_model("cls_cnn", ClsCNNConfig, output=BINS)
class ClsCNN(nn.Module):
    def __init__(self, config: ClsCNNConfig):
        super().__init__()
        c = config
        layers: list[nn.Module] = []
        width = c.in_channels
        for _ in range(c.num_conv):
            layers += [
                nn.Conv1d(width, c.channels, c.kernel_size, padding=c.kernel_size // 2),
                nn.ReLU(),
                nn.MaxPool1d(2, ceil_mode=True),
            ]
            width = c.channels
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(c.channels, c.num_bins))
        with torch.no_grad():
            self.head[-1].bias.copy_(bin_prior_logits(c.num_bins, c.initial_prediction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, L) -> (B, num_bins) logits."""
        x = self.features(x)  # (B, C, L / 2**num_conv)
        x = x.amax(dim=-1)  # global max pool -> (B, C)
        return self.head(x)  # (B, K)
