"""The exceptions mlcache raises, as one tree.

::

    CacheError                      base of everything mlcache raises on purpose
    ├── ConfigurationError          a bad argument or setting (also a ValueError)
    ├── InvalidKeyError             a key that is not str or bytes (also a TypeError)
    ├── SerializationError          a value that the codec cannot encode (also a TypeError)
    ├── TierError                   a tier failed and the tier is in fail-fast mode
    │   └── TierTimeout             ... because an operation exceeded its timeout
    └── LoadError                   single-flight could not produce a value
        ├── ReentrantLoadError      a loader asked for its own key (would deadlock)
        ├── LockTimeout             a waiter gave up on another loader (no stale to serve)
        └── BulkheadFull            the cache's limit on concurrent loads was reached

Exceptions raised by a user's loader pass through unchanged.
"""

from __future__ import annotations

__all__ = [
    "BulkheadFull",
    "CacheError",
    "ConfigurationError",
    "InvalidKeyError",
    "LoadError",
    "LockTimeout",
    "ReentrantLoadError",
    "SerializationError",
    "TierError",
    "TierTimeout",
]


class CacheError(Exception):
    """Base class of every error mlcache raises on purpose."""


class ConfigurationError(CacheError, ValueError):
    """A bad argument or setting; the message names it, the bad value and what is allowed."""


class InvalidKeyError(CacheError, TypeError):
    """A cache key that is not ``str`` or ``bytes``."""


class SerializationError(CacheError, TypeError):
    """A value could not be encoded by the tier's codec; no tier was modified."""


class TierError(CacheError):
    """A tier operation failed (raised only by tiers in fail-fast mode)."""

    def __init__(self, tier: str, message: str) -> None:
        super().__init__(f"{tier}: {message}")
        self.tier = tier


class TierTimeout(TierError):
    """A tier operation exceeded its timeout."""


class LoadError(CacheError):
    """Single-flight loading could not produce a value."""


class ReentrantLoadError(LoadError, RuntimeError):
    """A loader asked the cache for the key it is loading; waiting would deadlock."""


class LockTimeout(LoadError, TimeoutError):
    """A waiter gave up waiting for another caller's load and had nothing stale to serve."""


class BulkheadFull(LoadError):
    """The limit on concurrent loads was reached and the call was configured to fail fast."""
