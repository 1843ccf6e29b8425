"""Synthetic Zipf-distributed traces."""

from __future__ import annotations

import itertools
import random

from .._checks import check_positive_int
from ..errors import ConfigurationError

__all__ = ["zipf_trace"]


def zipf_trace(alpha: float, n_objects: int, n_requests: int, seed: int = 0) -> list[int]:
    """``n_requests`` object ids in ``[0, n_objects)`` drawn from Zipf(``alpha``).

    The object of popularity rank ``i`` (1-based) is requested with probability proportional
    to ``1 / i**alpha``; ranks are mapped to ids by a seeded shuffle, so popular objects are
    not simply the small ids. The same arguments always give the same trace.
    """
    check_positive_int("n_objects", n_objects)
    if isinstance(n_requests, bool) or not isinstance(n_requests, int) or n_requests < 0:
        raise ConfigurationError(f"n_requests must be an integer >= 0, got {n_requests!r}")
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not alpha >= 0:
        raise ConfigurationError(f"alpha must be a number >= 0, got {alpha!r}")
    rng = random.Random(seed)
    ids = list(range(n_objects))
    rng.shuffle(ids)
    cumulative = list(itertools.accumulate(1.0 / i**alpha for i in range(1, n_objects + 1)))
    return rng.choices(ids, cum_weights=cumulative, k=n_requests)
