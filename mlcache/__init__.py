"""mlcache: a multi-level cache (in-process L1, local-disk L2, Redis L3) behind one API."""

from ._impl import COMPILED, MemoryTier
from .cache import Cache, Lookup
from .decorators import cached
from .entry import MISSING, NULL, Entry
from .errors import (
    BulkheadFull,
    CacheError,
    ConfigurationError,
    InvalidKeyError,
    LoadError,
    LockTimeout,
    ReentrantLoadError,
    SerializationError,
    TierError,
    TierTimeout,
)
from .settings import configure, get_cache
from .tiers.disk import DiskTier
from .tiers.redis import RedisTier

__version__ = "0.1.0"

__all__ = [
    "COMPILED",
    "MISSING",
    "NULL",
    "BulkheadFull",
    "Cache",
    "CacheError",
    "ConfigurationError",
    "DiskTier",
    "Entry",
    "InvalidKeyError",
    "LoadError",
    "LockTimeout",
    "Lookup",
    "MemoryTier",
    "RedisTier",
    "ReentrantLoadError",
    "SerializationError",
    "TierError",
    "TierTimeout",
    "__version__",
    "cached",
    "configure",
    "get_cache",
]
