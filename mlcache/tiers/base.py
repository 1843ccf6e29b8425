"""What L2 and L3 have in common: tiers that hold envelopes (bytes) outside the process.

A remote tier only moves bytes: ``get``/``get_many``/``set``/``set_many``/``delete``/``clear``
and their ``a``-prefixed async twins take *physical* keys (bytes) and envelopes, and ``set``
takes the seconds the bytes may be kept (None: no limit), after which the store reaps them.
Every ``set`` and ``delete`` also takes away the key's lease, if a load holds one.
Encoding, decoding, the logical lifetime (absolute, in the envelope, judged by the Cache's
clock) and error handling live in the ``Cache``, once for every tier.

Physical keys: see ``mlcache.tiers.physical`` (``physical_key`` here is the compiled twin
when there is one).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from .._checks import check_choice, check_positive_int, check_ttl
from .._impl import EnvelopeFormat, physical_key
from ..codecs import CODECS
from ..errors import ConfigurationError
from ..resilience import CircuitBreaker, Retry
from .physical import MAX_KEY_BYTES

__all__ = ["MAX_KEY_BYTES", "RemoteTier", "physical_key"]


class RemoteTier:
    """Base of L2/L3 tiers: settings common to both, and the envelope format once bound.

    ``ttl`` caps an entry's lifetime in this tier (it only shortens). ``codec`` is
    ``"pickle"``, ``"msgpack"`` or ``"json"``; by default pickle when the tier has a secret,
    else the tier's safe default. ``secret`` signs entries (also taken from the Cache, or the
    ``MLCACHE_SECRET`` environment variable); without one, an entry's tag is an unkeyed
    digest, which detects corruption, not forgery (see ``mlcache.codecs``).
    ``max_value_size`` (bytes of envelope): larger values skip this tier (counted as
    ``oversize``). ``on_error``: ``"skip"`` (fail-safe: a failing operation is counted and
    logged, and the call goes on without this tier) or ``"raise"`` (fail-fast: ``TierError``
    naming the tier). ``retries``: attempts after a
    refused or reset connection (not after a timeout), with jittered backoff. ``breaker``: the
    tier's ``CircuitBreaker`` (default: open after 5 failures in 10 s, probe after 5 s).
    """

    name: ClassVar[str]
    level: ClassVar[int]
    #: Whether the tier offers leases (``lease_acquire`` ...): cross-process single-flight.
    supports_leases: ClassVar[bool] = False
    #: Whether the tier is shared by the processes of one host only (L2), not by every host.
    host_local: ClassVar[bool] = False

    def __init__(
        self,
        *,
        ttl: float | None = None,
        codec: str | None = None,
        secret: bytes | str | None = None,
        compress_threshold: int | None = 1024,
        max_value_size: int | None = None,
        unsafe_pickle: bool = False,
        on_error: str = "skip",
        retries: int = 1,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.ttl = check_ttl("ttl", ttl)
        self.on_error = check_choice("on_error", on_error, ("skip", "raise"))
        self.retry = Retry(retries)
        if breaker is not None and not isinstance(breaker, CircuitBreaker):
            raise ConfigurationError(f"breaker must be a CircuitBreaker, got {type(breaker).__name__}")
        self.breaker = breaker or CircuitBreaker()
        if codec is not None and codec not in CODECS:
            allowed = ", ".join(repr(c) for c in sorted(CODECS))
            raise ConfigurationError(f"codec must be one of {allowed}, got {codec!r}")
        if compress_threshold is not None:
            check_positive_int("compress_threshold", compress_threshold)
        if max_value_size is not None:
            check_positive_int("max_value_size", max_value_size)
        self._codec = codec
        self._secret = secret
        self._compress_threshold = compress_threshold
        self.max_value_size = max_value_size
        self._unsafe_pickle = unsafe_pickle
        self.format: Any = None  # an EnvelopeFormat (compiled or pure), once bound

    def bind(self, secret: bytes | str | None) -> None:
        """Fix the envelope format, given the Cache's secret (called once by the Cache)."""
        if self.format is not None:
            return
        secret = (
            self._secret
            or secret
            or os.environ.get("MLCACHE_SECRET")
            or self._default_secret()
        )
        codec = self._codec or ("pickle" if secret else self._unsigned_codec())
        self.format = EnvelopeFormat(
            codec,
            secret,
            compress_threshold=self._compress_threshold,
            unsafe_pickle=self._unsafe_pickle,
        )

    def _default_secret(self) -> bytes | None:
        """A secret this tier can provide itself (DiskTier: a key file), or None."""
        return None

    def _unsigned_codec(self) -> str:
        """The codec used when no secret is available: one that cannot run code on load."""
        return "json"

    # Byte operations, by physical key; subclasses implement both faces.

    def get(self, key: bytes) -> bytes | None:
        raise NotImplementedError

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        raise NotImplementedError

    def set(self, key: bytes, data: bytes, ttl: float | None) -> None:
        raise NotImplementedError

    def set_many(self, items: list[tuple[bytes, bytes, float | None]]) -> None:
        raise NotImplementedError

    def fill(self, key: bytes, data: bytes, ttl: float | None, since: float) -> bool:
        """A copy-up of bytes read from a lower tier starting at ``since`` (``time.time()``):
        ``set`` only if the key holds no value and (where the tier keeps tombstones: L2) was
        not deleted since, and leave its lease alone; True if written. Redis keeps no
        tombstones: a copy-up into L3 from a tier below it can bring back a value deleted
        after the read (only with L3 above L2, an unusual order)."""
        raise NotImplementedError

    def fill_many(self, items: list[tuple[bytes, bytes, float | None]], since: float) -> int:
        """``fill`` of each item; the number written."""
        raise NotImplementedError

    def delete(self, key: bytes) -> bool:
        raise NotImplementedError

    def delete_many(self, keys: list[bytes]) -> int:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # Leases (when ``supports_leases``): one holder per key, for ``ttl`` seconds at most.

    def lease_acquire(self, key: bytes, token: bytes, ttl: float) -> bytes | None:
        """Take the key's lease: None if taken, else the current holder's token (b"" if the
        lease vanished meanwhile)."""
        raise NotImplementedError

    def lease_wait(self, key: bytes, holder: bytes, timeout: float) -> bool:
        """Wait, for at most about a second, for ``holder`` to release the lease; True if it
        did. A lease that expires (its holder died) may be noticed only when the wait ends
        (Redis) or at once (disk): either way the caller re-reads and tries to take it."""
        raise NotImplementedError

    def lease_release(self, key: bytes, token: bytes) -> None:
        """Release the lease if ``token`` still holds it, and wake its waiters."""
        raise NotImplementedError

    def lease_renew(self, key: bytes, token: bytes, ttl: float) -> bool:
        """Extend the lease to ``ttl`` seconds from now if ``token`` still holds it (a load
        that runs long keeps its lease); False if it does not. Sync only: the Cache renews
        from a thread of its own."""
        raise NotImplementedError

    def set_under_lease(self, key: bytes, data: bytes, ttl: float | None, token: bytes) -> bool:
        """Write only if ``token`` still holds the lease (compare-and-set), then release it;
        False if the lease was lost (the key was written or deleted meanwhile)."""
        raise NotImplementedError

    async def aget(self, key: bytes) -> bytes | None:
        raise NotImplementedError

    async def aget_many(self, keys: list[bytes]) -> list[bytes | None]:
        raise NotImplementedError

    async def aset(self, key: bytes, data: bytes, ttl: float | None) -> None:
        raise NotImplementedError

    async def aset_many(self, items: list[tuple[bytes, bytes, float | None]]) -> None:
        raise NotImplementedError

    async def afill(self, key: bytes, data: bytes, ttl: float | None, since: float) -> bool:
        raise NotImplementedError

    async def afill_many(self, items: list[tuple[bytes, bytes, float | None]], since: float) -> int:
        raise NotImplementedError

    async def adelete(self, key: bytes) -> bool:
        raise NotImplementedError

    async def adelete_many(self, keys: list[bytes]) -> int:
        raise NotImplementedError

    async def aclear(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def alease_acquire(self, key: bytes, token: bytes, ttl: float) -> bytes | None:
        raise NotImplementedError

    async def alease_wait(self, key: bytes, holder: bytes, timeout: float) -> bool:
        raise NotImplementedError

    async def alease_release(self, key: bytes, token: bytes) -> None:
        raise NotImplementedError

    async def aset_under_lease(
        self, key: bytes, data: bytes, ttl: float | None, token: bytes
    ) -> bool:
        raise NotImplementedError

    def _describe(self) -> dict[str, Any]:
        return {"ttl": self.ttl}

    def __repr__(self) -> str:  # never shows a secret
        fields = ", ".join(f"{k}={v!r}" for k, v in self._describe().items() if v is not None)
        return f"{type(self).__name__}({fields})"
