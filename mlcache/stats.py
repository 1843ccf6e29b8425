"""Counters and latency histograms behind ``Cache.stats()``: plain data out, cheap thread-safe
updates in.

An update appends to a deque (one atomic operation, no lock); the log is folded into the
totals under a lock when it grows long and whenever the numbers are read, so they are exact
however many threads update them. A fold drains exactly the entries present when it starts
(appends made meanwhile wait for the next one), in C: ``iter(popleft, None)`` under ``islice``,
counted by ``Counter.update``, so the hot path's amortized share of it stays small.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import Counter, deque
from itertools import islice, repeat
from typing import Any

__all__ = ["BUCKETS", "Counters", "Histogram"]

_FOLD_AT = 4096

#: Latency histogram bucket upper bounds, in seconds (Prometheus-style, cumulative).
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
           0.5, 1.0, 2.5, 5.0, 10.0, math.inf)  # fmt: skip


class Counters:
    """Named integer counters (``names`` start at 0; others appear when first counted)."""

    __slots__ = ("_lock", "_log", "_values")

    def __init__(self, *names: str) -> None:
        self._lock = threading.Lock()
        self._values = Counter(dict.fromkeys(names, 0))
        self._log: deque[str] = deque()

    def inc(self, name: str, amount: int = 1) -> None:
        log = self._log
        if amount == 1:
            log.append(name)
        else:
            log.extend(repeat(name, amount))
        if len(log) > _FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        with self._lock:
            log = self._log
            self._values.update(islice(iter(log.popleft, None), len(log)))

    def snapshot(self) -> dict[str, int]:
        self._fold()
        with self._lock:
            return dict(self._values)


class Histogram:
    """A distribution of seconds over ``BUCKETS``: ``snapshot()`` gives the count, the sum, the
    cumulative count per upper bound, and p50/p99 estimated from the buckets."""

    __slots__ = ("_counts", "_lock", "_log", "_sum")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._log: deque[float] = deque()
        self._counts = [0] * len(BUCKETS)
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        log = self._log
        log.append(seconds)
        if len(log) > _FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        with self._lock:
            log, counts = self._log, self._counts
            values = list(islice(iter(log.popleft, None), len(log)))
            self._sum = sum(values, self._sum)  # (in the order observed)
            # Sorted (C-fast for floats; durations are never NaN), each bucket's share is
            # one bisection per bound instead of one per value.
            values.sort()
            below = 0
            for index, bound in enumerate(BUCKETS):
                upto = bisect.bisect_right(values, bound)
                counts[index] += upto - below
                below = upto

    def snapshot(self) -> dict[str, Any]:
        self._fold()
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, running = {}, 0
        for bound, count in zip(BUCKETS, counts):
            running += count
            cumulative[bound] = running
        return {
            "count": running,
            "sum": total,
            "buckets": cumulative,
            "p50": _quantile(cumulative, running, 0.5),
            "p99": _quantile(cumulative, running, 0.99),
        }


def _quantile(cumulative: dict[float, int], total: int, q: float) -> float | None:
    """The upper bound of the bucket holding the ``q`` quantile (None when empty)."""
    if not total:
        return None
    rank = q * total
    for bound, count in cumulative.items():
        if count >= rank:
            return bound
    return math.inf
