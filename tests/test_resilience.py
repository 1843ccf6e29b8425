"""Backoff, retries, circuit breakers, the tier guard and the bulkhead, without sleeping."""

from __future__ import annotations

import asyncio
import threading
import time
import types

import pytest

from conftest import HeldLoad
from mlcache import BulkheadFull, Cache, ConfigurationError, DiskTier, MemoryTier, TierTimeout
from mlcache.resilience import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Bulkhead,
    CircuitBreaker,
    ExponentialBackoff,
    Guard,
    NoBackoff,
    Retry,
    TierUnavailable,
)
from mlcache.stats import Counters, Histogram


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_exponential_backoff_is_capped_and_jittered():
    backoff = ExponentialBackoff(base=0.01, cap=0.08, rng=lambda: 1.0)
    assert [backoff.delay(a) for a in range(6)] == [0.01, 0.02, 0.04, 0.08, 0.08, 0.08]
    assert ExponentialBackoff(0.01, 0.08, rng=lambda: 0.5).delay(2) == 0.02
    assert NoBackoff().delay(7) == 0.0
    with pytest.raises(ConfigurationError):
        ExponentialBackoff(base=1, cap=0.5)


def test_retry_only_refused_connections_and_only_so_often():
    retry = Retry(2, ExponentialBackoff(0.01, 1, rng=lambda: 1.0))
    refused = ConnectionRefusedError()
    assert retry.delays(refused, 0) == 0.01 and retry.delays(refused, 1) == 0.02
    assert retry.delays(refused, 2) is None
    assert retry.delays(TimeoutError(), 0) is None  # a timeout already spent the budget
    assert retry.delays(ValueError(), 0) is None
    with pytest.raises(ConfigurationError):
        Retry(-1)


def test_breaker_opens_after_failures_within_the_window():
    clock, changes = Clock(), []
    breaker = CircuitBreaker(failures=3, window=10, cooldown=5, clock=clock,
                             on_change=lambda a, b: changes.append((a, b)))  # fmt: skip
    breaker.failure()
    clock.now += 11  # the first failure leaves the window
    breaker.failure()
    breaker.failure()
    assert breaker.state == CLOSED and breaker.allow()
    breaker.failure()
    assert breaker.state == OPEN and not breaker.allow()
    assert changes == [(CLOSED, OPEN)]


def test_breaker_probes_after_cooldown_and_closes_on_success():
    clock = Clock()
    breaker = CircuitBreaker(failures=1, window=10, cooldown=5, clock=clock)
    breaker.failure()
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()  # the one probe
    assert breaker.state == HALF_OPEN
    assert not breaker.allow()  # others keep failing fast while it is out
    breaker.success()
    assert breaker.state == CLOSED and breaker.allow()
    assert breaker.transitions == 3


def test_failed_probe_reopens_for_another_cooldown():
    clock = Clock()
    breaker = CircuitBreaker(failures=1, window=10, cooldown=5, clock=clock)
    breaker.failure()
    clock.now += 5
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == OPEN
    clock.now += 4
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()


def open_then_cool(breaker, clock):
    """Open ``breaker`` (failures=1) and let its cooldown pass."""
    breaker.failure()
    clock.now += breaker.cooldown


def test_abandoned_probe_gives_its_turn_back():
    """#5: a probe that ends without a verdict (cancelled, interrupted) neither closes nor
    reopens the breaker, and the next call may probe at once."""
    clock = Clock()
    breaker = CircuitBreaker(failures=1, window=10, cooldown=5, clock=clock)
    open_then_cool(breaker, clock)
    assert breaker.allow() and not breaker.allow()
    breaker.abandon()
    assert breaker.state == HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # one new probe, not more
    breaker.success()
    assert breaker.state == CLOSED and breaker.transitions == 3


def test_a_probe_that_never_reports_is_replaced_after_a_cooldown():
    """#5: a probe that hangs (or whose caller never reports) does not keep the breaker
    half-open for ever."""
    clock = Clock()
    breaker = CircuitBreaker(failures=1, window=10, cooldown=5, clock=clock)
    open_then_cool(breaker, clock)
    assert breaker.allow()
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow() and not breaker.allow()
    assert breaker.state == HALF_OPEN


def test_failures_from_before_the_clock_went_back_are_not_recent():
    """A clock that steps back (an injected wall clock) does not make old failures count as
    recent until it catches up."""
    clock = Clock()
    breaker = CircuitBreaker(failures=2, window=10, cooldown=5, clock=clock)
    breaker.failure()
    clock.now -= 3600
    breaker.failure()
    assert breaker.state == CLOSED
    breaker.failure()
    assert breaker.state == OPEN


def test_breaker_does_not_stay_open_when_the_clock_goes_back():
    """Nor does it keep the breaker open, or its probe out, until the clock catches up: how
    long it has been is unknown, so the next call probes."""
    clock = Clock()
    breaker = CircuitBreaker(failures=1, window=10, cooldown=5, clock=clock)
    breaker.failure()
    clock.now -= 3600
    assert breaker.allow() and breaker.state == HALF_OPEN
    assert not breaker.allow()
    clock.now -= 3600
    assert breaker.allow() and not breaker.allow()


def test_success_resets_the_failure_count():
    breaker = CircuitBreaker(failures=2, window=10, cooldown=5, clock=Clock())
    breaker.failure()
    breaker.success()
    breaker.failure()
    assert breaker.state == CLOSED


class FakeTier:
    """A tier whose ``get`` fails as told (fault injection for unit tests only)."""

    def __init__(self, clock, *outcomes):
        self.breaker = CircuitBreaker(failures=2, window=10, cooldown=5, clock=clock)
        self.retry = Retry(1, NoBackoff())
        self.outcomes = list(outcomes)
        self.calls = 0

    def get(self, key):
        self.calls += 1
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def aget(self, key):
        return self.get(key)


def make_guard(tier):
    counters = Counters()
    return Guard("fake", tier, counters, Histogram(), sleep=lambda s: None), counters


def test_guard_retries_a_reset_connection_once():
    tier = FakeTier(Clock(), ConnectionResetError(), "value")
    guard, counters = make_guard(tier)
    assert guard.call("get", b"k") == "value"
    assert tier.calls == 2 and counters.snapshot()["retries"] == 1


def test_guard_turns_timeouts_into_tier_timeout_and_opens_the_breaker():
    clock = Clock()
    tier = FakeTier(clock, TimeoutError("slow"), TimeoutError("slow"))
    guard, counters = make_guard(tier)
    for _ in range(2):
        with pytest.raises(TierTimeout, match="fake: get timed out"):
            guard.call("get", b"k")
    assert tier.breaker.state == OPEN
    with pytest.raises(TierUnavailable, match="circuit breaker open"):
        guard.call("get", b"k")
    assert tier.calls == 2  # the open breaker cost nothing
    assert counters.snapshot() == {"timeouts": 2, "skips": 1}
    clock.now += 5
    assert guard.call("get", b"k") == "ok" and tier.breaker.state == CLOSED


def test_async_guard_shares_the_logic():
    tier = FakeTier(Clock(), ConnectionResetError(), "value")
    guard, counters = make_guard(tier)
    assert asyncio.run(guard.acall("get", b"k")) == "value"
    assert counters.snapshot()["retries"] == 1


def test_guard_gives_back_an_interrupted_probe():
    """#5: a probe interrupted by a BaseException (here KeyboardInterrupt) leaves the breaker
    half-open and ready for the next probe."""
    clock = Clock()
    tier = FakeTier(clock, TimeoutError("slow"), TimeoutError("slow"), KeyboardInterrupt())
    guard, _ = make_guard(tier)
    for _ in range(2):
        with pytest.raises(TierTimeout):
            guard.call("get", b"k")
    clock.now += 5
    with pytest.raises(KeyboardInterrupt):
        guard.call("get", b"k")
    assert tier.breaker.state == HALF_OPEN
    assert guard.call("get", b"k") == "ok" and tier.breaker.state == CLOSED


class HangingTier(FakeTier):
    """``aget`` fails as told, then hangs until cancelled."""

    def __init__(self, clock, *outcomes):
        super().__init__(clock, *outcomes)
        self.entered = asyncio.Event()

    async def aget(self, key):
        if self.outcomes:
            return self.get(key)
        self.calls += 1
        self.entered.set()
        await asyncio.Event().wait()


def test_async_guard_gives_back_a_cancelled_probe():
    """#5: a probe task cancelled by asyncio leaves the breaker half-open and ready for the
    next probe, which closes it."""
    clock = Clock()
    tier = HangingTier(clock, TimeoutError("slow"), TimeoutError("slow"))
    guard, _ = make_guard(tier)

    async def main():
        for _ in range(2):
            with pytest.raises(TierTimeout):
                await guard.acall("get", b"k")
        assert tier.breaker.state == OPEN
        clock.now += 5
        probe = asyncio.ensure_future(guard.acall("get", b"k"))
        await asyncio.wait_for(tier.entered.wait(), 5)
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(probe, 5)
        assert tier.breaker.state == HALF_OPEN
        tier.outcomes.append("back")  # the tier has recovered
        assert await asyncio.wait_for(guard.acall("get", b"k"), 5) == "back"
        assert tier.breaker.state == CLOSED

    asyncio.run(main())


def test_cache_aget_cancelled_during_a_probe_leaves_the_tier_usable(tmp_path):
    """#5 through the Cache: an aget cancelled while its L2 read is the breaker's probe; the
    next aget reads L2 again instead of skipping it for good."""
    clock = Clock()
    entered = asyncio.Event()

    class FlakyDisk(DiskTier):
        mode = "ok"

        async def aget(self, key):
            if self.mode == "down":
                raise ConnectionResetError("down")
            if self.mode == "hang":
                entered.set()
                await asyncio.Event().wait()
            return await super().aget(key)

    tier = FlakyDisk(str(tmp_path), retries=0,
                     breaker=CircuitBreaker(failures=1, window=10, cooldown=5, clock=clock))  # fmt: skip

    async def main():
        async with Cache(tier) as cache:
            await cache.aset("k", "v")
            tier.mode = "down"
            assert await cache.aget("k") is None  # skipped, and the breaker opens
            assert tier.breaker.state == OPEN
            clock.now += 5
            tier.mode = "hang"
            probe = asyncio.ensure_future(cache.aget("k"))
            await asyncio.wait_for(entered.wait(), 5)
            probe.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(probe, 5)
            tier.mode = "ok"
            assert await asyncio.wait_for(cache.aget("k"), 5) == "v"
            assert tier.breaker.state == CLOSED

    asyncio.run(main())


def test_lease_acquire_is_never_retried():
    tier = FakeTier(Clock(), ConnectionResetError(), "value")
    tier.lease_acquire = tier.get
    guard, _ = make_guard(tier)
    with pytest.raises(ConnectionResetError):
        guard.call("lease_acquire", b"k")


def test_bulkhead_threads_and_tasks():
    bulkhead = Bulkhead(2)
    assert bulkhead.try_acquire() and bulkhead.try_acquire() and not bulkhead.try_acquire()
    assert not bulkhead.acquire(0.01)
    threading.Timer(0.05, bulkhead.release).start()
    assert bulkhead.acquire(5)  # woken by the release

    async def main():
        task = asyncio.ensure_future(bulkhead.aacquire(5))
        await asyncio.sleep(0.02)
        assert not task.done()
        bulkhead.release()
        assert await task
        assert not await bulkhead.aacquire(0.01)

    asyncio.run(main())
    assert bulkhead.active == 2


@pytest.mark.parametrize("cancel", ["while queued", "as its slot comes"])
def test_bulkhead_cancelled_waiter_passes_its_slot_on(cancel):
    """#21: a waiting task cancelled before or just as a slot is handed to it does not swallow
    it: the next waiter proceeds at once, and the one after it on the next release."""

    async def main():
        bulkhead = Bulkhead(2)
        assert bulkhead.try_acquire() and bulkhead.try_acquire()
        waiters = [asyncio.ensure_future(bulkhead.aacquire(30)) for _ in range(3)]
        await asyncio.sleep(0)  # all three queue
        if cancel == "while queued":
            waiters[0].cancel()
            await asyncio.sleep(0)
            bulkhead.release()
        else:
            bulkhead.release()  # the slot is on its way to waiters[0] ...
            waiters[0].cancel()  # ... which is cancelled before it wakes
        assert await asyncio.wait_for(waiters[1], 5)
        assert not waiters[2].done()
        bulkhead.release()
        assert await asyncio.wait_for(waiters[2], 5)
        with pytest.raises(asyncio.CancelledError):
            await waiters[0]
        assert bulkhead.active == 2

    asyncio.run(main())


def test_bulkhead_interrupted_thread_passes_its_slot_on(monkeypatch):
    """#21, threads: a waiter interrupted (KeyboardInterrupt) as its slot comes passes it on."""
    import mlcache.resilience as resilience

    bulkhead = Bulkhead(1)
    assert bulkhead.try_acquire()

    class InterruptFirstWoken(threading.Event):
        interrupted = False

        def wait(self, timeout=None):
            woken = super().wait(timeout)
            if woken and not InterruptFirstWoken.interrupted:
                InterruptFirstWoken.interrupted = True
                raise KeyboardInterrupt
            return woken

    monkeypatch.setattr(resilience, "threading", types.SimpleNamespace(Event=InterruptFirstWoken))
    outcomes = {}

    def wait(name):
        try:
            outcomes[name] = bulkhead.acquire(30)
        except KeyboardInterrupt as exc:
            outcomes[name] = exc

    threads = [threading.Thread(target=wait, args=(name,), daemon=True) for name in ("first", "second")]
    for t in threads:
        t.start()
        deadline = time.monotonic() + 5
        while len(bulkhead._waiters) < threads.index(t) + 1:  # queued in this order
            assert time.monotonic() < deadline, "a waiter did not queue"
            time.sleep(0.001)
    bulkhead.release()
    for t in threads:
        t.join(5)
        assert not t.is_alive(), "a waiter stayed blocked although a slot was free"
    assert isinstance(outcomes["first"], KeyboardInterrupt) and outcomes["second"] is True
    assert bulkhead.active == 1


@pytest.mark.parametrize("policy", ["wait", "stale", "raise"])
def test_cache_bulkhead(policy):
    from mlcache.testing import FakeClock

    clock = FakeClock()
    cache = Cache(MemoryTier(100, timer=clock), max_loads=1, on_bulkhead=policy, lock_timeout=0.3,
                  timer=clock, ttl=10, stale_if_error=100)  # fmt: skip
    cache.set("other", "old")
    clock.advance(11)  # "other" is stale now
    holder = HeldLoad(cache, "k")
    try:
        started = time.monotonic()
        if policy == "stale":
            assert cache.lookup("other", lambda: "new") == ("old", "memory", True)
        else:
            with pytest.raises(BulkheadFull, match="1 loads already running"):
                cache.get_or_load("fresh-key", lambda: "new")
        waited = time.monotonic() - started
        assert (waited >= 0.25) == (policy == "wait")
    finally:
        holder.release()
    assert cache.get_or_load("fresh-key", lambda: "new") == "new"  # a slot is free again
    assert cache.stats()["bulkhead_rejections"] == 1
