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

A search asks for them through `stored_baselines`, which keeps each record in the cache
($RAYDREAM_CACHE or ~/.cache/raydream, under baselines/) under a key made of the dataset's
shard checksums (from its manifest) and everything the fit depends on, so that searches of
the same prepared data after the first skip the fit (and scikit-learn's import).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from importlib import metadata
from typing import Any

import numpy as np

from raydream.core.metrics import regression_metrics

KMER_KS = (1, 2, 3, 4, 5, 6)
RIDGE_ALPHAS = tuple(10.0**e for e in range(7))  # 1 .. 1,000,000
MAX_ROWS = 100_000  # rows of each split a baseline is fit and scored on
SEQ_LEN = 110
RECORD_VERSION = 1  # raised whenever the fit or the record changes, so that no older record is reused

logger = logging.getLogger(__name__)


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


def stored_baselines(data_dir: str | os.PathLike, max_rows: int = MAX_ROWS) -> dict[str, Any]:
    """`fit_baselines(data_dir, max_rows)`, kept in the cache under `baselines_key` and read
    from there when a search of the same data fitted them before. A dataset whose manifest
    has no shard checksums (an older version's) is fitted every time; a cache that cannot be
    written is passed over (logged)."""
    from raydream.core.files import write_text_atomic
    from raydream.data.prepare import cache_root, load_manifest

    key = baselines_key(load_manifest(data_dir), max_rows)
    if key is None:
        return fit_baselines(data_dir, max_rows)
    path = cache_root() / "baselines" / f"{key}.json"
    try:
        record = json.loads(path.read_text())
        if isinstance(record, dict) and isinstance(record.get("baselines"), dict):
            return record
    except (OSError, ValueError):
        pass  # not fitted yet, or a damaged file: fit again
    record = fit_baselines(data_dir, max_rows)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(record, allow_nan=False))
    except OSError as err:
        logger.info("raydream: the baselines were not kept in %s (%s)", path.parent, err)
    return record


def baselines_key(manifest: dict, max_rows: int) -> str | None:
    """A hex digest naming one fit: the dataset's shards and their checksums, the rows used,
    the k-mer sizes, the penalties, scikit-learn's version and RECORD_VERSION. None when the
    manifest has no checksum for some shard."""
    checksums = manifest.get("checksums") or {}
    shards = manifest.get("shards") or {}
    if not shards or not all(name in checksums for files in shards.values() for name in files):
        return None
    try:
        sklearn = metadata.version("scikit-learn")
    except metadata.PackageNotFoundError:
        sklearn = None
    what = {"shards": shards, "checksums": checksums, "max_rows": max_rows, "ks": list(KMER_KS),
            "alphas": list(RIDGE_ALPHAS), "sklearn": sklearn, "version": RECORD_VERSION}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:32]
