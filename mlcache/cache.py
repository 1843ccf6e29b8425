"""The tiered Cache: one read/write algorithm over L1 (memory), L2 (disk) and L3 (Redis).

Read path: L1 -> L2 -> L3 -> (loader). A hit in a lower tier is copied up into the tiers above
it with the entry's absolute expiry, so it never lives longer up there than where it came from
(a tier's own ``ttl`` may only shorten it).

Write path: the value is encoded for every tier first (a value that cannot be encoded raises
``SerializationError`` before any tier changes), then written bottom-up: L3, L2, L1. Deletes go
bottom-up too. Bottom-up means an upper tier never holds a value that its lower tiers have
already lost, and a reader in another process that misses in L2 finds the new state in L3.

Single-flight (``get_or_load``): a missing key is loaded once.
  1. In the process, callers of one key share a ``Flight`` (``mlcache.flight``): one leads,
     the others wait to be woken with its result or exception (at most ``lock_timeout``).
  2. Across processes and hosts, the leader takes the key's *lease* in the lowest tier that
     offers one (Redis; else the disk, for the processes of one host; if that tier fails, the
     next; else the in-process flight alone). Another process's leader that finds the lease
     taken waits until the holder's write wakes it (Redis: XREAD), then re-reads. A dead
     holder's lease expires after ``lease_ttl`` and one waiter takes over; a live holder's
     lease is renewed while its load runs (``mlcache._leases``).
  3. Having the lease, the leader re-reads the tiers (someone may just have filled them), then
     loads and writes: tiers above the lease tier first, then a compare-and-set on the lease
     tier, then L1. A ``set`` or ``delete`` of the key meanwhile, in any process, took the
     lease away, so the compare-and-set fails: the loaded value (possibly older than that
     write) is returned to the callers but cached nowhere (memcache's leases, NSDI 2013), and
     what was written above the lease tier is deleted again.

Stale sets inside a process: a reader that read an old value from L2/L3 must not put it back
into L1 after a writer replaced or deleted it. Every write bumps a version of the key's stripe
(one of ``_STRIPES`` counters, so memory stays constant) before it touches any tier and again
after; a reader takes the version before its first lower-tier read and copies the value up
only if the version is unchanged, checked and written under the same lock as the writer's L1
step. A false sharing of stripes only skips a copy-up. A load is cached only if the version
did not change while it ran.

Freshness: probabilistic early refresh (XFetch, Vattani, Chierichetti & Lowenstein, VLDB 2015:
a fresh hit refreshes early with probability rising towards expiry, scaled by the entry's load
time and ``beta``); stale-while-revalidate (within ``stale_ttl`` after expiry, serve the old
value and refresh once, in the background); stale-if-error (within ``stale_if_error`` after
expiry, serve the old value when the loader fails).

Faults: a tier that raises is skipped (counted, logged at most every 30 s) and the call goes on
with the next tier or the loader, unless the tier was built with ``on_error="raise"``.
Bytes that are not a valid envelope for the key read as a miss (counted as ``corrupt``).

The sync and async faces share all of this: the paths are generators of I/O steps (see
``mlcache._drive``), driven by ``run`` or ``arun``.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from ._checks import check_choice, check_ttl
from ._drive import Op, Steps, arun, load_op, op
from ._impl import run
from ._leases import LeaseKeeper
from ._logging import RateLimitedLog, logger
from .entry import MISSING, NEVER, NULL, Entry
from .errors import (
    BulkheadFull, ConfigurationError, InvalidKeyError, LockTimeout, SerializationError, TierError,
)  # fmt: skip
from .decorators import cached
from .flight import ABANDONED, TIMED_OUT, Flight, Flights, Outcome
from .keys import SEP, parse_plain
from .resilience import Bulkhead, Guard, TierUnavailable
from .stats import Counters, Histogram
from .tiers.base import RemoteTier, physical_key

__all__ = ["Cache", "Lookup"]

_STRIPES = 1024
_TIER_COUNTERS = ("hits", "null_hits", "stale_served", "misses", "sets", "deletes", "errors",
                  "timeouts", "skips", "retries", "failures", "dropped_writes", "corrupt",
                  "oversize", "unencodable", "suspect")  # fmt: skip
_WRITES = {"set", "set_many", "fill", "fill_many", "delete", "delete_many", "clear", "set_under_lease"}
_CACHE_COUNTERS = (
    "null_hits", "loads", "load_errors", "uncached_loads", "waits", "lease_waits",
    "lock_timeouts", "stale_served", "early_refreshes", "background_refreshes",
    "bulkhead_rejections",
)  # fmt: skip
_log = logger("cache")
_FAILED = object()  # a lease tier failed: try the next one
_UNLEASED = object()  # waited too long for another process's lease: load without one


def _key(key: Any) -> str:
    """The canonical form of a key: ``str``; bytes are decoded (UTF-8, surrogateescape), so
    ``b"a"`` and ``"a"`` name the same entry in every tier."""
    if type(key) is str:
        return key
    if isinstance(key, str):
        return str(key)
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key).decode("utf-8", "surrogateescape")
    raise InvalidKeyError(f"cache keys must be str or bytes, got {type(key).__name__}")


def _is_memory_tier(tier: Any) -> bool:
    return all(hasattr(tier, m) for m in ("get", "get_entry", "set_entry", "delete", "clear"))


class Lookup(NamedTuple):
    """How one ``lookup`` was served: ``source`` is the tier that hit (``"memory"``,
    ``"disk"``, ``"redis"``), ``"load"`` (this call ran the loader), ``"wait"`` (another
    caller's load) or ``"miss"`` (nothing cached, no loader); ``stale``: the value is past its
    TTL (served while revalidating, or because the loader failed)."""

    value: Any
    source: str
    stale: bool = False


class _Remote:
    """A remote tier as the Cache sees it: the tier, its label, its metrics, and its operations
    behind its guard (breaker, retries; see ``mlcache.resilience``)."""

    __slots__ = ("_acall", "_call", "counters", "guard", "label", "latency", "tier")

    def __init__(self, tier: RemoteTier, label: str) -> None:
        self.tier, self.label = tier, label
        self.counters = Counters(*_TIER_COUNTERS)
        self.latency = Histogram()
        self.guard = Guard(label, tier, self.counters, self.latency)
        self._call, self._acall = self.guard.call, self.guard.acall  # bound once: op() is hot

    def op(self, name: str, *args: Any) -> Op:
        """The I/O step that runs the tier's operation ``name`` through its guard."""
        return (self._call, self._acall, (name,) + args)


class _Load(NamedTuple):
    """One call's loading options (the cache's defaults, overridden per call)."""

    loader: Callable[[], Any]
    ttl: float | None
    null_ttl: float | None
    stale_ttl: float
    stale_if_error: float


class Cache:
    """A multi-level cache over ``tiers``: optionally a ``MemoryTier`` first (L1), then remote
    tiers (``DiskTier``, ``RedisTier``) in the order they are read.

    Lifetimes: ``ttl`` (seconds; None: no expiry) of a value when a call gives none;
    ``null_ttl`` of a cached None (a loader's "no such thing"); ``stale_ttl`` after expiry
    during which ``get_or_load`` serves the old value while one background load refreshes it;
    ``stale_if_error`` after expiry during which it serves the old value if the loader fails.
    ``beta`` scales probabilistic early refresh (0 turns it off).

    Single-flight: a caller waits at most ``lock_timeout`` seconds for another caller's load,
    then, by ``on_lock_timeout``, loads itself (``"load"``), serves a stale value if there is
    one (``"stale"``, else loads), or raises ``LockTimeout`` (``"raise"``). A cross-process
    lease lasts ``lease_ttl`` seconds (renewed while its load runs): the longest a dead loader
    can hold others up. Keep it below ``lock_timeout``, so that one waiter takes over a dead
    holder's lease before the others' waits time out.

    Bulkhead: ``max_loads`` bounds the loads running at once in this cache (None: no bound);
    a load that finds them all taken waits for one up to ``lock_timeout`` (``on_bulkhead=
    "wait"``), or at once serves a stale value if there is one (``"stale"``) or raises
    ``BulkheadFull`` (``"raise"``, and ``"stale"`` without one, and ``"wait"`` when it times out).

    Invalidation: with a Redis tier and something above it (L1, or an L2 of this host),
    writes are published to the other processes, which drop their copies (see
    ``mlcache.invalidation``); ``invalidation=False`` turns that off.

    ``secret`` signs what remote tiers store (see ``mlcache.codecs``). ``timer`` returns
    wall-clock seconds and ``random`` floats in [0, 1) (inject both in tests; give the timer to
    the MemoryTier too).
    """

    def __init__(
        self,
        *tiers: Any,
        ttl: float | None = 300.0,
        null_ttl: float = 30.0,
        stale_ttl: float = 0.0,
        stale_if_error: float = 0.0,
        beta: float = 1.0,
        lock_timeout: float = 10.0,
        on_lock_timeout: str = "load",
        lease_ttl: float = 5.0,
        max_loads: int | None = None,
        on_bulkhead: str = "wait",
        invalidation: bool | None = None,
        secret: bytes | str | None = None,
        timer: Callable[[], float] | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        if not tiers:
            raise ConfigurationError("Cache needs at least one tier")
        self.ttl = check_ttl("ttl", ttl)
        self.null_ttl = check_ttl("null_ttl", null_ttl, allow_none=False)
        self.stale_ttl = _seconds("stale_ttl", stale_ttl)
        self.stale_if_error = _seconds("stale_if_error", stale_if_error)
        self.beta = _seconds("beta", beta)
        self.lock_timeout = check_ttl("lock_timeout", lock_timeout, allow_none=False)
        self.on_lock_timeout = check_choice("on_lock_timeout", on_lock_timeout, ("load", "stale", "raise"))
        self.lease_ttl = check_ttl("lease_ttl", lease_ttl, allow_none=False)
        self._bulkhead = None if max_loads is None else Bulkhead(max_loads)
        self.on_bulkhead = check_choice("on_bulkhead", on_bulkhead, ("wait", "stale", "raise"))
        self._linger = max(self.stale_ttl, self.stale_if_error)  # how long past expiry to keep
        self._memory: Any = None
        self._remote: list[_Remote] = []
        for position, tier in enumerate(tiers):
            if isinstance(tier, RemoteTier):
                label = tier.name
                count = sum(r.tier.name == tier.name for r in self._remote)
                self._remote.append(_Remote(tier, label if not count else f"{label}{count + 1}"))
            elif _is_memory_tier(tier):
                if position != 0:
                    raise ConfigurationError("a MemoryTier must be the first tier (L1)")
                self._memory = tier
            else:
                raise ConfigurationError(f"not a cache tier: {type(tier).__name__}")
        for remote in self._remote:
            remote.tier.bind(secret)
        # Leases live in the lowest tier that offers them; if it fails, the next one up.
        self._lease_tiers = [r for r in reversed(self._remote) if r.tier.supports_leases]
        self.tiers = tiers
        self._timer: Callable[[], float] = time.time if timer is None else timer
        self._random: Callable[[], float] = _random_source() if random is None else random
        self._lock = threading.Lock()  # stripe versions and every L1 write guarded by them
        self._stripes = [0] * _STRIPES
        self._epoch = 0
        self._flights = Flights()
        self._keeper = LeaseKeeper(self.lease_ttl)
        self._plain: dict[str, tuple[str, int]] = {}  # see _l1_key
        self._counters = Counters(*_CACHE_COUNTERS)
        # L1's counters beyond the tier's own (hits, misses, ...); L1 has no errors: always 0
        self._l1_counters = Counters("null_hits", "stale_served", "sets", "deletes", "errors")
        self._tier_counters = {"memory": self._l1_counters, **{r.label: r.counters for r in self._remote}}
        self._load_time = Histogram()
        self._warn = RateLimitedLog(_log)
        self._refresher: ThreadPoolExecutor | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        _caches.add(self)
        self._host_local = [r for r in self._remote if r.tier.host_local]
        self._l2_cutoff = -math.inf  # host-local entries written before it are suspect
        self._bus = self._make_bus(invalidation)
        if self._bus is not None:
            self._bus.start()

    # -- the public faces ---------------------------------------------------------------------

    def get(self, key: str | bytes, default: Any = None) -> Any:
        """The cached value of ``key`` (None for a cached "not found"), else ``default``."""
        key = _key(key)
        value = self._l1_value(key)
        if value is not MISSING:
            return value
        entry = run(self._find(key))[0]
        return default if entry is None else self._value(entry)

    async def aget(self, key: str | bytes, default: Any = None) -> Any:
        """Async ``get``."""
        key = _key(key)
        value = self._l1_value(key)
        if value is not MISSING:
            return value
        entry = (await arun(self._find(key)))[0]
        return default if entry is None else self._value(entry)

    def set(self, key: str | bytes, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` in every tier for ``ttl`` seconds (default: the cache's ``ttl``;
        for ``None``, a cached "not found", ``null_ttl``). Takes away any load's lease."""
        run(self._write(_key(key), value, ttl))

    async def aset(self, key: str | bytes, value: Any, ttl: float | None = None) -> None:
        """Async ``set``."""
        await arun(self._write(_key(key), value, ttl))

    def delete(self, key: str | bytes) -> bool:
        """Remove ``key`` from every tier; True if any tier held it. A load of the key in flight
        anywhere will not cache its result."""
        return run(self._delete(_key(key)))

    async def adelete(self, key: str | bytes) -> bool:
        """Async ``delete``."""
        return await arun(self._delete(_key(key)))

    def get_or_load(
        self,
        key: str | bytes,
        loader: Callable[[], Any],
        ttl: float | None = None,
        null_ttl: float | None = None,
        *,
        stale_ttl: float | None = None,
        stale_if_error: float | None = None,
    ) -> Any:
        """The cached value of ``key``; on a miss, ``loader()``'s result, loaded once however
        many callers ask (see the module docstring) and cached for ``ttl`` (a ``None`` result
        as "not found", for ``null_ttl``). The loader's exceptions reach every caller that
        waited for it and nothing is cached."""
        key = _key(key)
        value, l1 = self._l1_hit(key)
        if value is not MISSING:
            return value
        options = self._load(loader, ttl, null_ttl, stale_ttl, stale_if_error)
        return run(self._get_or_load(key, options, l1)).value

    async def aget_or_load(
        self,
        key: str | bytes,
        loader: Callable[[], Any],
        ttl: float | None = None,
        null_ttl: float | None = None,
        *,
        stale_ttl: float | None = None,
        stale_if_error: float | None = None,
    ) -> Any:
        """Async ``get_or_load``; ``loader`` may be sync or return an awaitable."""
        key = _key(key)
        value, l1 = self._l1_hit(key)
        if value is not MISSING:
            return value
        options = self._load(loader, ttl, null_ttl, stale_ttl, stale_if_error)
        return (await arun(self._get_or_load(key, options, l1))).value

    def lookup(
        self,
        key: str | bytes,
        loader: Callable[[], Any] | None = None,
        ttl: float | None = None,
        null_ttl: float | None = None,
        *,
        stale_ttl: float | None = None,
        stale_if_error: float | None = None,
    ) -> Lookup:
        """``get_or_load`` (or, without a loader, ``get``) that also says how the value was
        served: which tier hit, whether it was loaded or waited for, whether it is stale."""
        key = _key(key)
        if loader is None:
            return run(self._peek(key))
        options = self._load(loader, ttl, null_ttl, stale_ttl, stale_if_error)
        return run(self._get_or_load(key, options, MISSING))

    async def alookup(
        self,
        key: str | bytes,
        loader: Callable[[], Any] | None = None,
        ttl: float | None = None,
        null_ttl: float | None = None,
        *,
        stale_ttl: float | None = None,
        stale_if_error: float | None = None,
    ) -> Lookup:
        """Async ``lookup``."""
        key = _key(key)
        if loader is None:
            return await arun(self._peek(key))
        options = self._load(loader, ttl, null_ttl, stale_ttl, stale_if_error)
        return await arun(self._get_or_load(key, options, MISSING))

    def get_many(self, keys: Iterable[str | bytes]) -> dict[Any, Any]:
        """The cached values of ``keys``, as a dict of the keys found (each remote tier is read
        in one batch)."""
        return run(self._read_many(keys))

    async def aget_many(self, keys: Iterable[str | bytes]) -> dict[Any, Any]:
        """Async ``get_many``."""
        return await arun(self._read_many(keys))

    def set_many(self, mapping: Mapping[str | bytes, Any], ttl: float | None = None) -> None:
        """``set`` every item, each remote tier in one batch."""
        run(self._write_many(mapping, ttl))

    async def aset_many(self, mapping: Mapping[str | bytes, Any], ttl: float | None = None) -> None:
        """Async ``set_many``."""
        await arun(self._write_many(mapping, ttl))

    def clear(self) -> None:
        """Remove every entry from every tier (Redis: only this tier's prefix)."""
        run(self._clear())

    async def aclear(self) -> None:
        """Async ``clear``."""
        await arun(self._clear())

    def close(self) -> None:
        """Release the tiers' connections and files, and the refresh threads. Idempotent."""
        if self._begin_close():
            self._stop_background()
            for remote in self._remote:
                remote.tier.close()

    async def aclose(self) -> None:
        """Async ``close``: also waits for background refreshes started on this loop (the
        blocking steps run on a thread, not on the event loop)."""
        if self._begin_close():
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.to_thread(self._stop_background)
            for remote in self._remote:
                await remote.tier.aclose()

    def _begin_close(self) -> bool:
        """Mark the cache closed (no refresh starts from now on); False if it already was."""
        with self._lock:
            closed, self._closed = self._closed, True
        return not closed

    def _forked(self) -> None:
        """In a forked child: the parent's threads (loads in flight, refreshes, the lease
        keeper, the bus) do not exist here; start those afresh. The tiers need nothing:
        redis-py and diskcache open new connections in a new process by themselves."""
        self._lock = threading.Lock()
        self._flights = Flights()
        self._keeper = LeaseKeeper(self.lease_ttl)
        self._refresher = None
        self._tasks = set()
        if self._bus is not None:
            self._bus.after_fork_in_child()

    def _stop_background(self) -> None:
        with self._lock:
            refresher, self._refresher = self._refresher, None
        if refresher is not None:
            refresher.shutdown(wait=True)
        self._keeper.close()
        if self._bus is not None:
            self._bus.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Cache:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def stats(self) -> dict[str, Any]:
        """Counters as plain data: per tier (hits, misses, sets, deletes, errors, ...; L1's sets
        and deletes are this cache's writes and removals, invalidations included) and for
        the cache (loads, load errors, null hits, waits for another's load, stale values
        served, early and background refreshes, loads not cached after a race, ...)."""
        tiers: dict[str, Any] = {}
        if self._memory is not None:  # the tier's own counters, and this cache's writes to it
            tiers["memory"] = {**self._memory.stats(), **self._l1_counters.snapshot()}
        for remote in self._remote:
            tiers[remote.label] = {
                **remote.counters.snapshot(),
                "breaker": remote.tier.breaker.state,
                "breaker_transitions": remote.tier.breaker.transitions,
                "latency": remote.latency.snapshot(),
            }
        return {
            "tiers": tiers,
            "flights": len(self._flights),
            "load_time": self._load_time.snapshot(),
            **({"bus": self._bus.stats()} if self._bus is not None else {}),
            **self._counters.snapshot(),
        }

    def __repr__(self) -> str:
        tiers = ", ".join(repr(t) for t in self.tiers)
        return f"Cache({tiers}, ttl={self.ttl!r}, null_ttl={self.null_ttl!r})"

    # -- values and lifetimes -----------------------------------------------------------------

    def _value(self, entry: Entry) -> Any:
        if entry.value is NULL:
            self._counters.inc("null_hits")
            return None
        return entry.value

    def _l1_value(self, key: str) -> Any:
        """L1's fresh value for ``key`` (None for a cached null), or MISSING."""
        if self._memory is None:
            return MISSING
        value = self._memory.get(self._l1_key(key) if self._plain else key, MISSING)
        if value is NULL:
            self._counters.inc("null_hits")
            self._l1_counters.inc("null_hits")
            return None
        return value

    def _l1_hit(self, key: str) -> tuple[Any, Entry | None]:
        """For ``get_or_load``: (L1's value, None) when it may be served as it is; else
        (MISSING, L1's entry: stale, or picked for an early refresh, or None)."""
        if self._memory is None:
            return MISSING, None
        entry = self._memory.get_entry(self._l1_key(key) if self._plain else key)
        if entry is None or not self._serve_fresh(entry, self._timer()):
            return MISSING, entry
        if entry.value is NULL:
            self._l1_counters.inc("null_hits")
        return self._value(entry), None

    def _serve_fresh(self, entry: Entry, now: float) -> bool:
        """Whether a hit on ``entry`` is served as it is: it is fresh and XFetch does not pick
        this call to refresh it early (``now - load_time * beta * ln(u) >= expires_at``)."""
        if entry.expires_at <= now:
            return False
        if self.beta == 0.0 or entry.load_time <= 0.0 or entry.expires_at == NEVER:
            return True
        gap = -entry.load_time * self.beta * math.log(1.0 - self._random())
        return now + gap < entry.expires_at

    def _entry(
        self, value: Any, life: float | None, now: float, load_time: float = 0.0, linger: float = 0.0
    ) -> Entry:
        expires = NEVER if life is None else now + life
        return Entry(NULL if value is None else value, expires, expires + linger, load_time)

    def _life(self, value: Any, ttl: float | None, null_ttl: float | None) -> float | None:
        """Seconds ``value`` may be cached: ``ttl`` (default: the cache's), or for a null,
        ``null_ttl`` (default: the cache's)."""
        if value is None or value is NULL:
            return self.null_ttl if null_ttl is None else check_ttl("null_ttl", null_ttl)
        return self.ttl if ttl is None else check_ttl("ttl", ttl)

    def _load(
        self,
        loader: Callable[[], Any],
        ttl: float | None,
        null_ttl: float | None,
        stale_ttl: float | None,
        stale_if_error: float | None,
    ) -> _Load:
        if not callable(loader):
            raise ConfigurationError(f"loader must be callable, got {type(loader).__name__}")
        return _Load(
            loader,
            ttl if ttl is None else check_ttl("ttl", ttl),
            null_ttl if null_ttl is None else check_ttl("null_ttl", null_ttl),
            self.stale_ttl if stale_ttl is None else _seconds("stale_ttl", stale_ttl),
            self.stale_if_error if stale_if_error is None else _seconds("stale_if_error", stale_if_error),
        )  # fmt: skip

    def _register_plain(self, namespace: str, arity: int) -> None:
        """A decorated function's hit path looks calls with ``arity`` plain arguments up in L1
        under ``(namespace, arguments)``; from now on L1 holds their entries there."""
        self._plain[namespace] = (namespace, arity)

    def _l1_key(self, key: str) -> Any:
        """The key L1 holds ``key``'s entry under: ``(namespace, arguments)`` for a decorated
        call with plain arguments (see ``mlcache.decorators``), else ``key`` itself. Every L1
        access goes through here, so a write or an invalidation by key string (``set``,
        ``delete``, another process's invalidation) reaches what the hit path reads."""
        namespace, sep, rest = key.partition(SEP)
        if sep:
            plain = self._plain.get(namespace)
            if plain is not None:
                values = parse_plain(rest, plain[1])
                if values is not None:
                    return plain[0], values[0] if plain[1] == 1 else values
        return key

    def cached(
        self,
        *,
        ttl: float | None = None,
        null_ttl: float | None = None,
        stale_ttl: float | None = None,
        stale_if_error: float | None = None,
        key: Callable[..., Any] | None = None,
        typed: bool = False,
        namespace: str | None = None,
        version: Any = None,
    ) -> Callable[[Callable[..., Any]], Any]:
        """Decorate a function to cache its results here: see ``mlcache.cached``."""
        return cached(self, ttl=ttl, null_ttl=null_ttl, stale_ttl=stale_ttl,
                      stale_if_error=stale_if_error, key=key, typed=typed,
                      namespace=namespace, version=version)  # fmt: skip

    # -- the invalidation bus (see mlcache.invalidation) ----------------------------------------

    def _make_bus(self, enabled: bool | None) -> Any:
        bus_remote = next((r for r in self._remote if hasattr(r.tier, "bus_publish")), None)
        self._bus_remote = bus_remote
        needed = self._memory is not None or bool(self._host_local)
        if bus_remote is None or enabled is False or (enabled is None and not needed):
            return None
        from .invalidation import InvalidationBus

        local = self._host_local[0].tier if self._host_local else None
        host = local.identity() if local is not None else secrets.token_hex(8).encode()
        return InvalidationBus(self, bus_remote, host, local)

    def _announce(self, keys: list[str], missed: bool) -> None:
        """Tell other processes ``keys`` changed (``missed``: the bus's tier missed the write)."""
        if self._bus is not None:
            self._bus.publish(keys, repair=missed)

    def _invalidate_local(self, keys: list[str], l2: bool) -> None:
        """Another process changed ``keys``: drop this host's L2 copies when the writer is on
        another host, then this process's L1 copies (bottom-up, as writes go: a read in
        between finds no old copy below to bring back up; the L1 step bumps the stripes, so a
        read already in flight does not copy an old value back either)."""
        if l2:
            pkeys = [physical_key(key) for key in keys]
            for remote in self._host_local:
                try:
                    remote.guard.call("delete_many", pkeys)
                except Exception as exc:  # counted by the guard; never fatal on the bus
                    self._warn.warning((remote.label, "bus"), "%s: invalidation failed: %r", remote.label, exc)
        for key in keys:
            self._l1_write(key, None, None)

    def _flush_local(self, l2: bool) -> None:
        """Every key may have changed: flush L1 (and, for news from another host, distrust
        what this host's L2 held)."""
        with self._lock:
            self._epoch += 1
            if self._memory is not None:
                self._memory.clear()
        if l2:
            self._suspect_l2()

    def _suspect_l2(self) -> None:
        """Entries that this host's L2 holds now may be stale: read them as misses."""
        self._l2_cutoff = self._timer()

    # -- stripe versions (stale-set protection inside the process) -----------------------------

    def _token(self, key: str) -> tuple[int, int]:
        return self._epoch, self._stripes[hash(key) % _STRIPES]

    def _bump(self, key: str) -> None:
        with self._lock:
            self._stripes[hash(key) % _STRIPES] += 1

    def _claim(self, key: str, token: tuple[int, int]) -> tuple[int, int] | None:
        """Begin writing a value loaded since ``token``: None if the key was written since
        (the load may be older than that write), else the token this write ends with."""
        with self._lock:
            if token != self._token(key):
                return None
            self._stripes[hash(key) % _STRIPES] += 1
            return self._token(key)

    def _l1_land(self, key: str, entry: Entry, mine: tuple[int, int]) -> bool:
        """A load's last step: put ``entry`` into L1 unless another write to the key began
        since ``_claim`` gave ``mine`` (that write's own last step decides L1); bump the
        stripe either way. True if no write began."""
        with self._lock:
            current = mine == self._token(key)
            if current and self._memory is not None:
                self._memory.set_entry(self._l1_key(key) if self._plain else key, entry)
                self._l1_counters.inc("sets")
            self._stripes[hash(key) % _STRIPES] += 1
            return current

    def _l1_write(self, key: str, entry: Entry | None, token: tuple[int, int] | None) -> bool:
        """Put ``entry`` into L1 (None: remove the key) if ``token`` is still current, and
        return whether L1 held the key before a removal. A writer's final step (token None)
        always writes, and bumps the stripe."""
        with self._lock:
            if token is not None and token != self._token(key):
                return False
            existed = False
            if self._memory is not None:
                l1_key = self._l1_key(key) if self._plain else key
                if entry is None:
                    existed = self._memory.delete(l1_key)
                    if existed:
                        self._l1_counters.inc("deletes")
                else:
                    self._memory.set_entry(l1_key, entry)
                    if token is None:  # (a copy-up is not a write, as in the other tiers)
                        self._l1_counters.inc("sets")
            if token is None:
                self._stripes[hash(key) % _STRIPES] += 1
            return existed

    # -- encoding and tier faults --------------------------------------------------------------

    def _encode(
        self, remote: _Remote, pkey: bytes, entry: Entry, now: float, strict: bool = False
    ) -> bytes | None:
        """The envelope for ``remote``, or None when it is over the tier's size limit or,
        unless ``strict`` (a caller's own write), when the tier's codec cannot encode it (a
        loaded value or a copy-up then skips that tier; counted as ``unencodable``)."""
        tier = remote.tier
        if tier.ttl is not None:
            cap = now + tier.ttl
            entry = Entry(entry.value, min(entry.expires_at, cap), min(entry.stale_until, cap),
                          entry.load_time)  # fmt: skip
        try:
            data = tier.format.pack(pkey, entry, now)
        except SerializationError as exc:
            if strict:
                raise
            remote.counters.inc("unencodable")
            self._warn.warning(
                (remote.label, "unencodable"), "%s: value not stored in this tier: %s", remote.label, exc
            )
            return None
        if tier.max_value_size is not None and len(data) > tier.max_value_size:
            remote.counters.inc("oversize")
            self._warn.warning(
                (remote.label, "oversize"),
                "%s: a %d-byte value is over max_value_size=%d; not stored in this tier",
                remote.label, len(data), tier.max_value_size,
            )  # fmt: skip
            return None
        return data

    def _decode(
        self, remote: _Remote, pkeys: Sequence[bytes], blobs: Sequence[bytes | None], now: float,
        stale: bool = False,
    ) -> list[Entry | None]:
        """The entry in each of ``blobs`` (read under ``pkeys``) if it is fresh (or, with
        ``stale``, still servable), else None (nothing stored, corrupt, foreign, suspect, or
        past its life). One call for a batch: the envelopes are checked in one compiled call,
        and this loop is all the Python a key costs."""  # fmt: skip
        cutoff = self._l2_cutoff if remote.tier.host_local else -math.inf
        entries: list[Entry | None] = []
        for got in remote.tier.format.unpack_many(pkeys, blobs):
            entry = None
            if type(got) is tuple:
                entry, written = got
                if written < cutoff:
                    remote.counters.inc("suspect")  # possibly changed elsewhere while we missed news
                    entry = None
                elif not (entry.stale_until if stale else entry.expires_at) > now:
                    entry = None
            elif got is not None:
                remote.counters.inc("corrupt")
                self._warn.warning(
                    (remote.label, "corrupt"), "%s: unreadable entry treated as a miss: %s",
                    remote.label, got,
                )  # fmt: skip
            entries.append(entry)
        return entries

    def _failed(self, remote: _Remote, operation: str, exc: Exception) -> None:
        """A tier operation raised (or its breaker is open): count it, log it (rate-limited),
        and skip the tier, unless the tier is in fail-fast mode (then ``TierError``). A write
        that did not happen is counted as dropped; no tier is ever written in part."""
        if operation in _WRITES:
            remote.counters.inc("dropped_writes")
        if isinstance(exc, TierUnavailable):  # counted as a skip by the guard
            if remote.tier.on_error == "raise":
                raise exc
            return
        remote.counters.inc("errors")
        if remote.tier.on_error == "raise":
            if isinstance(exc, TierError):
                raise exc
            raise TierError(remote.label, f"{operation} failed: {exc!r}") from exc
        self._warn.warning(
            (remote.label, "error"), "%s: %s failed, tier skipped: %r", remote.label, operation, exc
        )

    @staticmethod
    def _keep(entry: Entry, now: float) -> float | None:
        """Seconds a tier should keep ``entry``'s bytes before reaping them."""
        return None if entry.stale_until == NEVER else max(entry.stale_until - now, 0.001)

    # -- read path -----------------------------------------------------------------------------

    def _find(self, key: str, stale: Entry | None = None, want_stale: bool = False) -> Steps[tuple[Entry | None, str]]:
        """The first fresh entry of ``key`` in L2/L3 (copied up) and the tier it came from;
        failing that, with ``want_stale``, the first still-servable stale one (``stale``: one
        already found in L1), else (None, "miss")."""
        found: tuple[Entry | None, str] = (stale, "memory") if stale is not None else (None, "miss")
        if not self._remote:
            return found
        if self._memory is not None or len(self._remote) > 1:  # a hit is copied up
            token = self._token(key)
            since = time.time()  # (the host's clock, as tombstones use: not the Cache's timer)
        else:
            token = since = None
        pkey = physical_key(key)
        now = self._timer()
        for depth, remote in enumerate(self._remote):
            try:
                data = yield remote.op("get", pkey)
            except Exception as exc:
                self._failed(remote, "get", exc)
                continue
            entry = self._decode(remote, (pkey,), (data,), now, want_stale)[0]
            if entry is None or entry.expires_at <= now:
                remote.counters.inc("misses")
                if entry is not None and found[0] is None:
                    found = (entry, remote.label)
                continue
            remote.counters.inc("hits")
            if entry.value is NULL:
                remote.counters.inc("null_hits")
            if token is not None:
                yield from self._copy_up(key, pkey, entry, depth, token, now, since)
            return entry, remote.label
        return found

    def _peek(self, key: str) -> Steps[Lookup]:
        """``lookup`` without a loader."""
        value = self._l1_value(key)
        if value is not MISSING:
            return Lookup(value, "memory")
        entry, source = yield from self._find(key)
        return Lookup(None, "miss") if entry is None else Lookup(self._value(entry), source)

    def _copy_up(
        self, key: str, pkey: bytes, entry: Entry, depth: int, token: tuple[int, int], now: float,
        since: float,
    ) -> Steps[None]:
        """Backfill the tiers above ``depth`` (and L1) with ``entry``, read from a lower tier
        starting at ``since``, unless the key was written since: here (``token`` changed), or
        in another process (a tier above holds a value, or a delete's tombstone: ``fill``
        refuses)."""  # fmt: skip
        for remote in reversed(self._remote[:depth]):
            if token != self._token(key):
                return
            data = self._encode(remote, pkey, entry, now)
            if data is None:
                continue
            try:
                if not (yield remote.op("fill", pkey, data, self._keep(entry, now), since)):
                    return
            except Exception as exc:
                self._failed(remote, "fill", exc)
        self._l1_write(key, entry, token)

    def _read_many(self, keys: Iterable[str | bytes]) -> Steps[dict[Any, Any]]:
        originals = {}
        for original in keys:
            originals.setdefault(_key(original), original)
        found: dict[Any, Any] = {}
        if self._memory is None:
            missing = list(originals)
        else:
            missing = []
            for key, original in originals.items():
                value = self._l1_value(key)
                if value is MISSING:
                    missing.append(key)
                else:
                    found[original] = value
        if not missing or not self._remote:
            return found
        copies_up = self._memory is not None or len(self._remote) > 1
        tokens = {key: self._token(key) for key in missing} if copies_up else {}
        since = time.time()
        pkeys = dict(zip(missing, map(physical_key, missing)))
        now = self._timer()
        for depth, remote in enumerate(self._remote):
            if not missing:
                break
            batch = [pkeys[k] for k in missing]
            try:
                blobs = yield remote.op("get_many", batch)
            except Exception as exc:
                self._failed(remote, "get_many", exc)
                continue
            hits, still, nulls = [], [], 0
            for key, entry in zip(missing, self._decode(remote, batch, blobs, now), strict=True):
                if entry is None:
                    still.append(key)
                    continue
                hits.append((key, entry))
                value = entry.value
                if value is NULL:  # (_value, inline: this loop runs once per key)
                    value = None
                    nulls += 1
                found[originals[key]] = value
            remote.counters.inc("hits", len(hits))
            remote.counters.inc("misses", len(still))
            remote.counters.inc("null_hits", nulls)
            self._counters.inc("null_hits", nulls)
            if copies_up:
                yield from self._copy_up_many(hits, pkeys, depth, tokens, now, since)
            missing = still
        return found

    def _copy_up_many(
        self,
        hits: list[tuple[str, Entry]],
        pkeys: dict[str, bytes],
        depth: int,
        tokens: dict[str, tuple[int, int]],
        now: float,
        since: float,
    ) -> Steps[None]:
        """``_copy_up`` of many hits: one batch per tier (a batch does not say which keys
        ``fill`` refused, so when any was refused, L1 takes none of the batch)."""
        for remote in reversed(self._remote[:depth]):
            items = []
            for key, entry in hits:
                if tokens[key] == self._token(key):
                    data = self._encode(remote, pkeys[key], entry, now)
                    if data is not None:
                        items.append((pkeys[key], data, self._keep(entry, now)))
            if items:
                try:
                    if (yield remote.op("fill_many", items, since)) < len(items):
                        return
                except Exception as exc:
                    self._failed(remote, "fill_many", exc)
        for key, entry in hits:
            self._l1_write(key, entry, tokens[key])

    # -- write path ----------------------------------------------------------------------------

    def _write(self, key: str, value: Any, ttl: float | None) -> Steps[None]:
        now = self._timer()
        entry = self._entry(value, self._life(value, ttl, ttl), now, 0.0, self._linger)  # (k, None, ttl): ttl
        pkey = physical_key(key)
        blobs = [self._encode(r, pkey, entry, now, strict=True) for r in self._remote]  # may raise
        self._bump(key)
        missed = yield from self._store(self._remote, blobs, pkey, entry, now)
        self._l1_write(key, entry, None)
        self._announce([key], missed)

    def _store(
        self, remotes: list[_Remote], blobs: list[bytes | None], pkey: bytes, entry: Entry, now: float
    ) -> Steps[bool]:
        """Write ``entry``'s envelopes to ``remotes``, bottom-up (a None envelope: too big for
        that tier, whose old value is deleted instead); True if the bus's tier missed it."""
        missed = False
        for remote, data in zip(reversed(remotes), reversed(blobs), strict=True):
            try:
                if data is None:
                    yield remote.op("delete", pkey)
                else:
                    yield remote.op("set", pkey, data, self._keep(entry, now))
                    remote.counters.inc("sets")
            except Exception as exc:
                self._failed(remote, "set", exc)
                missed |= remote is self._bus_remote
        return missed

    def _write_many(self, mapping: Mapping[str | bytes, Any], ttl: float | None) -> Steps[None]:
        now = self._timer()
        entries = {}
        for original, value in mapping.items():
            entries[_key(original)] = self._entry(value, self._life(value, ttl, ttl), now, 0.0, self._linger)
        pkeys = {key: physical_key(key) for key in entries}
        batches = []
        for remote in self._remote:  # encode everything before anything changes
            items, too_big = [], []
            for key, entry in entries.items():
                data = self._encode(remote, pkeys[key], entry, now, strict=True)
                if data is None:
                    too_big.append(pkeys[key])
                else:
                    items.append((pkeys[key], data, self._keep(entry, now)))
            batches.append((items, too_big))
        for key in entries:
            self._bump(key)
        missed = False
        for remote, (items, too_big) in zip(reversed(self._remote), reversed(batches), strict=True):
            try:
                if too_big:
                    yield remote.op("delete_many", too_big)
                if items:
                    yield remote.op("set_many", items)
                    remote.counters.inc("sets", len(items))
            except Exception as exc:
                self._failed(remote, "set_many", exc)
                missed |= remote is self._bus_remote
        for key, entry in entries.items():
            self._l1_write(key, entry, None)
        self._announce(list(entries), missed)

    def _delete(self, key: str) -> Steps[bool]:
        pkey = physical_key(key)
        self._bump(key)
        existed = missed = False
        for remote in reversed(self._remote):
            try:
                removed = yield remote.op("delete", pkey)
            except Exception as exc:
                self._failed(remote, "delete", exc)
                missed |= remote is self._bus_remote
                continue
            if removed:
                remote.counters.inc("deletes")
                existed = True
        existed = self._l1_write(key, None, None) or existed
        self._announce([key], missed)
        return existed

    def _clear(self) -> Steps[None]:
        with self._lock:
            self._epoch += 1
        missed = False
        for remote in reversed(self._remote):
            try:
                yield remote.op("clear")
            except Exception as exc:
                self._failed(remote, "clear", exc)
                missed |= remote is self._bus_remote
        with self._lock:
            if self._memory is not None:
                self._memory.clear()
            self._epoch += 1
        if self._bus is not None:
            self._bus.publish_clear(repair=missed)

    # -- loading -------------------------------------------------------------------------------

    def _get_or_load(self, key: str, load: _Load, l1: Any) -> Steps[Lookup]:
        """See the module docstring. ``l1``: what the caller already found in L1 (an entry or
        None), or MISSING if it did not look. Past L1, one caller per key and process (the
        flight's leader) reads the lower tiers and loads; the others wait for its answer."""
        if l1 is MISSING:
            value, l1 = self._l1_hit(key)
            if value is not MISSING:
                return Lookup(value, "memory")
        while True:  # once more when the flight we waited for was abandoned
            token = self._token(key)
            if l1 is not None:
                now = self._timer()
                if l1.expires_at > now:  # picked for early refresh
                    refreshed = yield from self._refresh_now(key, load, l1, token)
                    return refreshed or Lookup(self._value(l1), "memory")
                if now < l1.expires_at + load.stale_ttl and self._flights.refreshing(key):
                    return self._serve_stale((l1, "memory"))  # while the refresh runs
            flight, leader = self._flights.join(key)
            if leader:
                return (yield from self._lead_flight(flight, key, load, token, l1))
            outcome = yield op(flight.wait, flight.await_, self.lock_timeout)
            if outcome is ABANDONED:
                value, l1 = self._l1_hit(key)
                if value is not MISSING:
                    return Lookup(value, "memory")
                continue
            fallback = self._fallback(l1, "memory", load)
            if outcome is TIMED_OUT:
                self._counters.inc("lock_timeouts")
                return (yield from self._after_timeout(key, load, token, fallback))
            if outcome.error is not None:
                if fallback is not None:
                    return self._serve_stale(fallback)
                raise outcome.error
            self._counters.inc("waits")
            if outcome.stale:
                self._counters.inc("stale_served")
            return Lookup(outcome.value, "wait", outcome.stale)

    def _fallback(self, entry: Entry | None, source: str, load: _Load) -> tuple[Entry, str] | None:
        """``entry`` if it may be served when the loader fails (stale-if-error), else None."""
        if entry is not None and self._timer() < entry.expires_at + load.stale_if_error:
            return entry, source
        return None

    def _lead_flight(
        self, flight: Flight, key: str, load: _Load, token: tuple[int, int], l1: Entry | None
    ) -> Steps[Lookup]:
        """As the flight's leader: read the lower tiers, refresh or load as needed, and land the
        flight (its waiters get what this call returns), whatever happens."""
        fallback = None
        try:
            entry, source = yield from self._find(key, stale=l1, want_stale=True)
            now = self._timer()
            if entry is not None and entry.expires_at > now:
                value = self._value(entry)
                self._flights.land(flight, Outcome(value))
                if self._serve_fresh(entry, now):
                    return Lookup(value, source)
                refreshed = yield from self._refresh_now(key, load, entry, token)
                return refreshed or Lookup(value, source)
            if entry is not None and now < entry.expires_at + load.stale_ttl:
                served = self._serve_stale((entry, source))
                self._flights.land(flight, Outcome(served.value, stale=True))
                yield from self._refresh_later(key, load, entry)
                return served
            fallback = self._fallback(entry, source, load)
            result = yield from self._lead(key, load, token, None, stale_ok=fallback is not None)
        except LockTimeout:
            self._flights.land(flight, ABANDONED)  # the others look again themselves
            if fallback is not None and self.on_lock_timeout == "stale":
                return self._serve_stale(fallback)
            raise
        except BulkheadFull as exc:
            if fallback is not None and self.on_bulkhead == "stale":
                served = self._serve_stale(fallback)
                self._flights.land(flight, Outcome(served.value, stale=True))
                return served
            self._flights.land(flight, Outcome(error=exc))
            raise
        except Exception as exc:
            if fallback is not None:
                served = self._serve_stale(fallback)
                self._flights.land(flight, Outcome(served.value, stale=True))
                return served
            self._flights.land(flight, Outcome(error=exc))
            raise
        except BaseException:  # cancelled or interrupted: the waiters start over
            self._flights.land(flight, ABANDONED)
            raise
        assert result is not None
        self._flights.land(flight, Outcome(result.value))
        return result

    def _serve_stale(self, fallback: tuple[Entry, str]) -> Lookup:
        self._counters.inc("stale_served")
        self._tier_counters[fallback[1]].inc("stale_served")
        return Lookup(self._value(fallback[0]), fallback[1], stale=True)

    def _after_timeout(
        self, key: str, load: _Load, token: tuple[int, int], fallback: tuple[Entry, str] | None
    ) -> Steps[Lookup]:
        if self.on_lock_timeout == "stale" and fallback is not None:
            return self._serve_stale(fallback)
        if self.on_lock_timeout == "raise":
            raise LockTimeout(f"waited {self.lock_timeout:g} s for another caller's load of {key!r}")
        entry = yield from self._call_loader(key, load)
        yield from self._write_loaded(key, entry, token, None)
        return Lookup(None if entry.value is NULL else entry.value, "load")  # (a load, not a null hit)

    def _refresh_now(
        self, key: str, load: _Load, known: Entry, token: tuple[int, int]
    ) -> Steps[Lookup | None]:
        """XFetch picked this call: refresh ``known`` now, unless a refresh already runs (then
        None: serve ``known``, which is still fresh, as on a failed refresh)."""
        if not self._flights.start_refresh(key):
            return None
        self._counters.inc("early_refreshes")
        try:
            return (yield from self._lead(key, load, token, known))
        except Exception:
            return None
        finally:
            self._flights.end_refresh(key)

    def _refresh_later(self, key: str, load: _Load, known: Entry) -> Steps[None]:
        """Start one background refresh of ``known`` (none if a refresh already runs)."""
        if not self._flights.start_refresh(key):
            return
        self._counters.inc("background_refreshes")
        try:
            started = yield op(self._spawn, self._aspawn, lambda: self._background(key, load, known))
        except BaseException:
            self._flights.end_refresh(key)
            raise
        if not started:
            self._flights.end_refresh(key)

    def _background(self, key: str, load: _Load, known: Entry) -> Steps[None]:
        try:
            yield from self._lead(key, load, self._token(key), known)
        except Exception as exc:
            self._warn.warning(("refresh", type(exc)), "background refresh of %r failed: %r", key, exc)
        finally:
            self._flights.end_refresh(key)

    def _spawn(self, steps: Callable[[], Steps[None]]) -> bool:
        """Run ``steps`` on the refresh threads; False once the cache is closed."""
        with self._lock:  # one executor, never a new one after close()
            if self._closed:
                return False
            if self._refresher is None:
                self._refresher = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mlcache-refresh")
            refresher = self._refresher
        refresher.submit(run, steps())
        return True

    async def _aspawn(self, steps: Callable[[], Steps[None]]) -> bool:
        if self._closed:
            return False
        task = asyncio.get_running_loop().create_task(arun(steps()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _lead(
        self, key: str, load: _Load, token: tuple[int, int], known: Entry | None,
        stale_ok: bool = False,
    ) -> Steps[Lookup | None]:
        """Load ``key`` under a cross-process lease and write it through. ``known``: the entry
        being refreshed (early or stale), or None for a miss; a refresh does not wait for
        another process's lease (None: someone else is refreshing). ``stale_ok``: the caller
        has a stale value to serve if the wait for a lease times out."""  # fmt: skip
        pkey = physical_key(key)
        lease = None
        deadline = time.monotonic() + self.lock_timeout
        for remote in self._lease_tiers:
            got = yield from self._acquire(remote, key, pkey, known is None, deadline, stale_ok)
            if got is _FAILED:
                continue  # that tier failed: the next one up guards the load instead
            if got is None or isinstance(got, Lookup):
                return got  # somebody else is refreshing / loaded it while we waited
            if got is not _UNLEASED:
                lease = got
            break
        kept = None if lease is None else self._keeper.hold(lease, pkey)
        try:
            try:
                # Under the lease: someone may have just written the key.
                entry, source = yield from self._find(key)
                if entry is not None and (known is None or entry.expires_at > known.expires_at):
                    yield from self._release(lease, pkey)
                    return Lookup(self._value(entry), source)
                entry = yield from self._call_loader(key, load)
            except BaseException:
                yield from self._release(lease, pkey)
                raise
            yield from self._write_loaded(key, entry, token, lease, refresh=known is not None)
        finally:
            if kept is not None:
                self._keeper.drop(kept)
        return Lookup(None if entry.value is NULL else entry.value, "load")  # (a load, not a null hit)

    def _acquire(
        self, remote: _Remote, key: str, pkey: bytes, wait: bool, deadline: float, stale_ok: bool
    ) -> Steps[Any]:
        """Take ``key``'s lease in ``remote``: (remote, token); a Lookup if another process
        loaded the key while we waited; None if it is taken and we don't wait; _FAILED if the
        tier failed; past ``deadline``, as ``on_lock_timeout`` says: ``LockTimeout`` ("raise",
        or "stale" when ``stale_ok``: the caller serves its stale value) or _UNLEASED (load
        anyway)."""
        token = secrets.token_hex(16).encode()
        while True:
            try:
                holder = yield remote.op("lease_acquire", pkey, token, self.lease_ttl)
            except Exception as exc:
                self._failed(remote, "lease", exc)
                return _FAILED
            if holder is None:
                return remote, token
            if not wait:
                return None
            if holder == b"":
                continue  # released just now: try again
            left = deadline - time.monotonic()
            if left <= 0:
                self._counters.inc("lock_timeouts")
                if self.on_lock_timeout == "load" or (self.on_lock_timeout == "stale" and not stale_ok):
                    return _UNLEASED
                raise LockTimeout(f"waited {self.lock_timeout:g} s for another process's load of {key!r}")
            self._counters.inc("lease_waits")
            try:
                woken = yield remote.op("lease_wait", pkey, holder, left)
            except Exception as exc:
                self._failed(remote, "lease wait", exc)
                return _FAILED
            if woken:  # the holder is done (or lost its lease): look before trying again
                entry, source = yield from self._find(key)
                if entry is not None:
                    return Lookup(self._value(entry), source)

    def _release(self, lease: Any, pkey: bytes) -> Steps[None]:
        if lease is None:
            return
        remote, token = lease
        try:
            yield remote.op("lease_release", pkey, token)
        except Exception as exc:
            self._failed(remote, "lease release", exc)

    def _call_loader(self, key: str, load: _Load) -> Steps[Entry]:
        bulkhead = self._bulkhead
        if bulkhead is not None:
            if self.on_bulkhead == "wait":
                admitted = yield op(bulkhead.acquire, bulkhead.aacquire, self.lock_timeout)
            else:
                admitted = bulkhead.try_acquire()
            if not admitted:
                self._counters.inc("bulkhead_rejections")
                raise BulkheadFull(f"{bulkhead.limit} loads already running (max_loads); {key!r} not loaded")
        started = time.perf_counter()
        try:
            value = yield load_op(load.loader, lambda: self._flights.loading(key))
        except Exception:
            self._counters.inc("load_errors")
            raise
        finally:
            self._load_time.observe(time.perf_counter() - started)
            if bulkhead is not None:
                bulkhead.release()
        self._counters.inc("loads")
        now = self._timer()
        life = self._life(value, load.ttl, load.null_ttl)
        linger = max(load.stale_ttl, load.stale_if_error)
        return self._entry(value, life, now, time.perf_counter() - started, linger)

    def _write_loaded(
        self, key: str, entry: Entry, token: tuple[int, int], lease: Any, refresh: bool = False
    ) -> Steps[bool]:
        """Write a loaded entry through (see the module docstring), and release ``lease``;
        False if it was not cached because the key was written meanwhile. A ``refresh``
        replaced a value other processes may hold: it is announced on the bus."""
        pkey = physical_key(key)
        now = self._timer()
        at = len(self._remote) if lease is None else self._remote.index(lease[0])
        wrote = False
        try:
            blobs = [self._encode(r, pkey, entry, now, strict=False) for r in self._remote]
            mine = self._claim(key, token)
            if mine is None:  # written in this process while we loaded
                self._counters.inc("uncached_loads")
                return False
            wrote = True
            missed = yield from self._store(self._remote[:at], blobs[:at], pkey, entry, now)
            if lease is not None:
                held, lease = lease, None  # the compare-and-set releases it, either way
                if not (yield from self._store_under_lease(held[0], blobs[at], pkey, entry, now, held[1])):
                    yield from self._undo(key, pkey, self._remote[:at])
                    self._counters.inc("uncached_loads")
                    return False
                missed |= yield from self._store(self._remote[at + 1 :], blobs[at + 1 :], pkey, entry, now)
                self._l1_land(key, entry, mine)  # a later write here wins over L1 too
            elif not self._l1_land(key, entry, mine):
                # No lease judged this load: a write that raced it here may have landed
                # first in some tier. Drop the key everywhere (a miss is never stale).
                yield from self._undo(key, pkey, self._remote)
                self._counters.inc("uncached_loads")
                return False
        except BaseException:
            if wrote and lease is not None:  # failed or cancelled before the compare-and-set
                yield from self._undo(key, pkey, self._remote[:at])
            raise
        finally:
            yield from self._release(lease, pkey)
        if refresh or missed:
            self._announce([key], missed)
        return True

    def _undo(self, key: str, pkey: bytes, remotes: list[_Remote]) -> Steps[None]:
        """Delete what a load wrote to ``remotes``; readers that copied it up meanwhile do not
        put it into L1 (the stripe is bumped)."""
        for remote in remotes:
            try:
                yield remote.op("delete", pkey)
            except Exception as exc:
                self._failed(remote, "delete", exc)
        self._bump(key)

    def _store_under_lease(
        self, remote: _Remote, data: bytes | None, pkey: bytes, entry: Entry, now: float, token: bytes
    ) -> Steps[bool]:
        try:
            if data is None:  # too big for the lease tier: release, drop its old value
                yield remote.op("lease_release", pkey, token)
                yield remote.op("delete", pkey)
                return True
            written = yield remote.op("set_under_lease", pkey, data, self._keep(entry, now), token)
        except Exception as exc:
            self._failed(remote, "set", exc)
            return True  # fail-safe: the tier is skipped, the other tiers keep the value
        if written:
            remote.counters.inc("sets")
        return bool(written)


def _seconds(name: str, value: Any) -> float:
    """A number of seconds >= 0 (0 turns the feature off)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value < math.inf):
        raise ConfigurationError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


_caches: weakref.WeakSet[Cache] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for cache in list(_caches):
        cache._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _random_source() -> Callable[[], float]:
    return random.Random().random
