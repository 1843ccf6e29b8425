"""Argument validation shared by every constructor and setting (one message format everywhere)."""

from __future__ import annotations

import math
from typing import Any

from .errors import ConfigurationError

__all__ = ["check_choice", "check_positive_int", "check_ttl"]


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` if it is an int >= 1, else raise ``ConfigurationError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def check_ttl(name: str, value: Any, *, allow_none: bool = True) -> float | None:
    """Return a TTL in seconds (a finite number > 0), or None where that is allowed."""
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        allowed = "a finite number of seconds > 0" + (" or None" if allow_none else "")
        raise ConfigurationError(f"{name} must be {allowed}, got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: Any) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise naming what is allowed."""
    try:
        known = value in choices
    except TypeError:  # unhashable
        known = False
    if not known:
        allowed = ", ".join(repr(c) for c in sorted(choices))
        raise ConfigurationError(f"{name} must be one of {allowed}, got {value!r}")
    return value
