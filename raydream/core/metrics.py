"""Regression metrics, with sklearn's and scipy's definitions; plain functions, no Ray.

Computed with numpy and pandas, which every Ray Train worker has loaded already: importing
scipy.stats and sklearn.metrics took ~0.5 s in each new worker process on 2 cores, and
every trial starts new ones. The tests check the values against sklearn and scipy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METRIC_NAMES = ("r2", "pearson", "spearman", "mse")


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """R^2, Pearson r, Spearman rho and MSE of predictions against measurements.

    Args:
        y_true, y_pred: 1-D arrays of the same length (>= 2).
    Returns:
        {"r2", "pearson", "spearman", "mse"}; a correlation is NaN when either input is
        constant (it is undefined there); R^2 is then 0 or negative, as sklearn defines it
        (1 for a perfect prediction of constant values).
    """
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} values, y_pred {y_pred.size}")
    if y_true.size < 2:
        raise ValueError(f"need at least 2 values to score, got {y_true.size}")
    residual = float(np.sum((y_true - y_pred) ** 2))
    total = float(np.sum((y_true - y_true.mean()) ** 2))
    r2 = 1.0 - residual / total if total > 0 else (1.0 if residual == 0 else 0.0)
    pair = pd.DataFrame({"true": y_true, "pred": y_pred})
    # Undefined for constant inputs; NaN for non-finite ones too (pandas would drop those rows).
    finite = np.isfinite(y_true).all() and np.isfinite(y_pred).all()
    undefined = not finite or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0
    return {
        "r2": r2,
        "pearson": np.nan if undefined else float(pair.corr(method="pearson").iloc[0, 1]),
        "spearman": np.nan if undefined else float(pair.corr(method="spearman").iloc[0, 1]),
        "mse": residual / y_true.size,
    }
