"""Training losses; plain PyTorch.

- "mse", "huber": on the predicted expression (for bin models, the expected bin).
- "soft_kl": bin models only; KL divergence from a discretised Normal around the label
  (mean label + soft_label_shift, sd soft_label_sd) to the predicted bin distribution, the
  soft-classification target of the DREAM winner's LegNet.
- "cross_entropy": bin models only; the label rounded to the nearest integer bin.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from raydream.models.heads import expression_from_output

LOSSES = ("mse", "huber", "soft_kl", "cross_entropy")
BIN_ONLY = ("soft_kl", "cross_entropy")


def soft_bin_targets(y: torch.Tensor, num_bins: int, sd: float, shift: float = 0.0) -> torch.Tensor:
    """(B, K) probabilities of a Normal(y + shift, sd) integrated over bins [k-0.5, k+0.5),
    the two edge bins taking the tails."""
    edges = torch.arange(num_bins - 1, device=y.device, dtype=torch.float32) + 0.5  # (K-1,)
    normal = torch.distributions.Normal(y[:, None].float() + shift, sd)
    cdf = normal.cdf(edges[None, :])  # (B, K-1)
    zeros, ones = torch.zeros_like(cdf[:, :1]), torch.ones_like(cdf[:, :1])
    return torch.diff(torch.cat([zeros, cdf, ones], dim=1), dim=1)  # (B, K)


def compute_loss(
    output: torch.Tensor,
    y: torch.Tensor,
    loss: str = "mse",
    huber_delta: float = 1.0,
    soft_label_sd: float = 0.5,
    soft_label_shift: float = 0.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean loss of a batch. output: (B,) or (B, K) logits; y: (B,) measured expression;
    weight: optional (B,) per-sample weights (the mean of weight * loss is returned)."""
    per_sample = _per_sample_loss(output, y, loss, huber_delta, soft_label_sd, soft_label_shift)
    return per_sample.mean() if weight is None else (per_sample * weight).mean()


def _per_sample_loss(output, y, loss, huber_delta, soft_label_sd, soft_label_shift) -> torch.Tensor:
    if loss == "mse":
        return (expression_from_output(output) - y) ** 2
    if loss == "huber":
        return F.huber_loss(expression_from_output(output), y, delta=huber_delta, reduction="none")
    if output.ndim != 2:
        raise ValueError(f"loss {loss!r} needs a model that outputs bin logits (B, K)")
    num_bins = output.shape[-1]
    if loss == "soft_kl":
        target = soft_bin_targets(y, num_bins, soft_label_sd, soft_label_shift)
        return F.kl_div(output.log_softmax(dim=-1), target, reduction="none").sum(dim=-1)
    if loss == "cross_entropy":
        return F.cross_entropy(output, y.round().long().clamp(0, num_bins - 1), reduction="none")
    raise ValueError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
