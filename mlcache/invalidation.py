"""The invalidation bus: keeping other processes' L1, and other hosts' L2, fresh.

Every write that changes what other processes may hold (``set``, ``set_many``, ``delete``,
``clear``, a refresh) hands the keys it changed to the bus, and a background thread appends
them to a Redis stream (``XADD``, trimmed to about ``maxlen`` messages): one message per batch,
so a burst of writes costs a few messages, whoever listens. Every process reads the stream in
another background thread (``XREAD BLOCK`` from the last message it applied) and, for messages
of other processes, drops those keys from its L1 and, when the writer used another L2
directory (another host), from its L2.

Why a stream, not pub/sub: pub/sub is at-most-once, and a subscriber that reconnects never
sees what was published while it was away. A stream keeps the messages: a reader that was
disconnected resumes from its last message. It can still miss some, if the stream was trimmed
past its position or Redis lost its data (a restart without persistence): it notices because
its last message is no longer in the stream (every reader starts from a message of its own, so
it always has one to check). Then it flushes its L1 and treats its L2 as suspect: L2 entries
written before that moment read as misses (and are fetched again from L3 or loaded), instead
of a flush of the shared directory.

A process's L2 position (the last message its host applied) is kept in L2 itself, so a process
starting on a host resumes where the host left off; if that position is gone, L2 is suspect.

Writes while Redis is unreachable: the keys wait in a local queue and are published when Redis
is back (fail-back). A key whose write (or delete) did not reach L3 is first deleted from L3
there (a *repair*), so that L3 never keeps a value older than an acknowledged write. While
publishing fails, the queue is bounded (``queue_limit``); past it, its keys are forgotten and,
when Redis is back, a flush message is published instead: every peer flushes its L1 and treats
its L2 as suspect. Only if forgotten keys needed a repair are this cache's L3 keys cleared too.
While Redis answers, a burst of any size is published in batches: nothing is forgotten.

A message that cannot be read (another version, or garbage written to the stream) is counted
(``malformed``) and taken as "anything may have changed": L1 flushed, like a flush message.

Staleness bound: while Redis is reachable, another process drops its L1 copy within one
publish + one stream read of the write (milliseconds; see benchmarks/RESULTS.md); across a
disconnection, within the reconnection; in every case, within the entry's L1 lifetime.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import re
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._logging import RateLimitedLog, logger
from .stats import Counters

if TYPE_CHECKING:
    from .cache import Cache, _Remote

__all__ = ["InvalidationBus", "stream_id"]

_log = logger("invalidation")
_CLEAR = object()  # "every key": a clear
_STREAM_ID = re.compile(rb"[0-9]{1,20}-[0-9]{1,20}")


def stream_id(entry: bytes) -> tuple[int, int]:
    """A Redis stream id (``b"<ms>-<sequence>"``) as a tuple that orders like the stream."""
    ms, _, sequence = entry.partition(b"-")
    return int(ms), int(sequence or 0)


class InvalidationBus:
    """The bus of one Cache over its Redis tier ``remote`` (see the module docstring).

    ``maxlen``: messages the stream keeps (about); ``queue_limit``: keys waiting while
    publishing fails before the queue gives up on them (and every peer flushes instead);
    ``batch``: keys per message at most.
    """

    def __init__(
        self,
        cache: Cache,
        remote: _Remote,
        host: bytes,
        position_store: Any = None,
        *,
        maxlen: int = 100_000,
        queue_limit: int = 10_000,
        batch: int = 1000,
    ) -> None:
        self._cache = cache
        self._remote = remote
        self._tier: Any = remote.tier
        self.origin = secrets.token_hex(8).encode()
        self.host = host
        self._positions = position_store  # a host-local tier keeping the host's position
        self._position_key = b"\x00bus-position:" + hashlib.sha256(
            f"{getattr(self._tier, 'url', '')}|{getattr(self._tier, 'prefix', '')}".encode()
        ).hexdigest()[:32].encode()
        self.maxlen, self.queue_limit, self.batch = maxlen, queue_limit, batch
        self.counters = Counters(
            "published", "messages", "received", "applied", "malformed", "gaps", "overflows"
        )
        self._warn = RateLimitedLog(_log)
        self.position = (0, 0)  # the stream id of the last message applied, as (ms, sequence)
        self._saved = self._load_position()
        if self._positions is not None and self._saved is None:
            cache._suspect_l2()  # no record of what this host missed before we started
        self._fresh_state()

    def _fresh_state(self) -> None:
        """The queue, locks and threads: new ones at start, and in a forked child (the parent's
        threads do not exist there, and its locks may have been held at the fork)."""
        self._queue: deque[tuple[Any, bool]] = deque()  # (key or _CLEAR, repair L3 first)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._started = threading.Event()
        self._flush_pending = False  # keys were forgotten: peers must flush
        self._clear_pending = False  # ... and some of them needed an L3 repair: clear L3 first
        self._wants = 0  # times either was asked for (so a success clears only what it did)
        self._failing = False  # the last publish failed: the queue limit applies
        self._sending = False
        self._threads = [
            threading.Thread(target=self._publish_loop, name="mlcache-bus-publish", daemon=True),
            threading.Thread(target=self._read_loop, name="mlcache-bus-read", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        _live.add(self)

    def after_fork_in_child(self) -> None:
        """Called in a forked child: a new origin (the parent's messages are news here) and new
        threads, reading on from the parent's position, since the child's L1 is a copy of the
        parent's as of that position. The parent's queue stays the parent's to publish."""
        stopped = self._stopped.is_set()
        self.origin = secrets.token_hex(8).encode()
        if self.position != (0, 0):
            self._saved = b"%d-%d" % self.position
        self._fresh_state()
        if not stopped:
            self.start()
            _live.add(self)

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for what is queued to be published; False if it was
        not (at once, while publishing fails)."""
        self._wake.set()
        deadline = time.monotonic() + timeout
        while not self.idle():
            if self._failing or not self._threads[0].is_alive() or time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self) -> None:
        """Publish what is queued (up to 1 s, if Redis answers), then stop both threads: returns
        within about 3 s however Redis behaves."""
        _live.discard(self)
        self.flush(1.0)
        self._stopped.set()
        self._wake.set()
        publisher, reader = self._threads
        deadline = time.monotonic() + 2.0
        while reader.is_alive() and time.monotonic() < deadline:
            self._tier.bus_interrupt()  # ends a blocked XREAD at once (again, if it raced)
            reader.join(0.02)
        publisher.join(max(0.0, deadline - time.monotonic()))

    # -- publishing ----------------------------------------------------------------------------

    def publish(self, keys: Iterable[str], repair: bool = False) -> None:
        """Tell the other processes that ``keys`` changed; ``repair``: their L3 write or delete
        did not happen, so delete them from L3 before telling."""
        with self._lock:
            self._queue.extend((key, repair) for key in keys)
            self._limit()
        self._wake.set()

    def publish_clear(self, repair: bool = False) -> None:
        """Tell the other processes that every key changed; ``repair``: L3 was not cleared, so
        clear it first."""
        with self._lock:
            self._queue.append((_CLEAR, False))
            if repair:
                self._clear_pending = True
                self._wants += 1
        self._wake.set()

    def _limit(self) -> None:
        """(Under the lock.) While publishing fails, forget the queue past ``queue_limit``:
        peers will flush instead, and L3 is cleared if a forgotten key needed a repair."""
        if self._failing and len(self._queue) > self.queue_limit:
            self._clear_pending |= any(repair for _, repair in self._queue)
            self._flush_pending = True
            self._wants += 1
            self._queue.clear()
            self.counters.inc("overflows")

    def _publish_loop(self) -> None:
        delay = 0.05
        while not self._stopped.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            try:
                while self._send_next():
                    self._failing = False
                delay = 0.05
            except Exception as exc:  # Redis unreachable: keep the keys, try again later
                with self._lock:
                    self._failing = True
                    self._limit()
                self._warn.warning("publish", "invalidation bus: publish failed, will retry: %r", exc)
                self._stopped.wait(delay)
                delay = min(delay * 2, 1.0)
                self._wake.set()

    def _send_next(self) -> bool:
        """Publish one batch; False when there is nothing left. A failure leaves the batch
        queued (at the front), and a pending flush pending."""
        with self._lock:
            clear, flush = self._clear_pending, self._flush_pending or self._clear_pending
            wants = self._wants
            batch = [self._queue.popleft() for _ in range(min(self.batch, len(self._queue)))]
            self._sending = bool(batch) or flush
        if not self._sending:
            return False
        try:
            if clear:  # L3 may keep values older than acknowledged writes
                self._remote.guard.call("clear")
            if flush:
                self._send(None)
                with self._lock:
                    if self._wants == wants:  # (else: more was forgotten meanwhile)
                        self._clear_pending = self._flush_pending = False
            repairs = [key_ for key_, repair in batch if repair and key_ is not _CLEAR]
            if repairs:
                from .tiers.base import physical_key

                self._remote.guard.call("delete_many", [physical_key(k) for k in repairs])
            keys = [key_ for key_, _ in batch]
            if any(key_ is _CLEAR for key_ in keys):
                self._send(None)
            elif keys:
                self._send(keys)
        except Exception:
            with self._lock:
                self._queue.extendleft(reversed(batch))
                self._sending = False
            raise
        self.counters.inc("published", len(batch))
        self._sending = False
        return True

    def idle(self) -> bool:
        """Whether everything handed to ``publish`` so far is in the stream."""
        with self._lock:
            return not (self._queue or self._flush_pending or self._clear_pending or self._sending)

    def _send(self, keys: list[str] | None) -> None:
        payload = json.dumps(keys).encode()  # (json keeps any str, lone surrogates included)
        self._tier.bus_publish({b"o": self.origin, b"h": self.host, b"k": payload}, self.maxlen)
        self.counters.inc("messages")

    # -- reading -------------------------------------------------------------------------------

    def _read_loop(self) -> None:
        last: bytes | None = None
        check = True  # is ``last`` (still) in the stream? (at start, and after each failure)
        saved, delay = 0.0, 0.05
        while not self._stopped.is_set():
            try:
                if last is None:
                    last, check = self._start_position()
                if check and not self._tier.bus_has(last):
                    self._gap()
                    last = self._tier.bus_last()
                check = False
                self.position = stream_id(last)
                for entry, fields in self._tier.bus_read(last, 1.0, self.batch):
                    last = entry  # (whatever becomes of it: a message is applied once)
                    self._apply(fields)
                    self.position = stream_id(entry)
                self._started.set()
                if self._positions is not None and time.monotonic() - saved > 1.0:
                    self._save_position(last)
                    saved = time.monotonic()
                delay = 0.05
            except Exception as exc:
                if self._stopped.is_set():
                    return
                self._warn.warning("read", "invalidation bus: read failed, will reconnect: %r", exc)
                check = True
                self._stopped.wait(delay)
                delay = min(delay * 2, 1.0)

    def _start_position(self) -> tuple[bytes, bool]:
        """Where to start reading: the host's saved position (to be checked), else a message of
        our own (so that there is always a position to check after a disconnection)."""
        if self._saved is not None:
            return self._saved, True
        position = self._tier.bus_publish({b"o": self.origin, b"h": self.host, b"k": b"[]"}, self.maxlen)
        return position, False

    def _apply(self, fields: dict[bytes, bytes]) -> None:
        if fields.get(b"o") == self.origin:
            return  # our own write: already applied here
        self.counters.inc("received")
        keys = _keys(fields.get(b"k", b"[]"))
        other_host = fields.get(b"h") != self.host
        if keys is _MALFORMED:
            self.counters.inc("malformed")
            self._warn.warning("malformed", "invalidation bus: unreadable message; L1 flushed")
            keys = None
        if keys is None:
            self._cache._flush_local(l2=other_host)
        elif keys:
            self._cache._invalidate_local(keys, l2=other_host)
        self.counters.inc("applied")

    def _gap(self) -> None:
        """Messages may have been lost: flush L1, and L2 becomes suspect."""
        self._cache._flush_local(l2=False)
        self._cache._suspect_l2()
        self.counters.inc("gaps")  # (after: whoever sees the count sees the flush done)
        _log.warning("invalidation bus: messages may have been missed; L1 flushed, L2 suspect")

    def _load_position(self) -> bytes | None:
        if self._positions is None:
            return None
        try:
            position = self._positions.get(self._position_key)
        except Exception:  # unreadable L2: start afresh
            return None
        if isinstance(position, bytes) and _STREAM_ID.fullmatch(position):
            return position
        return None  # damaged: as if there were none

    def _save_position(self, position: bytes) -> None:
        try:
            self._positions.set(self._position_key, position, None)
        except Exception as exc:  # not fatal: the next start treats L2 as suspect
            self._warn.warning("position", "invalidation bus: cannot save position: %r", exc)

    def wait_started(self, timeout: float) -> bool:
        """Whether the reader has read once (tests and benchmarks wait for it)."""
        return self._started.wait(timeout)

    def stats(self) -> dict[str, int]:
        """Counters, keys waiting to be published, and whether a flush is pending (after an
        overflow, or a clear that did not reach L3)."""
        flush_pending = self._flush_pending or self._clear_pending
        return {**self.counters.snapshot(), "queued": len(self._queue), "flush_pending": int(flush_pending)}


_MALFORMED: Any = object()


def _keys(payload: bytes) -> Any:
    """A message's keys: a list of str, None for "every key", or ``_MALFORMED``."""
    try:
        keys = json.loads(payload)
    except (ValueError, TypeError):
        return _MALFORMED
    if keys is None or (isinstance(keys, list) and all(isinstance(key, str) for key in keys)):
        return keys
    return _MALFORMED


_live: weakref.WeakSet[InvalidationBus] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """At exit, publish what open caches still queue: 1 s at most in all (daemon threads
    would otherwise take the news of the last writes with them)."""
    deadline = time.monotonic() + 1.0
    for bus in list(_live):
        bus.flush(max(0.0, deadline - time.monotonic()))
