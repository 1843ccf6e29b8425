"""Single-flight inside a process: one load per key, however many threads and tasks ask.

A ``Flight`` is one in-progress load of one key. The first caller becomes its leader and
loads; the others wait on it, threads on a ``threading.Event`` and asyncio tasks on a future of
their own event loop, woken by the leader (``call_soon_threadsafe``), never by polling. The
leader ends the flight with a result, with the loader's exception (every waiter gets it), or
by abandoning it (cancelled, interrupted): then the waiters start over and one of them leads.

A refresh (an early refresh, or a stale value's background one) is not a flight: nobody waits
for it, since every caller has a value to serve meanwhile. ``Flights`` only makes sure one
runs per key at a time.

Re-entry: a loader that asks for its own key (directly, or through another key's loader) would
wait on itself forever. The keys being loaded along the current call chain are kept in a
context variable, which threads run in and asyncio tasks inherit, so that case raises
``ReentrantLoadError`` instead.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Any

from .errors import ReentrantLoadError

__all__ = ["ABANDONED", "TIMED_OUT", "Flight", "Flights", "Outcome"]

_loading: contextvars.ContextVar[frozenset[Hashable]] = contextvars.ContextVar(
    "mlcache_loading", default=frozenset()
)


class Outcome:
    """How a flight ended for a waiter: a value (``stale``: past its TTL), an exception, or one
    of the two markers."""

    __slots__ = ("error", "stale", "value")

    def __init__(
        self, value: Any = None, error: BaseException | None = None, stale: bool = False
    ) -> None:
        self.value, self.error, self.stale = value, error, stale


ABANDONED = Outcome()  # the leader gave up: start over
TIMED_OUT = Outcome()  # the waiter's bound passed first


class Flight:
    """One in-progress load; see the module docstring."""

    __slots__ = ("_async_waiters", "_done", "_lock", "key", "outcome")

    def __init__(self, key: Hashable) -> None:
        self.key = key
        self.outcome: Outcome | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Outcome]]] = []

    def finish(self, outcome: Outcome) -> None:
        """End the flight (leader only) and wake every waiter, in every thread and loop."""
        with self._lock:
            if self.outcome is not None:
                return
            self.outcome = outcome
            waiters, self._async_waiters = self._async_waiters, []
        self._done.set()
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, future, outcome)
            except RuntimeError:  # that loop is closed: nobody is waiting there any more
                pass

    def wait(self, timeout: float | None) -> Outcome:
        """Block this thread until the flight ends (or ``timeout`` seconds pass)."""
        if not self._done.wait(timeout):
            return TIMED_OUT
        return self.outcome  # type: ignore[return-value]

    async def await_(self, timeout: float | None) -> Outcome:
        """Wait in this task until the flight ends (or ``timeout`` seconds pass)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        with self._lock:
            if self.outcome is not None:
                return self.outcome
            self._async_waiters.append((loop, future))
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            return TIMED_OUT
        finally:
            with self._lock:
                if (loop, future) in self._async_waiters:
                    self._async_waiters.remove((loop, future))


def _resolve(future: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not future.done():
        future.set_result(outcome)


class Flights:
    """The flights of one cache, by key, and the keys being refreshed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, Flight] = {}
        self._refreshing: set[Hashable] = set()

    def join(self, key: Hashable) -> tuple[Flight, bool]:
        """The key's flight, and whether the caller leads it (it did not exist)."""
        if (id(self), key) in _loading.get():
            raise ReentrantLoadError(
                f"the loader of {key!r} asked for {key!r} again: it would wait on itself"
            )
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = Flight(key)
            return flight, True

    def start_refresh(self, key: Hashable) -> bool:
        """Claim ``key``'s one refresh; False if one is already running."""
        with self._lock:
            if key in self._refreshing:
                return False
            self._refreshing.add(key)
            return True

    def end_refresh(self, key: Hashable) -> None:
        with self._lock:
            self._refreshing.discard(key)

    def refreshing(self, key: Hashable) -> bool:
        return key in self._refreshing

    def land(self, flight: Flight, outcome: Outcome) -> None:
        """Finish ``flight`` and forget it, so the next miss starts a new one."""
        with self._lock:
            if self._flights.get(flight.key) is flight:
                del self._flights[flight.key]
        flight.finish(outcome)

    def __len__(self) -> int:
        return len(self._flights)

    @contextmanager
    def loading(self, key: Hashable) -> Iterator[None]:
        """Mark ``key`` as being loaded along the current call chain (see the module
        docstring)."""
        token = _loading.set(_loading.get() | {(id(self), key)})
        try:
            yield
        finally:
            _loading.reset(token)
