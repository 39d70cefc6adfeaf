"""Typed configs from plain dicts: unknown keys are errors, never silently ignored."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

from raydream.core.errors import ConfigError

T = TypeVar("T")

# Annotation (as a string, see `from __future__ import annotations`) -> accepted types.
_SCALAR_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def from_dict(cls: type[T], values: Mapping[str, Any] | None, where: str) -> T:
    """Build dataclass `cls` from `values`, rejecting unknown keys.

    Args:
        cls: a dataclass type whose fields all have defaults.
        values: the keys to set; None means all defaults.
        where: names the source in error messages, e.g. "raydream/search_spaces/resnet.yaml: model".
    Raises:
        ConfigError: naming `where`, the unknown key and the keys that are allowed, or the
            field's own validation message.
    """
    values = dict(values or {})
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} for {cls.__name__}; "
            f"expected one of: {', '.join(names)}"
        )
    types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    for key, value in values.items():
        expected = _SCALAR_TYPES.get(types[key])
        if expected and (not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected)):
            raise ConfigError(f"{where}: {key} must be {types[key]}, got {value!r}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None


def field_names(cls: type) -> list[str]:
    """The field names of dataclass `cls`, in declaration order."""
    return [f.name for f in dataclasses.fields(cls)]
