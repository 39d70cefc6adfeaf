import json

import pytest
import torch

from raydream.checkpoint import load_model, save_checkpoint
from raydream.errors import DataError
from raydream.models import create_model, model_config
from raydream.train.config import TrainConfig


def test_checkpoint_round_trip_rebuilds_an_identical_model(tmp_path):
    torch.manual_seed(0)
    cfg = model_config("resnet", {"channels": 16, "num_blocks": 2})
    model = create_model("resnet", cfg).eval()
    save_checkpoint(tmp_path / "ck", model, "resnet", cfg, TrainConfig(lr=0.01), epoch=3, metrics={"val_r2": 0.4})
    loaded, meta = load_model(tmp_path / "ck")
    x = torch.rand(5, 4, 110)
    assert torch.equal(loaded(x), model(x))
    assert meta["epoch"] == 3 and meta["train_config"]["lr"] == 0.01
    assert json.loads((tmp_path / "ck" / "meta.json").read_text())["model_config"]["channels"] == 16


def test_loading_a_directory_that_is_not_a_checkpoint_fails_clearly(tmp_path):
    with pytest.raises(DataError, match="not a raydream checkpoint"):
        load_model(tmp_path)
