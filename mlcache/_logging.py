"""Logging that an outage cannot turn into a flood: at most one record per topic per interval."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

__all__ = ["RateLimitedLog", "logger"]


def logger(component: str) -> logging.Logger:
    """The logger of one component (``mlcache.cache``, ``mlcache.tiers.redis``, ...)."""
    return logging.getLogger(f"mlcache.{component}")


class RateLimitedLog:
    """Emit the first record of a topic at once, then at most one per ``interval`` seconds,
    saying how many were suppressed in between."""

    def __init__(self, log: logging.Logger, interval: float = 30.0) -> None:
        self._log = log
        self._interval = interval
        self._lock = threading.Lock()
        self._topics: dict[Any, list[float]] = {}  # topic -> [last emitted, suppressed]

    def warning(self, topic: Any, message: str, *args: Any) -> None:
        now = time.monotonic()
        with self._lock:
            state = self._topics.get(topic)
            if state is not None and now - state[0] < self._interval:
                state[1] += 1
                return
            suppressed = 0 if state is None else int(state[1])
            self._topics[topic] = [now, 0]
        if suppressed:
            message += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        self._log.warning(message, *args)
