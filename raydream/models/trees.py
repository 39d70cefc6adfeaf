"""Tree models on tabular sequence features: LightGBM boosting and a scikit-learn random forest.

A tree model is a feature recipe (`raydream.data.features.FeatureConfig`, whose fields its
config inherits) plus a fitted estimator. No Ray here: the Ray Train / Tune layer calls
`lightgbm_params`, `learning_rate_schedule`, `epoch_ends` and `grow_forest` and wraps the
result in a `TreeModel` for prediction and checkpoints.

Training is cut into the same "epochs" as the neural networks so that ASHA can compare and
stop trials: with E epochs, epoch e ends after ceil(e * rounds / E) boosting rounds (or
trees), and the validation metrics are reported there.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from raydream.data.encode import to_byte_matrix
from raydream.data.features import FeatureConfig, code_features
from raydream.models.registry import register_tree_model

OBJECTIVES = ("l2", "huber")
MAX_LEAVES = 2047
FEATURE_BATCH = 4096  # rows featurised at a time: bounds the float32 feature matrix in memory


@dataclass(frozen=True)
class LightGBMConfig(FeatureConfig):
    """LightGBM regression (gradient-boosted trees) on k-mer / GC / Tm features."""

    num_leaves: int = 63  # leaves per tree, 2..2047
    num_boost_round: int = 300  # trees in the finished model
    learning_rate: float = 0.05  # shrinkage of the first round
    lr_decay: float = 1.0  # learning rate of round i = learning_rate * lr_decay ** i
    min_data_in_leaf: int = 20
    bagging_fraction: float = 1.0  # rows sampled per bagging round (1 = no bagging)
    bagging_freq: int = 0  # resample rows every N rounds (0 = no bagging)
    feature_fraction: float = 1.0  # columns sampled per tree
    lambda_l2: float = 0.0  # L2 penalty on leaf values
    objective: str = "l2"  # l2 | huber
    huber_delta: float = 1.0  # huber: quadratic within this many bins (LightGBM's `alpha`)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 2 <= self.num_leaves <= MAX_LEAVES:
            raise ValueError(f"num_leaves must be in 2..{MAX_LEAVES}, got {self.num_leaves}")
        if self.num_boost_round < 1 or self.min_data_in_leaf < 1:
            raise ValueError("num_boost_round and min_data_in_leaf must be >= 1")
        if self.learning_rate <= 0 or not 0 < self.lr_decay <= 1:
            raise ValueError("learning_rate must be > 0 and lr_decay in (0, 1]")
        if not 0 < self.bagging_fraction <= 1 or not 0 < self.feature_fraction <= 1:
            raise ValueError("bagging_fraction and feature_fraction must be in (0, 1]")
        if self.bagging_freq < 0 or self.lambda_l2 < 0:
            raise ValueError("bagging_freq and lambda_l2 must be >= 0")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.huber_delta <= 0:
            raise ValueError(f"huber_delta must be > 0, got {self.huber_delta}")


@dataclass(frozen=True)
class RandomForestConfig(FeatureConfig):
    """scikit-learn random forest (bagged regression trees) on the same features."""

    n_estimators: int = 100  # trees in the finished forest
    max_depth: int = 16  # 0 = grow until leaves are pure or min_samples_leaf
    min_samples_leaf: int = 5
    max_features: float = 0.33  # fraction of features tried per split
    max_samples: float = 0.5  # fraction of rows each tree's bootstrap sample draws

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_estimators < 1 or self.min_samples_leaf < 1 or self.max_depth < 0:
            raise ValueError("n_estimators and min_samples_leaf must be >= 1 and max_depth >= 0")
        if not 0 < self.max_features <= 1 or not 0 < self.max_samples <= 1:
            raise ValueError("max_features and max_samples must be in (0, 1]")


register_tree_model("lightgbm", LightGBMConfig)
register_tree_model("random_forest", RandomForestConfig)


def rounds(config: LightGBMConfig | RandomForestConfig) -> int:
    """Boosting rounds or trees of the finished model."""
    return config.num_boost_round if isinstance(config, LightGBMConfig) else config.n_estimators


def epoch_ends(total: int, epochs: int) -> list[int]:
    """Rounds (or trees) done at the end of epochs 1..epochs: ceil(e * total / epochs).

    Raises:
        ValueError: fewer rounds than epochs, so some epoch would add nothing.
    """
    if total < epochs:
        raise ValueError(f"{total} rounds cannot be cut into {epochs} epochs; use more rounds or fewer epochs")
    return [math.ceil(e * total / epochs) for e in range(1, epochs + 1)]


def lightgbm_params(config: LightGBMConfig, seed: int, num_threads: int) -> dict[str, Any]:
    """`lightgbm.train` params for `config` (the learning rate decay is a callback, see
    `learning_rate_schedule`)."""
    params: dict[str, Any] = {
        "objective": "regression" if config.objective == "l2" else "huber",
        "num_leaves": config.num_leaves,
        "learning_rate": config.learning_rate,
        "min_data_in_leaf": config.min_data_in_leaf,
        "bagging_fraction": config.bagging_fraction,
        "bagging_freq": config.bagging_freq,
        "feature_fraction": config.feature_fraction,
        "lambda_l2": config.lambda_l2,
        "seed": seed,
        "num_threads": num_threads,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }
    if config.objective == "huber":
        params["alpha"] = config.huber_delta
    return params


def learning_rate_schedule(config: LightGBMConfig) -> Callable[[int], float]:
    """Learning rate of boosting round i (from 0), for `lightgbm.reset_parameter`."""
    return lambda i: config.learning_rate * config.lr_decay**i


def feature_batches(codes: np.ndarray, config: FeatureConfig, batch_size: int = FEATURE_BATCH):
    """The features of (N, seq_len) sequence codes, float32 (<= batch_size, F) arrays in row order."""
    for start in range(0, len(codes), batch_size):
        yield code_features(codes[start : start + batch_size], config)


def feature_rows(codes: np.ndarray, config: FeatureConfig, batch_size: int = FEATURE_BATCH):
    """The features of (N, seq_len) sequence codes as a `lightgbm.Sequence`.

    LightGBM builds its Dataset from it batch by batch, so the float32 feature matrix is never
    whole in memory: only the codes (1 byte per base) and LightGBM's binned copy are. The
    rows LightGBM samples one at a time to find bin edges come in increasing order, so the
    block each lies in is featurised once and kept until the next is needed.
    """
    import lightgbm  # imported here: loading it takes a second and most users of this module train networks

    class FeatureRows(lightgbm.Sequence):
        def __init__(self) -> None:
            self.batch_size = batch_size
            self._block: tuple[int, np.ndarray | None] = (-1, None)

        def __len__(self) -> int:
            return len(codes)

        def __getitem__(self, idx):
            if isinstance(idx, (slice, list)):
                return code_features(codes[idx], config)
            block = int(idx) // batch_size
            if self._block[0] != block:  # LightGBM wants single sampled rows as float64
                features = code_features(codes[block * batch_size : (block + 1) * batch_size], config)
                self._block = (block, features.astype(np.float64))
            return self._block[1][int(idx) - block * batch_size]

    return FeatureRows()


def new_forest(config: RandomForestConfig, seed: int, n_jobs: int):
    """An unfitted warm-start `RandomForestRegressor`; `grow_forest` adds trees to it."""
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(
        n_estimators=0,
        max_depth=config.max_depth or None,
        min_samples_leaf=config.min_samples_leaf,
        max_features=config.max_features,
        max_samples=config.max_samples,
        bootstrap=True,
        warm_start=True,
        random_state=seed,
        n_jobs=n_jobs,
    )


def grow_forest(forest, n_trees: int, X: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None):
    """Grow a warm-start forest to `n_trees` trees (the ones it has are kept)."""
    forest.set_params(n_estimators=n_trees)
    return forest.fit(X, y, sample_weight=weight)


LIGHTGBM_FILE = "model.txt"
FOREST_FILE = "model.joblib"


class TreeModel:
    """A fitted tree estimator with its feature recipe: predicts expression from sequences."""

    def __init__(self, config: LightGBMConfig | RandomForestConfig, estimator: Any):
        self.config = config
        self.estimator = estimator

    def predict(self, seqs: Sequence[str] | np.ndarray) -> np.ndarray:
        """Predicted expression (float64, one per sequence)."""
        return self.predict_codes(to_byte_matrix(seqs, self.config.seq_len))

    def predict_codes(self, codes: np.ndarray) -> np.ndarray:
        """`predict` for sequences in `to_byte_matrix` form, featurised FEATURE_BATCH rows at a time."""
        preds = [self.estimator.predict(features) for features in feature_batches(codes, self.config)]
        return np.concatenate(preds).astype(np.float64) if preds else np.zeros(0)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the estimator: LightGBM's text model, or the forest as a joblib file."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if isinstance(self.config, LightGBMConfig):
            path = directory / LIGHTGBM_FILE
            self.estimator.save_model(str(path))
        else:
            import joblib

            path = directory / FOREST_FILE
            joblib.dump(self.estimator, path)
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike, config: LightGBMConfig | RandomForestConfig) -> "TreeModel":
        """The model `save` wrote into `directory` (only load files you trust: joblib unpickles)."""
        directory = Path(directory)
        if isinstance(config, LightGBMConfig):
            import lightgbm

            return cls(config, lightgbm.Booster(model_file=str(directory / LIGHTGBM_FILE)))
        import joblib

        return cls(config, joblib.load(directory / FOREST_FILE))
