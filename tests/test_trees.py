"""Tree models as plain LightGBM / scikit-learn code (no Ray): configs, learning, checkpoints."""

import lightgbm
import numpy as np
import pytest

from raydream.results.inference import predict
from raydream.train.checkpoint import restore_model, save_tree_checkpoint
from raydream.data.features import sequence_features
from raydream.data.synthetic import generate_library
from raydream.core.errors import ConfigError
from raydream.core.metrics import regression_metrics
from raydream.models import TREE, create_model, list_models, model_config
from raydream.data.encode import to_byte_matrix
from raydream.data.features import code_features
from raydream.models.trees import (
    LightGBMConfig,
    TreeModel,
    epoch_ends,
    feature_rows,
    grow_forest,
    learning_rate_schedule,
    lightgbm_params,
    new_forest,
)
from raydream.train.config import TrainConfig


@pytest.fixture(scope="module")
def library():
    """Synthetic promoters with planted motifs: 3,000 to train on, 1,000 to validate."""
    lib = generate_library(4000, seed=5)
    seqs = np.array(lib.sequences, dtype=object)
    return (seqs[:3000], lib.measured[:3000]), (seqs[3000:], lib.measured[3000:])


def fit_tree(name: str, values: dict, seqs, y, seed: int = 0) -> TreeModel:
    cfg = model_config(name, values)
    X = sequence_features(seqs, cfg)
    if name == "lightgbm":
        params = lightgbm_params(cfg, seed=seed, num_threads=1)
        schedule = learning_rate_schedule(cfg)
        booster = lightgbm.train(params, lightgbm.Dataset(X, y), num_boost_round=cfg.num_boost_round,
                                 callbacks=[lightgbm.reset_parameter(learning_rate=schedule)])
        return TreeModel(cfg, booster)
    return TreeModel(cfg, grow_forest(new_forest(cfg, seed, n_jobs=1), cfg.n_estimators, X, y))


SMALL = {
    "lightgbm": {"k": 4, "num_leaves": 15, "num_boost_round": 150, "learning_rate": 0.05},
    "random_forest": {"k": 4, "n_estimators": 40, "max_depth": 12},
}


def test_every_tree_model_has_a_small_learning_config():
    assert sorted(SMALL) == list_models(TREE)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_tree_model_learns_the_planted_signal_well_above_a_shuffled_control(name, library):
    (seqs, y), (val_seqs, val_y) = library
    learned = regression_metrics(val_y, fit_tree(name, SMALL[name], seqs, y).predict(val_seqs))["r2"]
    shuffled = np.random.default_rng(0).permutation(y)
    control = regression_metrics(val_y, fit_tree(name, SMALL[name], seqs, shuffled).predict(val_seqs))["r2"]
    assert learned > 0.3, learned
    assert control < 0.05, control


@pytest.mark.parametrize("name", sorted(SMALL))
def test_tree_checkpoint_round_trip_predicts_the_same(name, library, tmp_path):
    (seqs, y), (val_seqs, _) = library
    fewer = {"num_boost_round": 20} if name == "lightgbm" else {"n_estimators": 5}
    model = fit_tree(name, {**SMALL[name], **fewer}, seqs[:500], y[:500])
    save_tree_checkpoint(tmp_path / "ck", model, name, TrainConfig(seed=3), epoch=2, metrics={"val_r2": 0.1})
    loaded, meta = restore_model(tmp_path / "ck")
    assert meta["model"] == name and meta["epoch"] == 2 and meta["train_config"]["seed"] == 3
    preds = model.predict(val_seqs)
    assert np.allclose(loaded.predict(val_seqs), preds)
    assert np.allclose(predict(tmp_path / "ck", val_seqs), preds)
    assert np.isfinite(preds).all() and preds.shape == (len(val_seqs),)


def test_huber_objective_and_learning_rate_decay_reach_lightgbm():
    cfg = LightGBMConfig(objective="huber", huber_delta=2.0, learning_rate=0.1, lr_decay=0.9, bagging_fraction=0.5,
                         bagging_freq=1)
    params = lightgbm_params(cfg, seed=1, num_threads=2)
    assert params["objective"] == "huber" and params["alpha"] == 2.0
    assert params["bagging_fraction"] == 0.5 and params["seed"] == 1 and params["num_threads"] == 2
    assert learning_rate_schedule(cfg)(0) == pytest.approx(0.1)
    assert learning_rate_schedule(cfg)(10) == pytest.approx(0.1 * 0.9**10)
    assert lightgbm_params(LightGBMConfig(), 0, 1)["objective"] == "regression"


def test_epochs_cut_the_rounds_evenly_and_end_at_the_last_round():
    assert epoch_ends(400, 8) == [50, 100, 150, 200, 250, 300, 350, 400]
    assert epoch_ends(10, 3) == [4, 7, 10]
    with pytest.raises(ValueError, match="3 rounds cannot be cut into 4 epochs"):
        epoch_ends(3, 4)


def test_forest_grows_by_warm_start_keeping_its_trees(library):
    (seqs, y), _ = library
    cfg = model_config("random_forest", {"k": 3, "n_estimators": 6, "max_depth": 4})
    X = sequence_features(seqs[:300], cfg)
    forest = grow_forest(new_forest(cfg, 0, 1), 3, X, y[:300])
    first = list(forest.estimators_)
    grow_forest(forest, 6, X, y[:300])
    assert len(forest.estimators_) == 6 and forest.estimators_[:3] == first


def test_tree_configs_reject_bad_values_naming_the_key():
    with pytest.raises(ConfigError, match="num_leaves must be in 2..2047"):
        model_config("lightgbm", {"num_leaves": 4096})
    with pytest.raises(ConfigError, match="objective must be one of l2, huber"):
        model_config("lightgbm", {"objective": "poisson"})
    with pytest.raises(ConfigError, match="window must be in"):
        model_config("random_forest", {"window": 200})
    with pytest.raises(ConfigError, match="max_features"):
        model_config("random_forest", {"max_features": 0.0})
    with pytest.raises(ConfigError, match="tree model"):
        create_model("lightgbm")


def test_feature_rows_give_lightgbm_the_same_data_batch_by_batch(library):
    (seqs, y), (val_seqs, _) = library
    cfg = model_config("lightgbm", {"k": 3, "window": 50, "stride": 30, "positional": True, "num_leaves": 7})
    codes = to_byte_matrix(seqs[:700], cfg.seq_len)
    rows = feature_rows(codes, cfg, batch_size=64)
    dense = code_features(codes, cfg)
    assert len(rows) == 700
    assert np.array_equal(rows[100:300], dense[100:300]) and np.array_equal(rows[[3, 650]], dense[[3, 650]])
    assert all(np.array_equal(rows[i], dense[i]) for i in (0, 63, 64, 65, 699, 5))
    params = lightgbm_params(cfg, seed=0, num_threads=1)
    from_rows = lightgbm.train(params, lightgbm.Dataset(rows, y[:700]), num_boost_round=15)
    from_dense = lightgbm.train(params, lightgbm.Dataset(dense, y[:700]), num_boost_round=15)
    X_val = sequence_features(val_seqs, cfg)
    assert np.allclose(from_rows.predict(X_val), from_dense.predict(X_val))
    assert np.allclose(TreeModel(cfg, from_rows).predict(val_seqs), from_dense.predict(X_val))
