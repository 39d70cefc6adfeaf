"""The baselines a search has to beat, fitted on the search's own splits (no Ray).

- "training mean": predicts the mean expression of the training rows for every sequence
  (R^2 about 0 by construction; its correlations are undefined).
- "k-mer ridge": ridge regression on whole-sequence k-mer counts, k = 1..6 (5,460 columns),
  each column scaled to unit variance, the penalty chosen among RIDGE_ALPHAS by validation
  R^2 (scikit-learn's `Ridge` on a sparse matrix): tried from the strongest down, stopping
  once the score falls (the weaker the penalty, the longer a fit takes).

Both are fit on the first `max_rows` rows of the training split and scored on the first
`max_rows` of the validation and test splits, in the source file's order (the prepared
splits keep it): all of the embedded sample, a sample of the full DREAM training set unless
its file is sorted.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from raydream.core.metrics import regression_metrics

KMER_KS = (1, 2, 3, 4, 5, 6)
RIDGE_ALPHAS = tuple(10.0**e for e in range(7))  # 1 .. 1,000,000
MAX_ROWS = 100_000  # rows of each split a baseline is fit and scored on
SEQ_LEN = 110


def read_rows(data_dir: str | os.PathLike, split: str, max_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `max_rows` rows of a split: (sequences as (N, SEQ_LEN) uint8 codes,
    expression float64 (N,))."""
    from raydream.data.encode import to_byte_matrix
    from raydream.data.prepare import read_split

    table = read_split(data_dir, split, limit=max_rows)
    sequences = table.column("sequence").to_numpy(zero_copy_only=False)
    return to_byte_matrix(sequences, SEQ_LEN), table.column("expression").to_numpy().astype(np.float64)


def _scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float | None]:
    """Rounded metrics; None where a metric is undefined (a constant prediction's correlations)."""
    return {k: round(v, 6) if np.isfinite(v) else None for k, v in regression_metrics(y, pred).items()}


def fit_baselines(data_dir: str | os.PathLike, max_rows: int = MAX_ROWS) -> dict[str, Any]:
    """Fit and score both baselines on a prepared dataset.

    Returns:
        {"fit_rows", "val_rows", "test_rows", "seconds", "baselines": {name: {"val": metrics,
        "test": metrics, ...}}}, metrics as `raydream.core.metrics.regression_metrics` gives them
        (a test entry is None when the dataset has no test rows).
    """
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from raydream.data.features import kmer_count_matrix

    started = time.perf_counter()
    splits = {s: read_rows(data_dir, s, max_rows) for s in ("train", "val", "test")}
    features = {s: kmer_count_matrix(codes, KMER_KS) for s, (codes, _) in splits.items()}
    (_, y_train), (_, y_val), (_, y_test) = splits["train"], splits["val"], splits["test"]
    has_test = len(y_test) >= 2

    mean = float(y_train.mean())
    baselines: dict[str, dict[str, Any]] = {"training mean": {
        "val": _scores(y_val, np.full(len(y_val), mean)),
        "test": _scores(y_test, np.full(len(y_test), mean)) if has_test else None,
        "value": round(mean, 6),
    }}
    best = None
    for alpha in sorted(RIDGE_ALPHAS, reverse=True):
        model = make_pipeline(StandardScaler(with_mean=False), Ridge(alpha=alpha))
        model.fit(features["train"], y_train)
        val = _scores(y_val, model.predict(features["val"]))
        if best is not None and val["r2"] <= best[1]["r2"]:  # R^2 of a ridge fit is always defined
            break
        best = (alpha, val, model)
    alpha, val, model = best
    baselines["k-mer ridge"] = {
        "val": val,
        "test": _scores(y_test, model.predict(features["test"])) if has_test else None,
        "alpha": alpha,
        "ks": list(KMER_KS),
    }
    return {"fit_rows": len(y_train), "val_rows": len(y_val), "test_rows": len(y_test),
            "seconds": round(time.perf_counter() - started, 2), "baselines": baselines}
