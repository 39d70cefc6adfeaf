"""Inverse-density sample weights (plain numpy)."""

import numpy as np
import pytest
import torch

from raydream.train.losses import compute_loss
from raydream.train.weights import DensityWeights


def test_rare_labels_weigh_more_with_mean_one_and_a_cap():
    rng = np.random.default_rng(0)
    labels = np.concatenate([rng.normal(8, 1, 10_000), [0.5, 16.5]]).clip(0, 17)
    weights = DensityWeights.fit(labels, bins=18, cap=5.0)
    w = weights(labels)
    assert w.mean() == pytest.approx(1.0, rel=1e-6)
    assert w[-1] > w[np.argmin(abs(labels - 8))]  # a tail row outweighs a central one
    assert w.max() == pytest.approx(5.0, rel=1e-4)
    uncapped = DensityWeights.fit(labels, bins=18, cap=1e9)(labels)
    assert uncapped.max() > w.max()


def test_labels_outside_the_fitted_range_take_the_edge_bins():
    weights = DensityWeights.fit(np.array([1.0, 1.0, 2.0, 9.0]), bins=4, cap=10)
    assert weights(np.array([-5.0, 50.0])).tolist() == [weights(np.array([1.0]))[0], weights(np.array([9.0]))[0]]


def test_constant_labels_and_bad_settings():
    assert DensityWeights.fit(np.full(5, 3.0))(np.full(5, 3.0)).tolist() == [1.0] * 5
    with pytest.raises(ValueError, match="at least one label"):
        DensityWeights.fit(np.array([]))
    with pytest.raises(ValueError, match="cap >= 1"):
        DensityWeights.fit(np.array([1.0, 2.0]), cap=0.5)


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_weighted_loss_is_the_mean_of_weight_times_loss(loss):
    out, y = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 3.0, 1.0])
    per_sample = torch.stack([compute_loss(out[i : i + 1], y[i : i + 1], loss) for i in range(3)])
    w = torch.tensor([0.5, 1.0, 2.0])
    assert compute_loss(out, y, loss, weight=w) == pytest.approx(float((w * per_sample).mean()))
    assert compute_loss(out, y, loss, weight=torch.ones(3)) == pytest.approx(float(compute_loss(out, y, loss)))
