"""Checkpoint directory format: the model file + `meta.json` (what built it).

The model file is `model.pt` (a network's state dict), `model.txt` (LightGBM's text model)
or `model.joblib` (a scikit-learn forest). Plain files, readable without Ray:
`restore_model(path)` rebuilds the model (`raydream.results.inference` predicts with it).
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from raydream.core.errors import DataError, RayDreamError
from raydream.models import TREE, create_model, model_config, model_kind
from raydream.models.trees import FOREST_FILE, LIGHTGBM_FILE, TreeModel

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
    _write_meta(directory, model_name, model_config, train_config, epoch, metrics)
    return directory


def save_tree_checkpoint(
    directory: str | os.PathLike, model: TreeModel, model_name: str, train_config: Any, epoch: int, metrics: dict[str, float]
) -> Path:
    """Write a fitted tree model and the configs that built it into `directory`."""
    directory = Path(directory)
    model.save(directory)
    _write_meta(directory, model_name, model.config, train_config, epoch, metrics)
    return directory


def _write_meta(directory: Path, model_name: str, model_config: Any, train_config: Any, epoch: int, metrics: dict) -> None:
    meta = {
        "model": model_name,
        "model_config": asdict(model_config),
        "train_config": asdict(train_config),
        "epoch": epoch,
        "metrics": metrics,
    }
    (directory / META_FILE).write_text(json.dumps(meta, indent=2))


def read_meta(directory: str | os.PathLike) -> dict:
    """The meta.json of a checkpoint directory.

    Raises:
        DataError: the directory holds no raydream checkpoint.
    """
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not meta_path.is_file() or not any((directory / f).is_file() for f in (MODEL_FILE, LIGHTGBM_FILE, FOREST_FILE)):
        raise DataError(f"{directory}: not a raydream checkpoint (expected {META_FILE} and a model file)")
    try:
        meta = json.loads(meta_path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"{meta_path}: not valid JSON ({err}); the checkpoint is damaged") from None
    problem = _meta_problem(meta)
    if problem:
        raise DataError(f"{meta_path}: {problem}; the checkpoint is damaged or was not written by raydream")
    return meta


def _meta_problem(meta: Any) -> str | None:
    """What is missing or wrong in a checkpoint's meta.json, or None."""
    if not isinstance(meta, dict):
        return "expected a JSON object"
    for key, kind in (("model", str), ("model_config", dict), ("train_config", dict), ("epoch", int), ("metrics", dict)):
        if not isinstance(meta.get(key), kind):
            return f"{key!r} is missing or not a {kind.__name__}"
    from raydream.models import list_models

    if meta["model"] not in list_models():
        return f"unknown model {meta['model']!r} (known: {', '.join(list_models())})"
    return None


def read_checkpoint(directory: str | os.PathLike, map_location: "str | torch.device" = "cpu") -> tuple[dict, dict]:
    """The saved state ({"model", "optimizer"}) and meta of a network's checkpoint directory."""
    directory = Path(directory)
    meta = read_meta(directory)
    if not (directory / MODEL_FILE).is_file():
        raise DataError(f"{directory}: not a network checkpoint (expected {MODEL_FILE})")
    try:
        state = torch.load(directory / MODEL_FILE, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, ValueError, OSError, pickle.UnpicklingError) as err:
        raise DataError(f"{directory / MODEL_FILE}: cannot be loaded ({str(err).splitlines()[0]}); the checkpoint "
                        f"is damaged") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise DataError(f"{directory / MODEL_FILE}: holds no model weights (expected raydream's state dict)")
    return state, meta


def restore_model(directory: str | os.PathLike, map_location: "str | torch.device" = "cpu") -> tuple[nn.Module | TreeModel, dict]:
    """Rebuild the model saved in a checkpoint directory; returns (model, meta).

    A network comes back in eval mode; a tree model as a `TreeModel`.
    """
    meta = read_meta(directory)
    where = Path(directory)
    try:
        if model_kind(meta["model"]) == TREE:
            return TreeModel.load(directory, model_config(meta["model"], meta["model_config"])), meta
        state, meta = read_checkpoint(directory, map_location)
        model = create_model(meta["model"], meta["model_config"], meta["train_config"].get("head_scalars", False))
    except DataError:
        raise
    except RayDreamError as err:
        raise DataError(f"{where / META_FILE}: {err}") from None
    except (OSError, ValueError, EOFError, pickle.UnpicklingError, lightgbm_error()) as err:
        raise DataError(f"{where}: the model file cannot be loaded ({str(err).splitlines()[0] if str(err) else err!r}); "
                        f"the checkpoint is damaged") from None
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError) as err:
        raise DataError(f"{where / MODEL_FILE}: its weights do not fit the {meta['model']} model its {META_FILE} "
                        f"describes ({str(err).splitlines()[0][:200]})") from None
    model.eval()
    return model, meta


def lightgbm_error() -> type[Exception]:
    """LightGBM's error class, if LightGBM is installed (it is, with raydream)."""
    try:
        from lightgbm.basic import LightGBMError
    except ImportError:  # pragma: no cover
        return RuntimeError
    return LightGBMError
