"""What the tiers store: the typed sentinels and the ``Entry`` record.

``NULL`` is what a tier stores for "the loader said there is no such thing" (a cached ``None``);
``MISSING`` is what a lookup returns for "not cached". Both are enum members, so they survive
pickling and still compare with ``is`` after a round trip through any tier.
"""

from __future__ import annotations

import enum
import math
from typing import Any, Final

__all__ = ["MISSING", "NULL", "NEVER", "Entry", "Sentinel"]

#: Absolute expiry of an entry that never expires.
NEVER: Final[float] = math.inf


class Sentinel(enum.Enum):
    """Markers that are never user values."""

    NULL = "NULL"
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return f"mlcache.{self.name}"


NULL: Final = Sentinel.NULL
MISSING: Final = Sentinel.MISSING


class Entry:
    """One cached value with its lifetime, as it travels between tiers.

    Times are absolute wall-clock seconds (``time.time()`` scale), so a lower tier can hand an
    entry to an upper one with its *remaining* lifetime. ``expires_at`` ends freshness;
    ``stale_until`` (never before ``expires_at``) ends the window in which a stale value may
    still be served while it is refreshed or while the loader fails. ``load_time`` is how long
    the value took to load (the delta of probabilistic early refresh).
    """

    __slots__ = ("value", "expires_at", "stale_until", "load_time")

    value: Any
    expires_at: float
    stale_until: float
    load_time: float

    def __init__(
        self,
        value: Any,
        expires_at: float = NEVER,
        stale_until: float | None = None,
        load_time: float = 0.0,
    ) -> None:
        self.value = value
        self.expires_at = expires_at
        self.stale_until = expires_at if stale_until is None or stale_until < expires_at else stale_until
        self.load_time = load_time

    @property
    def is_null(self) -> bool:
        """True when this entry is a cached "not found"."""
        return self.value is NULL

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entry):
            return NotImplemented
        return (
            self.value == other.value
            and self.expires_at == other.expires_at
            and self.stale_until == other.stale_until
            and self.load_time == other.load_time
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Entry({self.value!r}, expires_at={self.expires_at!r}, "
            f"stale_until={self.stale_until!r}, load_time={self.load_time!r})"
        )
