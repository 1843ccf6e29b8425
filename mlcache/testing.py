"""Helpers for testing code that uses mlcache (and mlcache itself).

- ``FakeClock``: a clock that moves only when told to (TTLs, breakers).
- ``FaultyTier``: wraps a remote tier; makes chosen operations fail, slow down or go down.
- ``TierContract``: the behaviours the ``Cache`` relies on from a remote tier, as a pytest test
  class to subclass, for mlcache's tiers and for your own.
- ``RedisServer``, ``free_port``: throwaway redis-server processes.

Importing this module does not import pytest: only running the contract does.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from .tiers.base import MAX_KEY_BYTES, RemoteTier

__all__ = ["FakeClock", "FaultyTier", "RedisServer", "TierContract", "free_port"]


class FakeClock:
    """A wall clock that moves only when told to; pass it as ``timer=`` to test expiry.

    Calling it returns the current fake time in seconds; ``advance()`` moves it forward. Safe to
    share between threads.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` and return the new time."""
        if seconds < 0:
            raise ValueError("a FakeClock does not go backwards")
        with self._lock:
            self._now += seconds
            return self._now

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ping(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A throwaway redis-server on a free 127.0.0.1 port, for tests and benchmarks.

    ``start()`` waits until it answers; ``pause()``/``resume()`` (SIGSTOP/SIGCONT) make it hang
    with its connections open; ``kill()`` loses its data; ``restart()`` comes back empty on the
    same port. ``extra`` are further redis-server arguments; ``config`` a configuration file
    given first (a sentinel needs one it can rewrite: ``config=path`` and ``"--sentinel"``).
    """

    def __init__(
        self,
        workdir: str | Path,
        port: int | None = None,
        *extra: str,
        executable: str | None = None,
        config: str | Path | None = None,
    ) -> None:
        self.executable = executable or shutil.which("redis-server")
        if self.executable is None:
            raise FileNotFoundError("redis-server is not on PATH")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra = extra
        self.config = None if config is None else Path(config)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [
            self.executable,
            *([str(self.config)] if self.config is not None else []),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--logfile", str(self.workdir / f"redis-{self.port}.log"),
            *self.extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not _ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = self.workdir / f"redis-{self.port}.log"
                tail = log.read_text()[-2000:] if log.exists() else ""
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not start:\n{tail}")
            time.sleep(0.02)
        return self

    def kill(self) -> None:
        """SIGKILL the server (its data is gone)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill()
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the server keeps its connections but answers nothing."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def restart(self) -> RedisServer:
        """Kill and start again on the same port, with empty data."""
        self.kill()
        return self.start()


# -- a fault-injectable tier ---------------------------------------------------------------------


class _Rule:
    """A fault or a delay: ``value`` for the next ``left`` calls (None: until healed)."""

    __slots__ = ("left", "value")

    def __init__(self, value: Any, left: int | None) -> None:
        self.value, self.left = value, left


def _take(rules: dict[str, _Rule], operation: str) -> Any:
    """The value of ``operation``'s rule for one call (None if it has none), used up."""
    rule = rules.get(operation)
    if rule is None:
        return None
    if rule.left is not None:
        rule.left -= 1
        if rule.left == 0:
            del rules[operation]
    return rule.value


class FaultyTier(RemoteTier):
    """A remote tier that forwards to ``inner`` and fails, slows down or goes down on command.

    Each operation of the remote-tier protocol (``OPERATIONS``, by sync name; an async twin is
    the same operation: ``"get"`` is ``get`` and ``aget``) is counted in ``calls``, then waits
    out the delay set for it (``sleep``, or ``await asleep`` in async twins), then raises the
    fault set for it, if any, else returns what ``inner`` returns. Nothing else sleeps.

    Everything else is ``inner``'s, untouched: ``name``, ``level``, ``supports_leases``,
    ``host_local``, the settings the Cache reads (``on_error``, ``breaker``, ``retry``, ``ttl``,
    ``max_value_size``, ``format``), ``bind``, ``close`` and the inner tier's own extras
    (``RedisTier``'s invalidation bus, ``DiskTier.identity``), which are not fault-injected.
    So ``on_error="raise"``, a breaker or retries are configured on ``inner``; the Cache labels
    the wrapper like ``inner`` (``"disk"``, ``"redis"``). With no faults set it behaves as
    ``inner`` does, and passes the same ``TierContract``. Safe to use from several threads.
    """

    OPERATIONS: ClassVar[tuple[str, ...]] = (
        "get", "get_many", "set", "set_many", "fill", "fill_many", "delete", "delete_many",
        "clear", "lease_acquire", "lease_wait", "lease_release", "lease_renew", "set_under_lease",
    )  # fmt: skip

    def __init__(
        self,
        inner: RemoteTier,
        *,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        # RemoteTier.__init__ is not called: the settings are inner's (see __getattr__).
        self.inner = inner
        #: Calls per operation, failed or not (an async twin counts as its operation).
        self.calls: Counter[str] = Counter()
        self._sleep, self._asleep = sleep, asleep
        self._lock = threading.Lock()
        self._faults: dict[str, _Rule] = {}
        self._delays: dict[str, _Rule] = {}

    # -- what a test sets ----------------------------------------------------------------------

    def fail(
        self, *operations: str, error: type[Exception] | Exception = ConnectionError, times: int | None = None
    ) -> None:
        """Make the next ``times`` calls of each of ``operations`` (None: every call until
        ``heal``) raise ``error``: an exception class is instantiated for each call with a
        message naming the operation; an instance is raised as it is. Replaces the operations'
        earlier faults. (The Cache's guard retries a ``ConnectionError`` that is not a timeout
        once by default: one cache call then makes two calls here.)"""
        self._set(self._faults, operations, error, times)

    def delay(self, *operations: str, seconds: float, times: int | None = None) -> None:
        """Make the next ``times`` calls of each of ``operations`` (None: every call until
        ``heal``) wait ``seconds`` first; the call then goes on (to its fault, if one is set,
        else to ``inner``). A delay alone never fails a call: combine it with
        ``fail(..., error=TimeoutError)`` to model a timeout."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < float("inf"):
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
        self._set(self._delays, operations, float(seconds), times)

    def down(self, error: type[Exception] | Exception = ConnectionError) -> None:
        """Make every operation raise ``error`` until ``heal``: the tier is down."""
        self.fail(*self.OPERATIONS, error=error)

    def heal(self, *operations: str) -> None:
        """Remove the faults and delays of ``operations`` (of every operation if none named)."""
        names = self._check(operations) if operations else self.OPERATIONS
        with self._lock:
            for name in names:
                self._faults.pop(name, None)
                self._delays.pop(name, None)

    def _check(self, operations: tuple[str, ...]) -> tuple[str, ...]:
        if not operations:
            raise ValueError("name at least one operation")
        unknown = [name for name in operations if name not in self.OPERATIONS]
        if unknown:
            raise ValueError(f"not operations of a remote tier: {unknown!r}; one of {self.OPERATIONS!r}")
        return operations

    def _set(self, rules: dict[str, _Rule], operations: tuple[str, ...], value: Any, times: int | None) -> None:
        if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
            raise ValueError(f"times must be an integer >= 1 or None, got {times!r}")
        names = self._check(operations)
        with self._lock:
            for name in names:
                rules[name] = _Rule(value, times)

    # -- the calls -----------------------------------------------------------------------------

    def _enter(self, operation: str) -> tuple[float | None, Exception | None]:
        """Count a call of ``operation``; its delay and fault for this call, if any."""
        with self._lock:
            self.calls[operation] += 1
            seconds = _take(self._delays, operation)
            error = _take(self._faults, operation)
        if isinstance(error, type):
            error = error(f"{operation}: fault injected by FaultyTier")
        return seconds, error

    def _call(self, operation: str, *args: Any) -> Any:
        seconds, error = self._enter(operation)
        if seconds:
            self._sleep(seconds)
        if error is not None:
            raise error
        return getattr(self.inner, operation)(*args)

    async def _acall(self, operation: str, *args: Any) -> Any:
        seconds, error = self._enter(operation)
        if seconds:
            await self._asleep(seconds)
        if error is not None:
            raise error
        return await getattr(self.inner, "a" + operation)(*args)

    # -- inner's attributes --------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # Reached only for what FaultyTier lacks: the inner tier's settings and extras.
        if name.startswith("__") or "inner" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.inner, name)

    # Class constants on RemoteTier, so __getattr__ would not reach them: inner's, here.
    @property
    def supports_leases(self) -> bool:  # type: ignore[override]
        return self.inner.supports_leases

    @property
    def host_local(self) -> bool:  # type: ignore[override]
        return self.inner.host_local

    def bind(self, secret: bytes | str | None) -> None:
        self.inner.bind(secret)

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __repr__(self) -> str:
        return f"FaultyTier({self.inner!r})"

    # -- the protocol, forwarded ---------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        return self._call("get", key)  # type: ignore[no-any-return]

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        return self._call("get_many", keys)  # type: ignore[no-any-return]

    def set(self, key: bytes, data: bytes, ttl: float | None) -> None:
        self._call("set", key, data, ttl)

    def set_many(self, items: list[tuple[bytes, bytes, float | None]]) -> None:
        self._call("set_many", items)

    def fill(self, key: bytes, data: bytes, ttl: float | None, since: float) -> bool:
        return self._call("fill", key, data, ttl, since)  # type: ignore[no-any-return]

    def fill_many(self, items: list[tuple[bytes, bytes, float | None]], since: float) -> int:
        return self._call("fill_many", items, since)  # type: ignore[no-any-return]

    def delete(self, key: bytes) -> bool:
        return self._call("delete", key)  # type: ignore[no-any-return]

    def delete_many(self, keys: list[bytes]) -> int:
        return self._call("delete_many", keys)  # type: ignore[no-any-return]

    def clear(self) -> None:
        self._call("clear")

    def lease_acquire(self, key: bytes, token: bytes, ttl: float) -> bytes | None:
        return self._call("lease_acquire", key, token, ttl)  # type: ignore[no-any-return]

    def lease_wait(self, key: bytes, holder: bytes, timeout: float) -> bool:
        return self._call("lease_wait", key, holder, timeout)  # type: ignore[no-any-return]

    def lease_release(self, key: bytes, token: bytes) -> None:
        self._call("lease_release", key, token)

    def lease_renew(self, key: bytes, token: bytes, ttl: float) -> bool:
        return self._call("lease_renew", key, token, ttl)  # type: ignore[no-any-return]

    def set_under_lease(self, key: bytes, data: bytes, ttl: float | None, token: bytes) -> bool:
        return self._call("set_under_lease", key, data, ttl, token)  # type: ignore[no-any-return]

    async def aget(self, key: bytes) -> bytes | None:
        return await self._acall("get", key)  # type: ignore[no-any-return]

    async def aget_many(self, keys: list[bytes]) -> list[bytes | None]:
        return await self._acall("get_many", keys)  # type: ignore[no-any-return]

    async def aset(self, key: bytes, data: bytes, ttl: float | None) -> None:
        await self._acall("set", key, data, ttl)

    async def aset_many(self, items: list[tuple[bytes, bytes, float | None]]) -> None:
        await self._acall("set_many", items)

    async def afill(self, key: bytes, data: bytes, ttl: float | None, since: float) -> bool:
        return await self._acall("fill", key, data, ttl, since)  # type: ignore[no-any-return]

    async def afill_many(self, items: list[tuple[bytes, bytes, float | None]], since: float) -> int:
        return await self._acall("fill_many", items, since)  # type: ignore[no-any-return]

    async def adelete(self, key: bytes) -> bool:
        return await self._acall("delete", key)  # type: ignore[no-any-return]

    async def adelete_many(self, keys: list[bytes]) -> int:
        return await self._acall("delete_many", keys)  # type: ignore[no-any-return]

    async def aclear(self) -> None:
        await self._acall("clear")

    async def alease_acquire(self, key: bytes, token: bytes, ttl: float) -> bytes | None:
        return await self._acall("lease_acquire", key, token, ttl)  # type: ignore[no-any-return]

    async def alease_wait(self, key: bytes, holder: bytes, timeout: float) -> bool:
        return await self._acall("lease_wait", key, holder, timeout)  # type: ignore[no-any-return]

    async def alease_release(self, key: bytes, token: bytes) -> None:
        await self._acall("lease_release", key, token)

    async def aset_under_lease(self, key: bytes, data: bytes, ttl: float | None, token: bytes) -> bool:
        return await self._acall("set_under_lease", key, data, ttl, token)  # type: ignore[no-any-return]


# -- the tier contract ---------------------------------------------------------------------------


def _skip(reason: str) -> NoReturn:
    import pytest  # only when the contract runs: importing mlcache.testing never needs pytest

    pytest.skip(reason)


def _eventually(condition: Callable[[], bool], what: str, timeout: float = 2.0) -> None:
    """Wait (polling every 20 ms) until ``condition()``, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.02)


class _Face:
    """A tier's operations by their sync names: called as they are (``"sync"``), or as their
    ``a``-prefixed twins, each run to completion on a private event loop (``"async"``)."""

    def __init__(self, tier: RemoteTier, face: str) -> None:
        if face not in ("sync", "async"):
            raise ValueError(f"face must be 'sync' or 'async', got {face!r}")
        self.tier, self.face = tier, face
        self._loop = asyncio.new_event_loop() if face == "async" else None

    def __getattr__(self, name: str) -> Any:
        loop = self._loop
        if loop is None or name == "lease_renew":  # (sync only: the Cache renews from a thread)
            return getattr(self.tier, name)
        twin = getattr(self.tier, "a" + name)
        return lambda *args: loop.run_until_complete(twin(*args))

    def twin(self) -> _Face:
        """The same face with a loop of its own, for another thread."""
        return _Face(self.tier, self.face)

    def __enter__(self) -> _Face:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.close()


def _leases(tier: RemoteTier) -> None:
    if not tier.supports_leases:
        _skip(f"{type(tier).__name__} does not support leases")


def _fills(t: _Face, key: bytes, data: bytes, ttl: float | None, since: float) -> Any:
    """``fill``, the first call of a test of it: skips the test if the tier has none."""
    try:
        return t.fill(key, data, ttl, since)
    except NotImplementedError:
        _skip(f"{type(t.tier).__name__} has no fill")


# Keys as ``physical_key`` makes them: any bytes up to MAX_KEY_BYTES that do not start with NUL
# (those names are the tiers' own). Near-twins: a tier that truncates, strips, escapes or
# decodes keys makes two of them collide. Values: arbitrary bytes, up to ~200 KB.
_KEYS = [
    b"k", b"k\x00", b"k\x00\x01", b"K", b"k ", b"\xff\xfe\x80", b"\xc3\xa9", b"*?[]{}\\%:\r\n",
    b"#sha256:" + b"0" * 64, bytes(range(1, MAX_KEY_BYTES + 1)),
    b"x" * MAX_KEY_BYTES, b"x" * (MAX_KEY_BYTES - 1) + b"y",
]  # fmt: skip
_BLOBS = [b"\x00", b"\x00" * 100, bytes(range(256)), b"ML\x00\xff\r\n" * 7, bytes(range(256)) * 800]


class TierContract:
    """What the ``Cache`` relies on from a remote tier (``mlcache.tiers.base.RemoteTier``), as
    pytest tests. Subclass it in a test module with a ``tier`` fixture that gives a fresh,
    empty tier (and closes it afterwards)::

        from mlcache.testing import TierContract

        class TestMyTier(TierContract):
            @pytest.fixture
            def tier(self, tmp_path):
                tier = MyTier(tmp_path)
                yield tier
                tier.close()

    Each test that takes ``face`` runs twice, through the sync operations (``[sync]``) and
    through their async twins (``[async]``, each run on a private event loop; no pytest plugin
    needed). Lease tests are skipped for a tier without ``supports_leases``, fill tests for
    one whose ``fill`` raises ``NotImplementedError``. Waits for a store's own expiry poll, for
    at most 2 s each; the whole contract waits about 1.5 s per face.

    A subclass can mark a test it knows its tier fails by overriding it with
    ``@pytest.mark.xfail(strict=True, reason=...)`` and calling ``super()``.
    """

    def pytest_generate_tests(self, metafunc: Any) -> None:
        """(pytest's hook, per class) Run the tests that take ``face`` for both faces."""
        if "face" in metafunc.fixturenames:
            metafunc.parametrize("face", ["sync", "async"])

    # -- data ----------------------------------------------------------------------------------

    def test_set_get_delete(self, tier: RemoteTier, face: str) -> None:
        """A write is read back and replaced by the next; ``delete`` says whether the key
        held a value; a deleted key reads as missing and can be written again."""
        with _Face(tier, face) as t:
            assert t.get(b"k") is None
            t.set(b"k", b"one", None)
            assert t.get(b"k") == b"one"
            t.set(b"k", b"two", 30.0)
            assert t.get(b"k") == b"two"
            assert t.get(b"other") is None
            assert t.delete(b"k"), "delete of a key that held a value said it held none"
            assert t.get(b"k") is None
            assert not t.delete(b"k"), "a second delete said the key still held a value"
            assert not t.delete(b"never"), "delete of a key never written said it held a value"
            t.set(b"k", b"three", None)
            assert t.get(b"k") == b"three"

    def test_batches(self, tier: RemoteTier, face: str) -> None:
        """``get_many`` answers in the order asked, None for a missing key; ``set_many`` writes
        every item (each with its own ttl); ``delete_many`` counts the keys that held a value."""
        with _Face(tier, face) as t:
            t.set_many([(b"a", b"1", None), (b"b", b"2", 30.0), (b"c", b"3", None)])
            assert list(t.get_many([b"c", b"missing", b"a", b"b"])) == [b"3", None, b"1", b"2"]
            assert t.get(b"b") == b"2"
            t.set_many([(b"a", b"1+", None)])
            assert list(t.get_many([b"a"])) == [b"1+"]
            assert t.delete_many([b"a", b"missing", b"c"]) == 2
            assert list(t.get_many([b"a", b"b", b"c"])) == [None, b"2", None]
            assert t.delete_many([b"a"]) == 0

    def test_ttl_is_the_time_the_store_keeps_the_bytes(self, tier: RemoteTier, face: str) -> None:
        """Bytes written with ``ttl`` seconds (``set``, ``set_many``, ``set_under_lease``) are
        there at once and gone after about ``ttl``; None or a longer ttl keeps them."""
        with _Face(tier, face) as t:
            short = [b"set", b"set_many"]
            # (1 s: time for a loaded machine to read them back before they expire)
            t.set(b"set", b"v", 1.0)
            t.set_many([(b"set_many", b"v", 1.0), (b"long", b"v", 30.0), (b"forever", b"v", None)])
            if tier.supports_leases:
                assert t.lease_acquire(b"leased", b"A", 10.0) is None
                assert t.set_under_lease(b"leased", b"v", 1.0, b"A")
                short.append(b"leased")
            assert list(t.get_many([*short, b"long", b"forever"])) == [b"v"] * (len(short) + 2)
            _eventually(lambda: list(t.get_many(short)) == [None] * len(short),
                        f"{short} written with ttl=1 s reaped", timeout=5.0)  # fmt: skip
            assert list(t.get_many([b"long", b"forever"])) == [b"v", b"v"]

    def test_clear_removes_every_entry(self, tier: RemoteTier, face: str) -> None:
        """``clear`` leaves nothing to read, and the tier works on afterwards."""
        with _Face(tier, face) as t:
            t.set_many([(b"a", b"1", None), (b"b", b"2", 30.0)])
            t.set(b"c", b"3", None)
            t.delete(b"c")
            t.clear()
            assert list(t.get_many([b"a", b"b", b"c"])) == [None, None, None]
            t.set(b"a", b"again", None)
            assert t.get(b"a") == b"again"

    def test_keys_and_values_are_binary_safe(self, tier: RemoteTier, face: str) -> None:
        """Any physical key (NUL bytes, non-UTF-8, glob and brace characters, up to
        ``MAX_KEY_BYTES``) names its own entry; any bytes come back as written."""
        data = {key: bytes([i]) + _BLOBS[i % len(_BLOBS)] for i, key in enumerate(_KEYS)}
        with _Face(tier, face) as t:
            for key, value in data.items():
                t.set(key, value, None)
            assert {key: t.get(key) for key in data} == data
            assert list(t.get_many(list(data))) == list(data.values())
            t.set_many([(key, value[::-1], None) for key, value in data.items()])
            assert list(t.get_many(list(data))) == [value[::-1] for value in data.values()]
            assert t.delete_many(list(data)) == len(data)
            assert list(t.get_many(list(data))) == [None] * len(data)

    def test_both_faces_share_one_store(self, tier: RemoteTier) -> None:
        """What one face writes, the other reads: sync and async callers (in this process or
        others) share entries and leases."""
        with _Face(tier, "sync") as sync, _Face(tier, "async") as asynchronous:
            for writer, reader in ((sync, asynchronous), (asynchronous, sync)):
                writer.set(b"k", b"v", None)
                writer.set_many([(b"j", b"w", None)])
                assert reader.get(b"k") == b"v"
                assert list(reader.get_many([b"k", b"j"])) == [b"v", b"w"]
                assert reader.delete(b"k")
                assert writer.get(b"k") is None
                if tier.supports_leases:
                    assert writer.lease_acquire(b"l", b"A", 10.0) is None
                    assert reader.lease_acquire(b"l", b"B", 10.0) == b"A"
                    assert reader.set_under_lease(b"l", b"x", None, b"A")
                    assert writer.get(b"l") == b"x"

    # -- leases --------------------------------------------------------------------------------

    def test_a_lease_has_one_holder_until_released_or_expired(self, tier: RemoteTier, face: str) -> None:
        """``lease_acquire`` gives the lease to one token (None) and tells others its holder;
        only the holder can release it; it expires after its ttl; it is not a value."""
        _leases(tier)
        with _Face(tier, face) as t:
            assert t.lease_acquire(b"k", b"A", 10.0) is None
            assert t.lease_acquire(b"k", b"B", 10.0) == b"A"
            assert t.lease_acquire(b"other", b"B", 10.0) is None  # one lease per key
            assert t.get(b"k") is None
            assert list(t.get_many([b"k", b"other"])) == [None, None]
            t.lease_release(b"k", b"B")  # not the holder's: changes nothing
            assert t.lease_acquire(b"k", b"C", 10.0) == b"A"
            t.lease_release(b"k", b"A")
            assert t.lease_acquire(b"k", b"B", 0.2) is None
            _eventually(lambda: t.lease_acquire(b"k", b"C", 10.0) is None, "a lease with ttl=0.2 s expired")

    def test_set_under_lease_is_a_compare_and_set(self, tier: RemoteTier, face: str) -> None:
        """``set_under_lease`` writes only for the lease's holder, and releases the lease."""
        _leases(tier)
        with _Face(tier, face) as t:
            assert t.lease_acquire(b"k", b"A", 10.0) is None
            assert not t.set_under_lease(b"k", b"not mine", None, b"B")
            assert t.get(b"k") is None
            assert t.lease_acquire(b"k", b"B", 10.0) == b"A"  # still A's
            assert t.set_under_lease(b"k", b"mine", None, b"A")
            assert t.get(b"k") == b"mine"
            assert not t.set_under_lease(b"k", b"again", None, b"A"), "the write did not release the lease"
            assert t.get(b"k") == b"mine"
            assert t.lease_acquire(b"k", b"B", 10.0) is None

    def test_writes_and_deletes_take_the_lease_away(self, tier: RemoteTier, face: str) -> None:
        """A plain write or delete of a leased key takes the lease away: the holder's
        ``set_under_lease`` then writes nothing (its load may be older than that write), and
        the lease is free. This is what keeps a load racing a delete from caching old data."""
        _leases(tier)
        with _Face(tier, face) as t:
            writes: dict[str, Callable[[bytes], Any]] = {
                "set": lambda key: t.set(key, b"new", None),
                "set_many": lambda key: t.set_many([(key, b"new", None)]),
                "delete": lambda key: t.delete(key),
                "delete_many": lambda key: t.delete_many([key]),
            }
            for name, write in writes.items():
                key = name.encode()
                assert t.lease_acquire(key, b"A", 10.0) is None
                write(key)
                written = None if name.startswith("delete") else b"new"
                assert not t.set_under_lease(key, b"loaded", None, b"A"), f"{name} left the lease held"
                assert t.get(key) == written, f"a lost lease still wrote over {name}"
                assert t.lease_acquire(key, b"B", 10.0) is None, f"{name} left the lease held"

    def test_lease_wait_is_woken_when_the_lease_ends(self, tier: RemoteTier, face: str) -> None:
        """A waiter in ``lease_wait`` (in another thread) returns True when the holder
        releases, writes under its lease, or loses the lease to a write or a delete."""
        _leases(tier)
        with _Face(tier, face) as t:
            ends: dict[str, Callable[[bytes], Any]] = {
                "lease_release": lambda key: t.lease_release(key, b"A"),
                "set_under_lease": lambda key: t.set_under_lease(key, b"v", None, b"A"),
                "set": lambda key: t.set(key, b"v", None),
                "delete": lambda key: t.delete(key),
            }

            def wait(key: bytes) -> bool:
                with t.twin() as waiter:
                    return bool(waiter.lease_wait(key, b"A", 5.0))

            with ThreadPoolExecutor(1) as pool:
                for name, end in ends.items():
                    key = name.encode()
                    assert t.lease_acquire(key, b"A", 10.0) is None
                    woken = pool.submit(wait, key)
                    time.sleep(0.1)  # (most likely waiting by now; if not, it must see the end)
                    end(key)
                    assert woken.result(timeout=5), f"a waiter was not woken by {name}"

    def test_lease_wait_times_out_while_the_lease_is_held(self, tier: RemoteTier, face: str) -> None:
        """``lease_wait`` blocks (the Cache does not poll in a busy loop) for about its
        ``timeout`` while the holder keeps the lease, then returns False."""
        _leases(tier)
        with _Face(tier, face) as t:
            assert t.lease_acquire(b"k", b"A", 10.0) is None
            started = time.monotonic()
            assert not t.lease_wait(b"k", b"A", 0.2)
            waited = time.monotonic() - started
            assert 0.15 <= waited < 1.0, f"lease_wait(timeout=0.2) returned after {waited:.3f} s"

    def test_lease_renew_extends_only_the_holders_lease(self, tier: RemoteTier) -> None:
        """``lease_renew`` (sync only) extends a lease still held by the token, and nothing
        else: not another token's, not one a write took away."""
        _leases(tier)
        assert tier.lease_acquire(b"k", b"A", 0.2) is None
        assert tier.lease_renew(b"k", b"A", 30.0)
        assert not tier.lease_renew(b"k", b"B", 30.0)
        time.sleep(0.4)  # past the first ttl
        assert tier.lease_acquire(b"k", b"B", 10.0) == b"A"
        tier.set(b"k", b"v", None)
        assert not tier.lease_renew(b"k", b"A", 30.0)
        assert tier.lease_acquire(b"k", b"B", 10.0) is None
        assert not tier.lease_renew(b"never", b"A", 30.0)
        assert tier.lease_acquire(b"never", b"B", 10.0) is None

    # -- copy-ups ------------------------------------------------------------------------------

    def test_fill_never_overwrites_and_keeps_the_lease(self, tier: RemoteTier, face: str) -> None:
        """``fill`` (a copy-up from a lower tier) writes only a key that holds no value, says
        whether it wrote, keeps its ttl, and leaves the key's lease to its holder."""
        with _Face(tier, face) as t:
            since = time.time()
            assert _fills(t, b"k", b"one", None, since)
            assert t.get(b"k") == b"one"
            assert not t.fill(b"k", b"two", 30.0, since)
            assert t.get(b"k") == b"one"
            t.set(b"j", b"set", None)
            # (h's ttl leaves a loaded machine time to read it back before it expires)
            items = [(b"k", b"three", None), (b"j", b"four", None), (b"i", b"five", 30.0), (b"h", b"six", 1.0)]
            assert t.fill_many(items, since) == 2
            assert list(t.get_many([b"k", b"j", b"i", b"h"])) == [b"one", b"set", b"five", b"six"]
            _eventually(lambda: t.get(b"h") is None, "a fill with ttl=1 s reaped", timeout=5.0)
            if tier.supports_leases:
                assert t.lease_acquire(b"l", b"A", 10.0) is None
                assert t.fill(b"l", b"copied", None, since)
                assert t.lease_acquire(b"l", b"B", 10.0) == b"A", "fill took the lease away"
                assert t.set_under_lease(b"l", b"loaded", None, b"A")
                assert t.get(b"l") == b"loaded"

    def test_fill_does_not_undo_a_later_delete(self, tier: RemoteTier, face: str) -> None:
        """A copy-up of bytes read from a lower tier since ``since`` does not fill a key
        deleted here after that (it would bring back what the delete removed); a delete from
        before ``since`` does not stop it."""
        with _Face(tier, face) as t:
            t.set_many([(b"k", b"old", None), (b"j", b"old", None)])
            since = time.time()
            time.sleep(0.01)
            t.delete(b"k")
            t.delete_many([b"j"])
            assert not _fills(t, b"k", b"stale", None, since), "fill undid a delete"
            assert t.fill_many([(b"j", b"stale", None)], since) == 0, "fill_many undid a delete_many"
            assert list(t.get_many([b"k", b"j"])) == [None, None]
            time.sleep(0.01)
            later = time.time()
            assert t.fill(b"k", b"fresh", None, later)
            assert t.get(b"k") == b"fresh"
