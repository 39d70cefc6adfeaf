"""Registry tests, parametrised over every registered model."""

import pytest
import torch

from raydream.core.errors import ConfigError
from raydream.models import TORCH, create_model, list_models, model_config, model_output
from raydream.models.heads import BINS, expression_from_output
from raydream.models.registry import register_model


@pytest.mark.parametrize("head_scalars", [False, True], ids=["plain", "head_scalars"])
@pytest.mark.parametrize("name", list_models(TORCH))
def test_forward_shape_no_nan_and_every_parameter_gets_a_gradient(name, head_scalars, device):
    torch.manual_seed(0)
    model = create_model(name, head_scalars=head_scalars).to(device)
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


def test_resnet_pooling_counts_motifs_with_avg_and_marks_them_with_max():
    from raydream.models.resnet import _global_pool

    x = torch.tensor([[[0.0, 2.0, 0.0, 2.0]]])  # one channel, a motif hit twice
    assert _global_pool(x, "max").tolist() == [[2.0]] and _global_pool(x, "avg").tolist() == [[1.0]]
    assert _global_pool(x, "max_avg").tolist() == [[2.0, 1.0]]
    both = create_model("resnet", {"channels": 8, "pool": "max_avg"})
    assert both.head[0].in_features == 16 and both(torch.zeros(2, 4, 110)).shape == (2,)
    with pytest.raises(ConfigError, match="pool must be one of max, avg, max_avg, got 'sum'"):
        model_config("resnet", {"pool": "sum"})


def test_legnet_blocks_are_shaped_and_started_as_legnets():
    model = create_model("legnet", {"stem_channels": 32, "block_channels": [16], "expansion": 4})
    block = model.blocks[0]
    expand, grouped = block.branch[0][0], block.branch[1][0]
    assert expand.out_channels == 16 * 4  # the block's output width x expansion
    assert grouped.groups == 64 // 2  # 2 channels per group
    assert block.branch[2].gate[0].out_features == 32 // 4  # SE bottleneck: input width / se_reduction
    gate = block.branch[2].gate[0].weight
    assert gate.abs().max() < 0.01 and float(block.branch[0][1].weight.mean()) == 1.0  # N(0, 0.001); BN identity
    silu = create_model("legnet", {"final_silu": True}).eval()  # LegNet's head: zero bias, a uniform guess
    assert expression_from_output(silu(torch.zeros(2, 4, 110))).tolist() == pytest.approx([8.5, 8.5])


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


def test_gc_and_tm_of_a_one_hot_batch_match_the_tree_features():
    from conftest import random_promoters

    from raydream.data.encode import one_hot, to_byte_matrix
    from raydream.data.features import gc_fraction, melting_temperature
    from raydream.models.heads import gc_and_tm

    seqs = random_promoters(5) + ["GGGCCC" * 17, "ACGTN" * 21]
    x = torch.from_numpy(one_hot(seqs, 120))  # shorter sequences are zero-padded
    scalars = gc_and_tm(torch.cat([x, torch.ones(len(seqs), 2, 120)], dim=1))  # flag channels ignored
    codes = to_byte_matrix(seqs, 120)
    no_n = slice(0, 6)  # one_hot counts N as 1/4 of each base; the byte features skip it
    assert torch.allclose(scalars[no_n, 0], torch.from_numpy(gc_fraction(codes))[no_n], atol=1e-6)
    assert torch.allclose(scalars[no_n, 1], torch.from_numpy(melting_temperature(codes))[no_n], atol=1e-4)


@pytest.mark.parametrize("name", ["resnet", "legnet"])
def test_head_scalars_start_as_the_plain_network_and_checkpoint_with_it(name, tmp_path):
    from raydream.train.checkpoint import restore_model, save_checkpoint
    from raydream.train.config import TrainConfig

    torch.manual_seed(0)
    plain = create_model(name).eval()
    torch.manual_seed(0)
    wrapped = create_model(name, head_scalars=True).eval()
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (3, 110)), 4).permute(0, 2, 1).float()
    assert torch.allclose(plain(x), wrapped(x))
    with torch.no_grad():
        wrapped.linear.weight.fill_(0.5)
    cfg = model_config(name)
    save_checkpoint(tmp_path, wrapped, name, cfg, TrainConfig(head_scalars=True), 1, {})
    loaded, _ = restore_model(tmp_path)
    assert torch.allclose(loaded(x), wrapped(x)) and not torch.allclose(loaded(x), plain(x))
