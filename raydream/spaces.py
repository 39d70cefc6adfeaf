"""Search spaces as YAML data, validated on load (no Ray here; `raydream.tune` converts).

Schema::

    description: free text                       # optional
    model: resnet                                # a registered model name
    model_config:                                # fields of that model's config dataclass
      channels: {choice: [32, 64, 96]}
      num_blocks: {randint: [2, 5]}              # integers 2..4 (upper bound exclusive, as Tune)
    train:                                       # fields of raydream.train.config.TrainConfig
      lr: {loguniform: [3.0e-4, 3.0e-3]}
      weight_decay: 1.0e-4                       # a plain value is a constant

Distributions: `choice: [v, ...]`, `uniform: [low, high]`, `loguniform: [low, high]`
(low > 0), `randint: [low, high)`, `quniform: [low, high, q]`. Every key, distribution and
value is checked when the file is loaded; errors name the file and the key.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from raydream.config import field_names, from_dict
from raydream.errors import ConfigError
from raydream.models import TREE, list_models, model_config, model_kind
from raydream.models.registry import model_config_class
from raydream.train.config import TREE_TRAIN_FIELDS, TrainConfig, build_model_config

DISTRIBUTIONS = {"choice": None, "uniform": 2, "loguniform": 2, "randint": 2, "quniform": 3}
TOP_LEVEL_KEYS = ("description", "model", "model_config", "train")
# Keys the command line owns: searching them would make ASHA's budget or the data differ
# between trials.
NOT_SEARCHABLE = ("max_epochs", "train_rows", "val_rows")


@dataclass(frozen=True)
class Distribution:
    """A Tune-style distribution: kind in DISTRIBUTIONS, args as written in the YAML."""

    kind: str
    args: tuple

    def candidates(self) -> list[Any]:
        """Values to check against the config: every choice, or both ends of a range."""
        if self.kind == "choice":
            return list(self.args)
        if self.kind == "randint":
            return [self.args[0], self.args[1] - 1]
        return [self.args[0], self.args[1]]


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space.

    model_config / train map each field to a constant or a `Distribution`.
    """

    path: Path
    model: str
    model_config: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def sampled_keys(self) -> list[str]:
        """Dotted names of the searched (non-constant) keys, e.g. "train.lr"."""
        return [
            f"{section}.{key}"
            for section in ("model_config", "train")
            for key, value in getattr(self, section).items()
            if isinstance(value, Distribution)
        ]

    def fewest_rounds(self) -> int | None:
        """Tree models: the fewest boosting rounds (or trees) a trial can be given; else None."""
        cls = model_config_class(self.model)
        for key in ("num_boost_round", "n_estimators"):
            if key in field_names(cls):
                return min(_values_of(self.model_config, key, getattr(cls, key)))
        return None


def spaces_dirs() -> list[Path]:
    """Where named spaces are looked up: ./search_spaces, then the ones shipped with raydream."""
    here = Path(__file__).resolve().parent
    dirs = [
        Path.cwd() / "search_spaces",
        here.parent / "search_spaces",  # source checkout / editable install
        Path(sys.prefix) / "share" / "raydream" / "search_spaces",  # wheel install (data-files)
    ]
    unique: list[Path] = []
    for d in dirs:
        if d.is_dir() and d not in unique:
            unique.append(d)
    return unique


def available_spaces() -> list[str]:
    """Names of the spaces found in `spaces_dirs()`."""
    return sorted({p.stem for d in spaces_dirs() for p in d.glob("*.yaml")})


def find_space(name_or_path: str) -> Path:
    """A space's YAML file from a name ("resnet") or a path ("my_space.yaml")."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if not candidate.is_file():
            raise ConfigError(f"{candidate}: no such search-space file")
        return candidate
    for directory in spaces_dirs():
        path = directory / f"{name_or_path}.yaml"
        if path.is_file():
            return path
    raise ConfigError(
        f"no search space named {name_or_path!r}; available: {', '.join(available_spaces()) or 'none'}"
    )


def _parse_distribution(spec: dict, where: str) -> Distribution:
    if len(spec) != 1:
        raise ConfigError(f"{where}: a distribution is a mapping with exactly one of {', '.join(DISTRIBUTIONS)}; got {sorted(spec)}")
    (kind, args), = spec.items()
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{where}: unknown distribution {kind!r}; expected one of {', '.join(DISTRIBUTIONS)}")
    if not isinstance(args, list) or not args:
        raise ConfigError(f"{where}: {kind} takes a non-empty list, got {args!r}")
    if kind == "choice":
        return Distribution(kind, tuple(args))
    if len(args) != DISTRIBUTIONS[kind]:
        raise ConfigError(f"{where}: {kind} takes {DISTRIBUTIONS[kind]} numbers, got {len(args)}: {args!r}")
    if not all(isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in args):
        raise ConfigError(f"{where}: {kind} bounds must be finite numbers, got {args!r}")
    low, high = args[0], args[1]
    if not low < high:
        raise ConfigError(f"{where}: {kind} needs low < high, got [{low}, {high}]")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}: loguniform needs low > 0, got {low}")
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise ConfigError(f"{where}: randint bounds must be integers, got {args!r}")
    if kind == "quniform" and args[2] <= 0:
        raise ConfigError(f"{where}: quniform step q must be > 0, got {args[2]}")
    return Distribution(kind, tuple(args))


def _parse_section(values: Any, allowed: list[str], where: str) -> dict[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values or distributions")
    parsed: dict[str, Any] = {}
    for key, value in values.items():
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r}; expected one of: {', '.join(allowed)}")
        parsed[key] = _parse_distribution(value, f"{where}.{key}") if isinstance(value, dict) else value
    return parsed


def _check_values(section: dict[str, Any], build, where: str) -> None:
    """Build the typed config for each candidate value of each key, others at constants."""
    constants = {k: v for k, v in section.items() if not isinstance(v, Distribution)}
    build(constants, where)
    for key, value in section.items():
        if isinstance(value, Distribution):
            for candidate in value.candidates():
                try:
                    build({**constants, key: candidate}, f"{where}.{key}")
                except ConfigError as err:
                    raise ConfigError(f"{err} (value {candidate!r} of {value.kind})") from None


def _values_of(section: dict[str, Any], key: str, default: Any) -> list[Any]:
    value = section.get(key, default)
    return value.candidates() if isinstance(value, Distribution) else [value]


def load_space(name_or_path: str) -> SearchSpace:
    """Load and validate a search space (see the module docstring for the schema).

    Raises:
        ConfigError: naming the file and key for YAML syntax errors, unknown keys, bad
            distributions and values the model or training config rejects.
    """
    path = find_space(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: YAML syntax error: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {', '.join(TOP_LEVEL_KEYS)}")
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"{path}: unknown top-level key {key!r}; expected one of: {', '.join(TOP_LEVEL_KEYS)}")
    model = raw.get("model")
    if model not in list_models():
        raise ConfigError(f"{path}: model: expected one of {', '.join(list_models())}, got {model!r}")
    model_fields = field_names(model_config_class(model))
    tree = model_kind(model) == TREE
    if tree:
        for key in raw.get("train") or {}:
            if key in field_names(TrainConfig) and key not in TREE_TRAIN_FIELDS:
                raise ConfigError(
                    f"{path}: train.{key} does not apply to the tree model {model!r}; its settings are in "
                    f"model_config ({', '.join(model_fields)})"
                )
    train_fields = list(TREE_TRAIN_FIELDS) if tree else field_names(TrainConfig)
    model_section = _parse_section(raw.get("model_config"), model_fields, f"{path}: model_config")
    train_section = _parse_section(raw.get("train"), train_fields, f"{path}: train")
    for key in NOT_SEARCHABLE:
        if isinstance(train_section.get(key), Distribution):
            raise ConfigError(f"{path}: train.{key} cannot be searched; set it on the command line")
    if "in_channels" in model_section:
        raise ConfigError(f"{path}: model_config.in_channels is derived from train.input_flags; do not set it")
    _check_values(train_section, lambda v, w: from_dict(TrainConfig, v, w), f"{path}: train")
    _check_values(model_section, lambda v, w: model_config(model, v, w), f"{path}: model_config")
    for loss in _values_of(train_section, "loss", TrainConfig.loss):
        for flags in _values_of(train_section, "input_flags", TrainConfig.input_flags):
            build_model_config(model, {}, TrainConfig(loss=loss, input_flags=flags), f"{path}: train.loss")
    return SearchSpace(
        path=path,
        model=model,
        model_config=model_section,
        train=train_section,
        description=str(raw.get("description", "")),
    )
