"""Registry tests, parametrised over every registered model."""

import pytest
import torch

from raydream.errors import ConfigError
from raydream.models import TORCH, create_model, list_models, model_config, model_output
from raydream.models.heads import BINS, expression_from_output
from raydream.models.registry import register_model


@pytest.mark.parametrize("name", list_models(TORCH))
def test_forward_shape_no_nan_and_every_parameter_gets_a_gradient(name, device):
    torch.manual_seed(0)
    model = create_model(name).to(device)
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (6, 110)), 4).permute(0, 2, 1).float().to(device)
    out = model(x)
    if model_output(name) == BINS:
        assert out.shape == (6, model_config(name).num_bins)
    else:
        assert out.shape == (6,)
    assert torch.isfinite(out).all()
    y = expression_from_output(out)
    assert y.shape == (6,)
    ((y - 5.0) ** 2).mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", list_models(TORCH))
@pytest.mark.parametrize("length", [64, 111, 150])
def test_models_accept_any_input_length(name, length):
    model = create_model(name).eval()
    assert expression_from_output(model(torch.rand(2, 4, length))).shape == (2,)


@pytest.mark.parametrize("name", list_models(TORCH))
def test_untrained_model_predicts_near_initial_prediction(name):
    torch.manual_seed(0)
    model = create_model(name, {"initial_prediction": 7.0}).eval()
    y = expression_from_output(model(torch.zeros(4, 4, 110)))
    assert torch.allclose(y, torch.full_like(y, 7.0), atol=2.0)


def test_resnet_config_fields_shape_the_network():
    small = create_model("resnet", {"channels": 16, "num_blocks": 2, "kernel_size": 3})
    big = create_model("resnet", {"channels": 64, "num_blocks": 4, "kernel_size": 7})
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(big) > 10 * count(small)
    assert len(big.blocks) == 4


def test_unknown_model_and_keys_are_config_errors():
    with pytest.raises(ConfigError, match="unknown model 'nope'.*resnet"):
        create_model("nope")
    with pytest.raises(ConfigError, match="unknown key 'width'"):
        model_config("resnet", {"width": 3})
    with pytest.raises(ConfigError, match="kernel_size must be a positive odd number"):
        model_config("resnet", {"kernel_size": 4})
    with pytest.raises(ConfigError, match="channels must be int"):
        model_config("resnet", {"channels": 64.0})


def test_registering_a_name_twice_fails():
    with pytest.raises(ValueError, match="registered twice"):
        register_model("resnet", object)(lambda cfg: None)
