import json

import pytest
import torch

from raydream.train.checkpoint import restore_model, save_checkpoint
from raydream.core.errors import DataError
from raydream.models import create_model, model_config
from raydream.train.config import TrainConfig


def test_checkpoint_round_trip_rebuilds_an_identical_model(tmp_path):
    torch.manual_seed(0)
    cfg = model_config("resnet", {"channels": 16, "num_blocks": 2})
    model = create_model("resnet", cfg).eval()
    save_checkpoint(tmp_path / "ck", model, "resnet", cfg, TrainConfig(lr=0.01), epoch=3, metrics={"val_r2": 0.4})
    loaded, meta = restore_model(tmp_path / "ck")
    x = torch.rand(5, 4, 110)
    assert torch.equal(loaded(x), model(x))
    assert meta["epoch"] == 3 and meta["train_config"]["lr"] == 0.01
    assert json.loads((tmp_path / "ck" / "meta.json").read_text())["model_config"]["channels"] == 16


def test_loading_a_directory_that_is_not_a_checkpoint_fails_clearly(tmp_path):
    with pytest.raises(DataError, match="not a raydream checkpoint"):
        restore_model(tmp_path)


def test_a_checkpoint_trained_on_any_device_loads_and_trains_on_in_cpu_only_process(tmp_path, device):
    import numpy as np

    from raydream.train.checkpoint import read_checkpoint
    from raydream.train.optim import make_recipe
    from raydream.train.steps import train_epoch

    from conftest import random_promoters

    precision = "fp16" if device.type == "cuda" else "bf16"  # fp16 also saves its loss scale
    tcfg = TrainConfig(batch_size=16, precision=precision)
    cfg = model_config("resnet", {"channels": 16, "num_blocks": 2})
    torch.manual_seed(0)
    model = create_model("resnet", cfg).to(device)
    recipe = make_recipe(model, tcfg, steps_per_epoch=2)
    batch = {"sequence": np.array(random_promoters(32), dtype=object), "expression": np.linspace(0, 17, 32)}
    train_epoch(model, recipe, [batch], tcfg, device)
    save_checkpoint(tmp_path / "ck", model.eval(), "resnet", cfg, tcfg, epoch=1, metrics={},
                    optimizer_state=recipe.state_dict())

    loaded, _ = restore_model(tmp_path / "ck")  # on the CPU, whatever device trained it
    x = torch.rand(5, 4, 110)
    assert next(loaded.parameters()).device.type == "cpu"
    tolerance = 1e-5 if device.type == "cpu" else 5e-2  # CUDA convolutions may run in TF32
    torch.testing.assert_close(loaded(x), model(x.to(device)).cpu(), rtol=tolerance, atol=tolerance)
    state, _ = read_checkpoint(tmp_path / "ck")
    again = make_recipe(loaded, TrainConfig(batch_size=16), steps_per_epoch=2)  # fp32 on the CPU
    again.load_state_dict(state["optimizer"])
    train_epoch(loaded.train(), again, [batch], TrainConfig(batch_size=16), torch.device("cpu"))
