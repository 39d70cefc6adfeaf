"""Inverse-density sample weights that up-weight the tails of the expression distribution.

Most DREAM measurements sit in a few central bins, so a model can score well while
predicting the middle; weighting each training row by 1 / (density of its label) makes the
rare low and high expressors count as much as the common ones. The density is a histogram of
the training labels; weights have mean 1 over the training rows and are capped at `cap`
times that mean, so that a handful of extreme rows cannot dominate a batch.
Plain numpy, no Ray: the trial computes the table once from the training labels and every
worker looks its rows up in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DensityWeights:
    """Weight lookup: row with label y gets weights[bin of y] (bins by `edges`)."""

    edges: tuple[float, ...]
    weights: tuple[float, ...]

    @classmethod
    def fit(cls, labels: np.ndarray, bins: int = 18, cap: float = 10.0) -> "DensityWeights":
        """Histogram `labels` into `bins` equal-width bins and weight each bin by 1 / count.

        Raises:
            ValueError: no labels, bins < 1 or cap < 1.
        """
        labels = np.asarray(labels, dtype=np.float64)
        if labels.size == 0:
            raise ValueError("density weights need at least one label")
        if bins < 1 or cap < 1:
            raise ValueError(f"bins must be >= 1 and cap >= 1, got {bins} and {cap}")
        low, high = float(labels.min()), float(labels.max())
        if high == low:
            high = low + 1.0
        counts, edges = np.histogram(labels, bins=bins, range=(low, high))
        inverse = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
        rows = _bin_of(labels, edges)
        table = inverse / inverse[rows].mean()  # mean weight 1 over the training rows
        # Cap, rescale to mean 1, repeat: converges to max weight == cap (or below) at mean 1.
        for _ in range(100):
            if table.max() <= cap * (1 + 1e-9):
                break
            table = np.minimum(table, cap)
            table /= table[rows].mean()
        return cls(tuple(edges.tolist()), tuple(table.tolist()))

    def __call__(self, labels: np.ndarray) -> np.ndarray:
        """float32 weight of each label; labels outside the fitted range take the edge bins."""
        return np.asarray(self.weights, dtype=np.float32)[_bin_of(labels, np.asarray(self.edges))]


def _bin_of(labels: np.ndarray, edges: np.ndarray) -> np.ndarray:
    inner = edges[1:-1]
    return np.searchsorted(inner, np.asarray(labels, dtype=np.float64), side="right")
