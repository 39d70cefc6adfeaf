"""Model registry: `@register_model(name, config_cls)`, `create_model`, `list_models`.

Two kinds of model are registered, each built from one config dataclass whose fields are
what a search space may set:

- TORCH: a network mapping a one-hot batch (B, C_in, L) either to one value per sequence
  (B,) or to logits over expression bins (B, K) (see `raydream.models.heads`);
- TREE: a tree ensemble fitted on tabular sequence features (`raydream.models.trees`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from torch import nn

from raydream.core.typed import from_dict
from raydream.core.errors import ConfigError
from raydream.models.heads import BINS, REGRESSION, ScalarHead

TORCH, TREE = "torch", "tree"


@dataclass(frozen=True)
class _Entry:
    builder: Callable[[Any], nn.Module] | None
    config_cls: type
    output: str
    kind: str


_REGISTRY: dict[str, _Entry] = {}


def register_model(name: str, config_cls: type, output: str = REGRESSION) -> Callable:
    """Class or function decorator registering a model builder under `name`.

    output: REGRESSION for (B,) values, BINS for (B, K) logits over expression bins.
    """
    if output not in (REGRESSION, BINS):
        raise ValueError(f"output must be {REGRESSION!r} or {BINS!r}, got {output!r}")

    def decorate(builder):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = _Entry(builder, config_cls, output, TORCH)
        return builder

    return decorate


def register_tree_model(name: str, config_cls: type) -> None:
    """Register a tree model: fitted by the train layer, so the registry holds only its config."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered twice")
    _REGISTRY[name] = _Entry(None, config_cls, REGRESSION, TREE)


def list_models(kind: str | None = None) -> list[str]:
    """Names of the registered models (of `kind`, TORCH or TREE, if given), sorted."""
    return sorted(name for name, entry in _REGISTRY.items() if kind in (None, entry.kind))


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return _REGISTRY[name]


def model_kind(name: str) -> str:
    """TORCH or TREE."""
    return _entry(name).kind


def model_output(name: str) -> str:
    """REGRESSION or BINS: what model `name` returns."""
    return _entry(name).output


def model_config_class(name: str) -> type:
    """The config dataclass of model `name`."""
    return _entry(name).config_cls


def model_config(name: str, values: Mapping[str, Any] | None = None, where: str = "model") -> Any:
    """The typed config of model `name` built from `values` (unknown keys are errors)."""
    return from_dict(_entry(name).config_cls, values, f"{where} ({name})")


def create_model(name: str, config: Any = None, head_scalars: bool = False) -> nn.Module:
    """Build network `name` from its config object, a dict of fields, or defaults (None).

    head_scalars: wrap it in a `heads.ScalarHead`, which feeds the GC fraction and melting
    temperature of each input to the output layer.

    Raises:
        ConfigError: unknown name, bad config, or a tree model (those are fitted, not built).
    """
    entry = _entry(name)
    if entry.builder is None:
        raise ConfigError(f"{name!r} is a tree model: it is fitted on features, not built; see raydream.models.trees")
    if not isinstance(config, entry.config_cls):
        config = model_config(name, config)
    model = entry.builder(config)
    if head_scalars:
        model = ScalarHead(model, config.num_bins if entry.output == BINS else 1)
    return model
