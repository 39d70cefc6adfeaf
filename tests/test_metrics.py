import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import mean_squared_error, r2_score

from raydream.core.metrics import regression_metrics


def test_metrics_match_sklearn_and_scipy_definitions():
    rng = np.random.default_rng(0)
    y = rng.uniform(0, 17, 500)
    p = y + rng.normal(0, 2, 500)
    m = regression_metrics(y, p)
    assert m["r2"] == pytest.approx(r2_score(y, p))
    assert m["mse"] == pytest.approx(mean_squared_error(y, p))
    assert m["pearson"] == pytest.approx(stats.pearsonr(y, p)[0])
    assert m["spearman"] == pytest.approx(stats.spearmanr(y, p)[0])


def test_hand_computed_values():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.0, 2.0, 3.0, 5.0])
    m = regression_metrics(y, p)
    assert m["mse"] == pytest.approx(0.25)
    assert m["r2"] == pytest.approx(1 - 1.0 / 5.0)  # SS_res = 1, SS_tot = 5
    assert m["spearman"] == pytest.approx(1.0)


def test_constant_prediction_gives_nan_correlation_and_non_positive_r2():
    y = np.array([1.0, 2.0, 3.0])
    m = regression_metrics(y, np.full(3, 2.0))
    assert np.isnan(m["pearson"]) and np.isnan(m["spearman"])
    assert m["r2"] == pytest.approx(0.0)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="3 values"):
        regression_metrics([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        regression_metrics([1], [1])


def test_non_finite_predictions_give_nan_scores():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    m = regression_metrics(y, np.array([1.0, np.nan, 3.0, 4.0]))
    assert np.isnan(m["pearson"]) and np.isnan(m["spearman"]) and np.isnan(m["r2"]) and np.isnan(m["mse"])


def test_ties_rank_as_scipy_ranks_them():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 18, 300).astype(float)  # whole-number bins: many ties
    p = y + rng.normal(0, 3, 300).round()
    assert regression_metrics(y, p)["spearman"] == pytest.approx(stats.spearmanr(y, p)[0])
