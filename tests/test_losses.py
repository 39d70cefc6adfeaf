import pytest
import torch

from raydream.models.heads import expression_from_output
from raydream.train.losses import compute_loss, soft_bin_targets


def test_soft_targets_are_distributions_centred_on_the_label():
    y = torch.tensor([0.0, 5.0, 11.4, 17.0])
    t = soft_bin_targets(y, 18, sd=0.5)
    assert t.shape == (4, 18)
    torch.testing.assert_close(t.sum(1), torch.ones(4))
    assert t.argmax(1).tolist() == [0, 5, 11, 17]
    mean = t @ torch.arange(18.0)
    assert mean[1] == pytest.approx(5.0, abs=1e-4)
    shifted = soft_bin_targets(y, 18, sd=0.5, shift=1.0)
    assert shifted.argmax(1).tolist() == [1, 6, 12, 17]


def test_expected_bin_of_logits():
    logits = torch.full((1, 18), -1e4)
    logits[0, 3] = logits[0, 5] = 0.0
    assert expression_from_output(logits).item() == pytest.approx(4.0)


def test_losses_match_their_definitions():
    y = torch.tensor([2.0, 4.0])
    pred = torch.tensor([3.0, 4.0])
    assert compute_loss(pred, y, "mse").item() == pytest.approx(0.5)
    assert compute_loss(pred, y, "huber", huber_delta=0.5).item() == pytest.approx((0.5 * (1 - 0.25)) / 2)
    logits = torch.zeros(2, 18)
    logits[0, 2] = logits[1, 4] = 20.0  # confident and right
    assert compute_loss(logits, y, "cross_entropy").item() < 1e-6
    assert compute_loss(logits, y, "soft_kl", soft_label_sd=0.3).item() < compute_loss(
        logits.roll(1, dims=1), y, "soft_kl", soft_label_sd=0.3).item()
    with pytest.raises(ValueError, match="bin logits"):
        compute_loss(pred, y, "soft_kl")
    with pytest.raises(ValueError, match="unknown loss"):
        compute_loss(logits, y, "hinge")
