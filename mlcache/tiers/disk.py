"""L2: a local disk cache shared by the processes of one host, over ``diskcache`` (SQLite).

Entries are stored as envelope bytes, so diskcache never pickles or unpickles anything of
ours; ``_SafeDisk`` also refuses to unpickle rows that someone else planted (diskcache's own
pickle path, CVE-2025-69872) and to touch files outside the cache directory.

Without a configured secret the tier signs with a random key kept in ``<directory>/mlcache.key``
(created once, mode 0600): every process of the same user shares it, and bytes written by
anything else read as a miss. A key file that another user owns, or that others may read or
write, is refused (``ConfigurationError``): in a shared directory such as ``/var/tmp`` it could
have been planted to make forged pickles pass.

Deletes leave a tombstone with the time of the delete (for ``TOMBSTONE_SECONDS``), and copy-ups
from L3 only fill a key that holds nothing newer than the read they copy (``fill``): a reader
that fetched a value from L3 just before another process deleted or replaced it cannot put the
old value back into L2 afterwards (the replacement, or the tombstone, is there first). The
times are this host's clock, shared by every process that uses the directory. A ``clear``
leaves no tombstones: a copy-up racing it may bring back one entry read just before.

Async: reads run inline on the event loop (a SQLite read in WAL mode never waits for writers and
takes tens of microseconds, less than a hop to a thread); writes, which can wait for another
process's write lock, run on one thread owned by the tier, in the order they were made (SQLite
takes one writer at a time anyway). A cancelled write still lands, before any later one.

A damaged database file (``file is not a database``, ``malformed``) heals itself: the first
operation to hit it moves it aside (``cache.db.corrupt-<time>``, under a lock file, and only
if an integrity check still fails, so that processes sharing the directory heal it once) and
reopens an empty one; the operation itself fails, and the Cache skips the tier for it. (A
damaged ``-shm`` file, SQLite's shared-memory index, can make SQLite retry inside one call for
seconds before it reports anything; that cannot be cut short from Python.) A directory that is
read-only or full when the process starts does not stop it: the tier fails (and its breaker
opens) until the database can be opened.

Leases (host-wide single-flight when there is no Redis, see ``mlcache.cache``): ``add`` of a
lease row; the holder's write checks and removes it in one transaction (compare-and-set), and
every plain write or delete removes it too. SQLite has no way to wake a waiter, so waiters poll
the lease row, locally, with a backoff from 1 ms to 50 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import secrets
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

from .._checks import check_positive_int, check_ttl
from .._logging import logger
from ..errors import ConfigurationError
from .base import RemoteTier

__all__ = ["DiskTier", "default_directory"]

KEY_FILE = "mlcache.key"
#: How long a delete's tombstone is kept (far longer than a read and its copy-up take).
TOMBSTONE_SECONDS = 30.0
_log = logger("tiers.disk")
_LEASE = b"\x00lease:"
_TOMBSTONE = b"\x00deleted:"  # + the time of the delete, in ns, 8 bytes big-endian
_WAIT_SLICE = 1.0


def _backoff(timeout: float) -> Iterator[float]:
    """Sleeps of 1 ms doubling to 50 ms, adding up to ``timeout`` (at most one slice)."""
    left, delay = min(timeout, _WAIT_SLICE), 0.001
    while left > 0:
        yield min(delay, left)
        left -= delay
        delay = min(delay * 2, 0.05)


def default_directory() -> Path:
    """The platform's per-user cache directory for mlcache."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mlcache"


def _import_diskcache() -> Any:
    try:
        import diskcache
    except ImportError as exc:
        raise ConfigurationError(
            "DiskTier needs the diskcache package: pip install diskcache"
        ) from exc
    return diskcache


class _Refused(ValueError):
    """A row that mlcache did not write (a pickle, a file outside the directory)."""


def _safe_disk_class(diskcache: Any) -> type:
    class _SafeDisk(diskcache.Disk):
        """A diskcache Disk that never unpickles and never leaves its directory."""

        def get(self, key: Any, raw: bool) -> Any:
            if not raw:
                raise _Refused("a pickled key")
            return super().get(key, raw)

        def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
            if mode == diskcache.core.MODE_PICKLE:
                raise _Refused("a pickled value")
            if filename is not None:
                self._inside(filename)
            return super().fetch(mode, filename, value, read)

        def remove(self, file_path: str) -> None:
            self._inside(file_path)
            super().remove(file_path)

        def _inside(self, filename: str) -> None:
            root = os.path.realpath(self._directory)
            path = os.path.realpath(os.path.join(self._directory, filename))
            if os.path.commonpath([root, path]) != root:
                raise _Refused("a file outside the cache directory")

    return _SafeDisk


def _healing(method: Callable[..., Any]) -> Callable[..., Any]:
    """Heal the database (see the module docstring) when ``method`` finds it damaged."""

    @functools.wraps(method)
    def wrapper(self: DiskTier, *args: Any) -> Any:
        generation = self._generation
        try:
            return method(self, *args)
        except sqlite3.DatabaseError as exc:
            self._heal_if_damaged(exc, generation)
            raise

    return wrapper


class DiskTier(RemoteTier):
    """L2 over a diskcache directory: shared by the processes of one host, survives restarts.

    ``directory`` (default: the per-user cache directory); ``ttl`` caps lifetimes here;
    ``size_limit`` bytes (diskcache culls the least recently stored entries beyond it);
    ``timeout`` seconds to wait for SQLite's write lock before the operation fails (the Cache
    then skips this tier). Codec and signing options as in ``RemoteTier``.
    """

    name: ClassVar[str] = "disk"
    level: ClassVar[int] = 2
    supports_leases: ClassVar[bool] = True
    host_local: ClassVar[bool] = True

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        ttl: float | None = None,
        *,
        size_limit: int = 2**30,
        timeout: float = 0.25,
        **options: Any,
    ) -> None:
        super().__init__(ttl=ttl, **options)
        diskcache = _import_diskcache()
        check_positive_int("size_limit", size_limit)
        timeout = check_ttl("timeout", timeout, allow_none=False)
        self.directory = Path(directory) if directory is not None else default_directory()
        self._open = functools.partial(
            diskcache.Cache, str(self.directory), disk=_safe_disk_class(diskcache),
            size_limit=size_limit, timeout=timeout, eviction_policy="least-recently-stored",
            statistics=False, tag_index=False,
        )  # fmt: skip
        self._heal_lock = threading.Lock()
        self._generation = 0  # bumped by every heal: threads that saw the damage heal once
        self._timeout = timeout
        self._cache: Any = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"DiskTier cannot create directory {str(self.directory)!r}: {exc}") from None
        try:
            self._db()
        except sqlite3.DatabaseError as exc:
            if not self._heal_if_damaged(exc, self._generation):
                # read-only, locked, full: the tier fails until it can open (see _db)
                _log.warning("disk: cannot open %s yet: %r", self.directory, exc)
        self._writer: ThreadPoolExecutor | None = None

    def _db(self) -> Any:
        """The diskcache, opened now if it could not be before (a directory that was read-only
        or full when the process started starts working when that is fixed)."""
        cache = self._cache
        if cache is None:
            with self._heal_lock:
                if self._cache is None:
                    self._cache = self._open()
                cache = self._cache
        return cache

    def _heal_if_damaged(self, exc: sqlite3.DatabaseError, generation: int) -> bool:
        """Heal the database if ``exc`` says it is damaged (not locked, read-only, ...)."""
        if type(exc) is not sqlite3.DatabaseError:
            return False
        self._heal(generation)
        return True

    def _heal(self, generation: int) -> None:
        """Move a damaged database aside (if it still is damaged) and reopen; see the module
        docstring. ``generation``: the one in which the damage was seen (healed only once)."""
        database = self.directory / "cache.db"
        with self._heal_lock, _FileLock(self.directory / "mlcache.heal.lock"):
            if generation != self._generation:
                return  # another thread healed it meanwhile
            self._generation += 1
            try:
                with contextlib.closing(sqlite3.connect(database, timeout=self._timeout)) as con:
                    healthy = con.execute("PRAGMA quick_check").fetchone()[0] == "ok"
            except sqlite3.DatabaseError:
                healthy = False
            if not healthy:
                suffix = f".corrupt-{time.time_ns()}"
                for part in ("", "-wal", "-shm"):
                    damaged = Path(f"{database}{part}")
                    if damaged.exists():
                        damaged.rename(f"{damaged}{suffix}")
                _log.warning("disk: %s was damaged; moved aside (*%s), starting empty", database, suffix)
            old, self._cache = self._cache, None
        if old is not None:
            old.close()
        self._db()  # a fresh database (if this fails, the next operation tries again)

    def identity(self) -> bytes:
        """Names this directory on this host (the invalidation bus tells hosts apart by it):
        the host's name and machine id (cloned machines that keep both are one host to the
        bus) and the directory's device and inode."""
        st = os.stat(self.directory)
        try:
            machine = Path("/etc/machine-id").read_text().strip()
        except OSError:
            machine = ""
        name = f"{socket.gethostname()}:{machine}:{st.st_dev}:{st.st_ino}"
        return hashlib.sha256(name.encode()).hexdigest()[:16].encode()

    def _default_secret(self) -> bytes:
        """The directory's key file, created on first use by whichever process comes first."""
        path = self.directory / KEY_FILE
        for _ in range(3):
            try:
                data = _read_private(path)
            except FileNotFoundError:
                tmp = self.directory / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(secrets.token_bytes(32))
                try:
                    os.link(tmp, path)  # atomic, and never replaces another process's key
                except FileExistsError:
                    pass
                finally:
                    tmp.unlink()
                continue
            if len(data) >= 16:
                return data
        raise ConfigurationError(f"cannot read a usable key from {str(path)!r}")

    # -- sync ----------------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        generation = self._generation  # (what @_healing does, inline: L2's hottest call)
        try:
            data = self._db().get(key, retry=False)
        except _Refused:
            return b""  # bytes no envelope matches: the Cache counts a corrupt entry, a miss
        except sqlite3.DatabaseError as exc:
            self._heal_if_damaged(exc, generation)
            raise
        if type(data) is not bytes:
            return None if data is None else b""  # a row stored by other code: same
        return None if data.startswith(_TOMBSTONE) else data

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        return [self.get(k) for k in keys]

    def set(self, key: bytes, data: bytes, ttl: float | None) -> None:
        self.set_many([(key, data, ttl)])

    @_healing
    def set_many(self, items: list[tuple[bytes, bytes, float | None]]) -> None:
        cache = self._db()
        with cache.transact(retry=False):  # one transaction: one lock, one commit
            for key, data, ttl in items:
                cache.set(key, data, expire=ttl, retry=False)
                cache.delete(_LEASE + key, retry=False)

    def fill(self, key: bytes, data: bytes, ttl: float | None, since: float) -> bool:
        return self.fill_many([(key, data, ttl)], since) > 0

    @_healing
    def fill_many(self, items: list[tuple[bytes, bytes, float | None]], since: float) -> int:
        cache = self._db()
        since_ns = int(since * 1e9)
        filled = 0
        with cache.transact(retry=False):
            for key, data, ttl in items:
                try:
                    held = cache.get(key, retry=False)
                except _Refused:
                    continue
                if held is None or (
                    type(held) is bytes
                    and held.startswith(_TOMBSTONE)
                    and int.from_bytes(held[len(_TOMBSTONE) :], "big") < since_ns
                ):
                    cache.set(key, data, expire=ttl, retry=False)
                    filled += 1
        return filled

    def delete(self, key: bytes) -> bool:
        return self.delete_many([key]) > 0

    @_healing
    def delete_many(self, keys: list[bytes]) -> int:
        cache = self._db()
        removed = 0
        with cache.transact(retry=False):
            tombstone = _TOMBSTONE + time.time_ns().to_bytes(8, "big")  # inside the lock: ordered
            for key in keys:
                cache.delete(_LEASE + key, retry=False)
                try:
                    held = cache.get(key, retry=False)
                except _Refused:
                    held = b""
                removed += held is not None and not (type(held) is bytes and held.startswith(_TOMBSTONE))
                cache.set(key, tombstone, expire=TOMBSTONE_SECONDS, retry=False)
        return removed

    @_healing
    def clear(self) -> None:
        self._db().clear(retry=False)

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    @_healing
    def lease_acquire(self, key: bytes, token: bytes, ttl: float) -> bytes | None:
        if self._db().add(_LEASE + key, token, expire=ttl, retry=False):
            return None
        return self._db().get(_LEASE + key, default=b"", retry=False)  # type: ignore[no-any-return]

    @_healing
    def lease_wait(self, key: bytes, holder: bytes, timeout: float) -> bool:
        for delay in _backoff(timeout):
            if self._db().get(_LEASE + key, retry=False) != holder:
                return True
            time.sleep(delay)
        return False

    @_healing
    def lease_release(self, key: bytes, token: bytes) -> None:
        cache = self._db()
        with cache.transact(retry=False):
            if cache.get(_LEASE + key, retry=False) == token:
                cache.delete(_LEASE + key, retry=False)

    @_healing
    def lease_renew(self, key: bytes, token: bytes, ttl: float) -> bool:
        cache = self._db()
        with cache.transact(retry=False):
            return cache.get(_LEASE + key, retry=False) == token and bool(
                cache.touch(_LEASE + key, expire=ttl, retry=False)
            )

    @_healing
    def set_under_lease(self, key: bytes, data: bytes, ttl: float | None, token: bytes) -> bool:
        cache = self._db()
        with cache.transact(retry=False):
            if cache.get(_LEASE + key, retry=False) != token:
                return False
            cache.set(key, data, expire=ttl, retry=False)
            cache.delete(_LEASE + key, retry=False)
            return True

    # -- async: reads inline, writes on the tier's threads ---------------------------------------

    async def _offload(self, fn: Any, *args: Any) -> Any:
        writer = self._writer
        if writer is None:
            with self._heal_lock:  # one writer thread, however many loops write
                if self._writer is None:
                    self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlcache-disk")
                writer = self._writer
        return await asyncio.get_running_loop().run_in_executor(writer, fn, *args)

    async def aget(self, key: bytes) -> bytes | None:
        return self.get(key)

    async def aget_many(self, keys: list[bytes]) -> list[bytes | None]:
        return self.get_many(keys)

    async def aset(self, key: bytes, data: bytes, ttl: float | None) -> None:
        await self._offload(self.set, key, data, ttl)

    async def aset_many(self, items: list[tuple[bytes, bytes, float | None]]) -> None:
        await self._offload(self.set_many, items)

    async def afill(self, key: bytes, data: bytes, ttl: float | None, since: float) -> bool:
        return await self._offload(self.fill, key, data, ttl, since)  # type: ignore[no-any-return]

    async def afill_many(self, items: list[tuple[bytes, bytes, float | None]], since: float) -> int:
        return await self._offload(self.fill_many, items, since)  # type: ignore[no-any-return]

    async def adelete(self, key: bytes) -> bool:
        return await self._offload(self.delete, key)  # type: ignore[no-any-return]

    async def adelete_many(self, keys: list[bytes]) -> int:
        return await self._offload(self.delete_many, keys)  # type: ignore[no-any-return]

    async def aclear(self) -> None:
        await self._offload(self.clear)

    async def aclose(self) -> None:
        self.close()

    async def alease_acquire(self, key: bytes, token: bytes, ttl: float) -> bytes | None:
        return await self._offload(self.lease_acquire, key, token, ttl)  # type: ignore[no-any-return]

    async def alease_wait(self, key: bytes, holder: bytes, timeout: float) -> bool:
        for delay in _backoff(timeout):
            if self._db().get(_LEASE + key, retry=False) != holder:
                return True
            await asyncio.sleep(delay)
        return False

    async def alease_release(self, key: bytes, token: bytes) -> None:
        await self._offload(self.lease_release, key, token)

    async def aset_under_lease(
        self, key: bytes, data: bytes, ttl: float | None, token: bytes
    ) -> bool:
        return await self._offload(self.set_under_lease, key, data, ttl, token)  # type: ignore[no-any-return]

    def _describe(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "ttl": self.ttl}


def _read_private(path: Path) -> bytes:
    """The contents of ``path`` if this user owns it and nobody else may read or write it."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)  # a symlink is refused, not followed
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ConfigurationError(f"cannot open the key file {str(path)!r}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if hasattr(os, "geteuid") and (st.st_uid != os.geteuid() or st.st_mode & 0o077):
            raise ConfigurationError(
                f"the key file {str(path)!r} must belong to this user with mode 0600 "
                "(another user could have planted it); remove it or give the tier a secret"
            )
        return f.read()


class _FileLock:
    """An exclusive lock on a file, between processes (POSIX ``flock``; elsewhere a no-op)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def __enter__(self) -> _FileLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # releases the lock
            self._fd = -1
