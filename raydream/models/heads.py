"""What a model's output means, and how it becomes one expression value per sequence.

Regression models return (B,) values. Bin models return (B, num_bins) logits over the
integer expression bins 0..num_bins-1; their prediction is the expected bin under the
softmax, which keeps fractional measurements (means of several cells) predictable.
"""

from __future__ import annotations

import torch
from torch import nn

from raydream.data.features import basic_tm

REGRESSION = "regression"
BINS = "bins"


def expression_from_output(output: torch.Tensor) -> torch.Tensor:
    """(B,) predicted expression from a regression output (B,) or bin logits (B, K)."""
    if output.ndim == 1:
        return output
    probs = output.softmax(dim=-1)  # (B, K)
    bins = torch.arange(output.shape[-1], device=output.device, dtype=probs.dtype)
    return probs @ bins  # (B,)


def bin_prior_logits(num_bins: int, center: float, sd: float = 3.0) -> torch.Tensor:
    """(K,) logits of a discretised Normal(center, sd) over bins 0..K-1.

    Used as the initial bias of a bin head, so that an untrained bin model predicts about
    `center` rather than the middle bin.
    """
    bins = torch.arange(num_bins, dtype=torch.float32)
    logits = -0.5 * ((bins - center) / sd) ** 2
    return logits - logits.logsumexp(0)


def gc_and_tm(x: torch.Tensor) -> torch.Tensor:
    """(B, 2) GC fraction and basic-formula melting temperature of a one-hot batch (B, C, L).

    Uses channels A, C, G, T only (any flag channels after them are ignored); padding
    (all-zero columns) does not count towards the length, N counts as half G or C.
    """
    bases = x[:, :4]
    length = bases.sum(dim=(1, 2)).clamp(min=1.0)
    gc = bases[:, 1:3].sum(dim=(1, 2))
    return torch.stack([gc / length, basic_tm(gc, length)], dim=1)


# Centre and scale of (GC fraction, Tm) for DREAM promoters: 80 uniform random bp between the
# fixed flanks give GC 0.47 +- 0.04 and Tm 78 +- 1.7 deg C (110 bp).
SCALAR_CENTER = (0.47, 78.0)
SCALAR_SCALE = (0.04, 1.7)


class ScalarHead(nn.Module):
    """A network whose output also gets a learned linear function of the input's GC fraction
    and melting temperature (standardised for DREAM promoters), added to its regression value
    or to each of its bin logits. The added weights start at zero, so wrapping leaves an
    untrained network's predictions unchanged."""

    def __init__(self, body: nn.Module, out_features: int):
        super().__init__()
        self.body = body
        self.linear = nn.Linear(2, out_features)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.register_buffer("center", torch.tensor(SCALAR_CENTER))
        self.register_buffer("scale", torch.tensor(SCALAR_SCALE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        extra = self.linear((gc_and_tm(x) - self.center) / self.scale)
        return out + (extra.squeeze(-1) if out.ndim == 1 else extra)
