"""Keeping the leases of long loads alive.

A lease lasts ``lease_ttl`` seconds so that a dead holder cannot hold the others up for longer.
A live holder whose load runs longer must not lose it: another process would start a second
load, and the holder's compare-and-set would refuse its result (an expired lease looks like
one a write took away), so the slowest loads would never be cached. The keeper renews every
lease held for more than a third of ``lease_ttl``, from one thread per cache that sleeps while
no lease is held that long (loads shorter than that never cost a renewal). A renewal is a
compare-and-set too: a lease that a write took away stays taken away.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from ._logging import RateLimitedLog, logger

__all__ = ["LeaseKeeper"]

_log = logger("leases")


class LeaseKeeper:
    """Renews held leases (``(remote, token)`` pairs of the Cache) every ``ttl / 3`` seconds."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._period = ttl / 3
        self._cond = threading.Condition(threading.Lock())
        self._held: dict[int, tuple[Any, bytes, bytes, float]] = {}  # id -> (remote, pkey, token, due)
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._warn = RateLimitedLog(_log)

    def hold(self, lease: tuple[Any, bytes], pkey: bytes) -> int:
        """Keep ``lease`` (on ``pkey``) alive until ``drop`` of the returned handle."""
        remote, token = lease
        with self._cond:
            handle = next(self._ids)
            self._held[handle] = (remote, pkey, token, time.monotonic() + self._period)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="mlcache-leases", daemon=True)
                self._thread.start()
            return handle

    def drop(self, handle: int) -> None:
        with self._cond:
            self._held.pop(handle, None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)

    def reset(self) -> None:
        """In a forked child: the parent's thread and leases are not ours."""
        self._cond = threading.Condition(threading.Lock())
        self._held.clear()
        self._thread = None

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                now = time.monotonic()
                due = [(h, entry) for h, entry in self._held.items() if entry[3] <= now]
                for handle, (remote, pkey, token, _) in due:
                    self._held[handle] = (remote, pkey, token, now + self._period)
                wake = min((entry[3] for entry in self._held.values()), default=now + self._period)
            for _, (remote, pkey, token, _) in due:
                self._renew(remote, pkey, token)
            with self._cond:
                if not self._closed:
                    self._cond.wait(max(wake - time.monotonic(), 0.001))

    def _renew(self, remote: Any, pkey: bytes, token: bytes) -> None:
        try:
            remote.guard.call("lease_renew", pkey, token, self._ttl)
        except Exception as exc:  # the load goes on; its compare-and-set will tell
            self._warn.warning((remote.label, "renew"), "%s: lease renewal failed: %r", remote.label, exc)
