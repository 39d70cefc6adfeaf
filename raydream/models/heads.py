"""What a model's output means, and how it becomes one expression value per sequence.

Regression models return (B,) values. Bin models return (B, num_bins) logits over the
integer expression bins 0..num_bins-1; their prediction is the expected bin under the
softmax, which keeps fractional measurements (means of several cells) predictable.
"""

from __future__ import annotations

import torch

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
