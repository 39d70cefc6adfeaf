"""BaselineCNN: two convolutions (kernels 21 and 5) and a small regression head."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from raydream.models.checks import require_dropout, require_odd
from raydream.models.registry import register_model


@dataclass(frozen=True)
class BaselineCNNConfig:
    in_channels: int = 4  # one-hot A/C/G/T
    conv1_channels: int = 128  # filters of the motif-scanning layer
    conv1_kernel: int = 21  # long first kernel: a motif plus its context
    conv2_channels: int = 64
    conv2_kernel: int = 5
    hidden: int = 64  # width of the fully connected layer before the output
    dropout: float = 0.2
    initial_prediction: float = 11.0  # output at init (a search: the training mean)

    def __post_init__(self) -> None:
        require_odd(self, "conv1_kernel", "conv2_kernel")
        require_dropout(self)


@register_model("baseline_cnn", BaselineCNNConfig)
class BaselineCNN(nn.Module):
    """Conv(k=21) -> ReLU -> max-pool /2 -> Conv(k=5) -> ReLU -> global max -> MLP -> (B,)."""

    def __init__(self, config: BaselineCNNConfig):
        super().__init__()
        c = config
        self.features = nn.Sequential(
            nn.Conv1d(c.in_channels, c.conv1_channels, c.conv1_kernel, padding=c.conv1_kernel // 2),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(c.conv1_channels, c.conv2_channels, c.conv2_kernel, padding=c.conv2_kernel // 2),
            nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.Linear(c.conv2_channels, c.hidden),
            nn.ReLU(),
            nn.Dropout(c.dropout),
            nn.Linear(c.hidden, 1),
        )
        nn.init.constant_(self.head[-1].bias, c.initial_prediction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, L) one-hot -> (B,) predicted expression."""
        x = self.features(x)  # (B, C2, L / 2)
        x = x.amax(dim=-1)  # global max pool -> (B, C2)
        return self.head(x).squeeze(-1)  # (B,)
