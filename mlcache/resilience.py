"""Keeping a tier failure from becoming an outage: retries with backoff, circuit breakers, a
per-tier guard, and a bulkhead for loads.

Each piece is a small object with no I/O of its own, testable without sleeping: backoffs
compute delays, a ``Retry`` yields them, a ``CircuitBreaker`` decides on an injected clock,
and ``Guard`` ties them to one tier's operations with a sync and an async face that differ only
in how they call and sleep.

Circuit breaker (Nygard, *Release It!*): **closed** (calls go through) -> **open** after
``failures`` failures within ``window`` seconds (calls fail at once, costing nothing) ->
**half-open** after ``cooldown`` seconds (one probe call goes through) -> closed if it succeeds,
open again (for another cooldown) if it fails. A probe that ends without a verdict (cancelled,
interrupted) gives its turn back at once; one that has not reported after another ``cooldown``
(hung, or its caller never told) is presumed lost, and the next call becomes the probe.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import Any

from ._logging import logger
from .errors import ConfigurationError, TierError, TierTimeout
from .stats import Counters, Histogram

__all__ = [
    "Bulkhead",
    "CircuitBreaker",
    "ExponentialBackoff",
    "Guard",
    "NoBackoff",
    "Retry",
    "TierUnavailable",
]

_log = logger("resilience")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"
# Taking a lease is not idempotent: after a lost reply, a retry would find our own lease taken.
_NOT_RETRIED = frozenset({"lease_acquire", "lease_wait"})


class TierUnavailable(TierError):
    """The tier's circuit breaker is open: the operation was not attempted."""


class NoBackoff:
    """Retry at once."""

    def delay(self, attempt: int) -> float:
        return 0.0


class ExponentialBackoff:
    """``base * 2**attempt`` seconds, at most ``cap``, with full jitter (AWS Architecture Blog,
    "Exponential Backoff And Jitter"): each delay is uniform in [0, that]."""

    def __init__(self, base: float = 0.005, cap: float = 0.1, rng: Callable[[], float] | None = None) -> None:
        if not (0 < base <= cap):
            raise ConfigurationError(f"backoff needs 0 < base <= cap, got base={base!r}, cap={cap!r}")
        self.base, self.cap = base, cap
        self._rng = rng or random.random

    def delay(self, attempt: int) -> float:
        return self._rng() * min(self.cap, self.base * 2**attempt)


class Retry:
    """Up to ``retries`` more attempts after a failure that ``retryable`` accepts, with
    ``backoff`` delays between them."""

    def __init__(
        self,
        retries: int = 1,
        backoff: ExponentialBackoff | NoBackoff | None = None,
        retryable: Callable[[BaseException], bool] | None = None,
    ) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigurationError(f"retries must be an integer >= 0, got {retries!r}")
        self.retries = retries
        self.backoff = backoff or ExponentialBackoff()
        self.retryable = retryable or _connection_error

    def delays(self, error: BaseException, attempt: int) -> float | None:
        """The delay before attempt ``attempt + 1`` after ``error``, or None: give up."""
        if attempt >= self.retries or not self.retryable(error):
            return None
        return self.backoff.delay(attempt)


def _connection_error(error: BaseException) -> bool:
    """Retry a refused or reset connection (a restarted server), never a timeout: a timeout
    already cost the whole budget of the operation."""
    return isinstance(error, ConnectionError) and not isinstance(error, TimeoutError) and not _is_timeout(error)


def _is_timeout(error: BaseException) -> bool:
    return isinstance(error, TimeoutError) or type(error).__name__ in ("TimeoutError", "Timeout")


class CircuitBreaker:
    """See the module docstring. ``clock`` returns monotonic seconds; ``on_change(old, new)``
    is told about every transition."""

    def __init__(
        self,
        failures: int = 5,
        window: float = 10.0,
        cooldown: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, str], None] | None = None,
    ) -> None:
        if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
            raise ConfigurationError(f"failures must be an integer >= 1, got {failures!r}")
        for name, value in (("window", window), ("cooldown", cooldown)):
            if not isinstance(value, (int, float)) or not value > 0:
                raise ConfigurationError(f"{name} must be a number of seconds > 0, got {value!r}")
        self.failures, self.window, self.cooldown = failures, float(window), float(cooldown)
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self.state = CLOSED
        self._recent: deque[float] = deque()  # times of recent failures, while closed
        self._opened_at = 0.0
        self._probing = False
        self._probe_at = 0.0  # when the current probe went out
        self.transitions = 0

    def allow(self) -> bool:
        """Whether a call may go through now (in half-open: the one probe). A call let through
        must be reported: ``success()``, ``failure()`` or ``abandon()``."""
        if self.state == CLOSED:
            return True
        with self._lock:
            now = self._clock()
            if self.state == OPEN and self._cooled(self._opened_at, now):
                self._move(HALF_OPEN)
            if self.state == HALF_OPEN and (not self._probing or self._cooled(self._probe_at, now)):
                self._probing, self._probe_at = True, now
                return True
            return self.state == CLOSED

    def _cooled(self, since: float, now: float) -> bool:
        """Whether a cooldown has passed since ``since``. A clock that reads earlier than
        ``since`` went back (an injected wall clock): how long it has been is unknown, so a
        breaker does not stay open (or wait on its probe) until the clock catches up."""
        return not 0 <= now - since < self.cooldown

    def success(self) -> None:
        if self.state == CLOSED and not self._recent:
            return
        with self._lock:
            self._recent.clear()
            if self.state != CLOSED:
                self._probing = False
                self._move(CLOSED)

    def abandon(self) -> None:
        """A call let through ended without a verdict on the tier (cancelled, interrupted): it
        counts as neither success nor failure, and a half-open breaker takes a new probe at
        once rather than wait for the one that will never report."""
        with self._lock:
            # Calls are not told apart: a non-probe call abandoned while half-open frees the
            # turn too, which costs at most one extra probe.
            self._probing = False

    def failure(self) -> None:
        with self._lock:
            now = self._clock()  # read under the lock: failures are recorded in time order
            if self.state == HALF_OPEN:
                self._probing = False
                self._opened_at = now
                self._move(OPEN)
                return
            if self.state == OPEN:
                return
            recent = self._recent
            recent.append(now)
            # (A failure stamped after now is from before the clock went back: not recent either.)
            while recent and not 0 <= now - recent[0] <= self.window:
                recent.popleft()
            if len(recent) >= self.failures:
                recent.clear()
                self._opened_at = now
                self._move(OPEN)

    def _move(self, state: str) -> None:
        old, self.state = self.state, state
        self.transitions += 1
        if self._on_change is not None:
            self._on_change(old, state)


class Guard:
    """One tier's shield: every operation (a method of ``tier``, by name) is refused at once
    while the tier's breaker is open, timed, retried per the tier's ``retry``, and its outcome
    fed to the breaker and the tier's metrics.

    Timeouts are the tier's own (socket and lock timeouts, set so that one attempt cannot take
    longer); an error that is a timeout becomes ``TierTimeout``, counted apart.
    """

    def __init__(
        self,
        label: str,
        tier: Any,
        counters: Counters,
        latency: Histogram,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.label, self.tier = label, tier
        self.breaker: CircuitBreaker = tier.breaker
        self.retry: Retry = tier.retry
        self.counters, self.latency = counters, latency
        self._sleep = sleep
        self.breaker._on_change = self._changed

    def _changed(self, old: str, new: str) -> None:
        log = _log.warning if new == OPEN else _log.info
        log("%s: circuit breaker %s -> %s", self.label, old, new)

    def call(self, operation: str, *args: Any) -> Any:
        """``tier.<operation>(*args)``, guarded."""
        attempt = 0
        breaker = self.breaker
        while True:
            if breaker.state != CLOSED:  # (closed: allow() would say yes; every tier
                self._admit(operation)  # operation passes here, so spare it the calls)
            started = perf_counter()
            try:
                result = getattr(self.tier, operation)(*args)
            except Exception as exc:
                delay = self._failed(operation, exc, attempt, started)
                self._sleep(delay)
                attempt += 1
                continue
            except BaseException:  # interrupted: no verdict, but a probe must give its turn back
                breaker.abandon()
                raise
            self.latency.observe(perf_counter() - started)
            breaker.success()
            return result

    async def acall(self, operation: str, *args: Any) -> Any:
        """``await tier.a<operation>(*args)``, guarded."""
        attempt = 0
        breaker = self.breaker
        while True:
            if breaker.state != CLOSED:
                self._admit(operation)
            started = perf_counter()
            try:
                result = await getattr(self.tier, "a" + operation)(*args)
            except Exception as exc:
                delay = self._failed(operation, exc, attempt, started)
                await asyncio.sleep(delay)
                attempt += 1
                continue
            except BaseException:  # cancelled: as in call()
                breaker.abandon()
                raise
            self.latency.observe(perf_counter() - started)
            breaker.success()
            return result

    def _admit(self, operation: str) -> None:
        if not self.breaker.allow():
            self.counters.inc("skips")
            raise TierUnavailable(self.label, f"{operation} not attempted: circuit breaker open")

    def _failed(self, operation: str, exc: Exception, attempt: int, started: float) -> float:
        """Record a failed attempt; return the delay before the next one, or raise."""
        self.latency.observe(perf_counter() - started)
        timeout = _is_timeout(exc)
        self.counters.inc("timeouts" if timeout else "failures")
        self.breaker.failure()
        delay = None if operation in _NOT_RETRIED else self.retry.delays(exc, attempt)
        if delay is None or self.breaker.state != CLOSED:
            if timeout:
                raise TierTimeout(self.label, f"{operation} timed out: {exc!r}") from exc
            raise exc
        self.counters.inc("retries")
        return delay


class Bulkhead:
    """At most ``limit`` loads at once in one cache (resource isolation: a slow backend cannot
    take every thread and task with it).

    Waiters, threads or tasks, queue in turn. A released slot passes straight to the first
    waiter, which owns it from then on, so no wake-up is lost: a waiter whose timeout comes as
    its slot does takes the slot, and one cancelled or interrupted hands it on.
    """

    def __init__(self, limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"max_loads must be an integer >= 1, got {limit!r}")
        self.limit = limit
        self.active = 0  # slots taken, including those handed to a waiter not yet awake
        self._lock = threading.Lock()
        # threading.Event, or (loop, future); while any waits, every slot is taken
        self._waiters: deque[Any] = deque()

    def try_acquire(self) -> bool:
        with self._lock:
            if self.active < self.limit:
                self.active += 1
                return True
            return False

    def acquire(self, timeout: float) -> bool:
        """Take a slot, waiting at most ``timeout`` seconds; False if none came free."""
        with self._lock:
            if self.active < self.limit:
                self.active += 1
                return True
            event = threading.Event()
            self._waiters.append(event)
        try:
            event.wait(timeout)
        except BaseException:
            self._abandon(event)
            raise
        return self._withdraw(event)

    async def aacquire(self, timeout: float) -> bool:
        """Async ``acquire``."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self.active < self.limit:
                self.active += 1
                return True
            future: asyncio.Future[None] = loop.create_future()
            waiter = (loop, future)
            self._waiters.append(waiter)
        timer = loop.call_later(timeout, _wake, future)
        try:
            await future
        except BaseException:  # cancelled
            self._abandon(waiter)
            raise
        finally:
            timer.cancel()
        return self._withdraw(waiter)

    def release(self) -> None:
        """Give a slot back: to the first waiter if any, else to the pool."""
        while True:
            with self._lock:
                if not self._waiters:
                    self.active -= 1
                    return
                waiter = self._waiters.popleft()  # the slot is the waiter's now
            if isinstance(waiter, threading.Event):
                waiter.set()
                return
            loop, future = waiter
            try:
                loop.call_soon_threadsafe(_wake, future)
                return
            except RuntimeError:  # its loop is closed: nobody waits there; try the next one
                continue

    def _withdraw(self, waiter: Any) -> bool:
        """Leave the queue: True if a slot was handed to ``waiter`` meanwhile (it owns it)."""
        with self._lock:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
                return False
            return True

    def _abandon(self, waiter: Any) -> None:
        """``waiter`` gives up for good: a slot handed to it goes on to the next one."""
        if self._withdraw(waiter):
            self.release()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
