"""Checkpoint directory format: `model.pt` (state dict) + `meta.json` (what built it).

Plain files, readable without Ray: `load_model(path)` rebuilds the model for prediction.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from raydream.errors import DataError
from raydream.models import create_model

MODEL_FILE = "model.pt"
META_FILE = "meta.json"


def save_checkpoint(
    directory: str | os.PathLike,
    model: nn.Module,
    model_name: str,
    model_config: Any,
    train_config: Any,
    epoch: int,
    metrics: dict[str, float],
    optimizer_state: dict | None = None,
    train_model: nn.Module | None = None,
) -> Path:
    """Write model weights and the configs that built them into `directory`.

    model: the weights to predict with. train_model: the weights training continues from,
    when they differ (stochastic weight averaging evaluates an average of past weights).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {"model": model.state_dict(), "optimizer": optimizer_state}
    if train_model is not None:
        state["train_model"] = train_model.state_dict()
    torch.save(state, directory / MODEL_FILE)
    meta = {
        "model": model_name,
        "model_config": asdict(model_config),
        "train_config": asdict(train_config),
        "epoch": epoch,
        "metrics": metrics,
    }
    (directory / META_FILE).write_text(json.dumps(meta, indent=2))
    return directory


def read_checkpoint(directory: str | os.PathLike, map_location: str = "cpu") -> tuple[dict, dict]:
    """The saved state ({"model", "optimizer"}) and meta of a checkpoint directory."""
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not meta_path.is_file() or not (directory / MODEL_FILE).is_file():
        raise DataError(f"{directory}: not a raydream checkpoint (expected {MODEL_FILE} and {META_FILE})")
    state = torch.load(directory / MODEL_FILE, map_location=map_location, weights_only=True)
    return state, json.loads(meta_path.read_text())


def load_model(directory: str | os.PathLike, map_location: str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model saved in a checkpoint directory; returns (model in eval mode, meta)."""
    state, meta = read_checkpoint(directory, map_location)
    model = create_model(meta["model"], meta["model_config"])
    model.load_state_dict(state["model"])
    model.eval()
    return model, meta
