"""Shared validation for model config dataclasses (raise ValueError; from_dict names the key)."""

from __future__ import annotations

from typing import Any


def require_odd(config: Any, *names: str) -> None:
    """Each named field must be a positive odd kernel size (so 'same' padding is exact)."""
    for name in names:
        value = getattr(config, name)
        if value < 1 or value % 2 == 0:
            raise ValueError(f"{name} must be a positive odd number, got {value}")


def require_dropout(config: Any, name: str = "dropout") -> None:
    """The named field must be a dropout probability in [0, 1)."""
    value = getattr(config, name)
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
