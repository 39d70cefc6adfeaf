"""Regression metrics with sklearn/scipy definitions; plain functions, no Ray."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats
from sklearn.metrics import mean_squared_error, r2_score

METRIC_NAMES = ("r2", "pearson", "spearman", "mse")


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """R^2, Pearson r, Spearman rho and MSE of predictions against measurements.

    Args:
        y_true, y_pred: 1-D arrays of the same length (>= 2).
    Returns:
        {"r2", "pearson", "spearman", "mse"}; a correlation is NaN when either input is
        constant (it is undefined there), R^2 is then 0 or negative as sklearn defines it.
    """
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} values, y_pred {y_pred.size}")
    if y_true.size < 2:
        raise ValueError(f"need at least 2 values to score, got {y_true.size}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        pearson = stats.pearsonr(y_true, y_pred).statistic
        spearman = stats.spearmanr(y_true, y_pred).statistic
    return {
        "r2": float(r2_score(y_true, y_pred)),
        "pearson": float(pearson),
        "spearman": float(spearman),
        "mse": float(mean_squared_error(y_true, y_pred)),
    }
