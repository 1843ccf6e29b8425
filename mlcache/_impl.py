"""Pick the compiled twins (``mlcache._speedups``) or the pure-Python ones.

``MLCACHE_NO_EXTENSIONS=1`` (or ``MLCACHE_PURE_PYTHON=1``) forces the pure twins; so does an
install without a C compiler. ``COMPILED`` tells which set is active. The pure classes stay
importable under their own modules (``mlcache.tiers.memory``, ``mlcache.policies``,
``mlcache.codecs``, ``mlcache.tiers.physical``, ``mlcache._drive``).
"""

import os

__all__ = ["COMPILED", "POLICIES", "EnvelopeFormat", "HitPath", "MemoryTier", "physical_key", "run"]

if os.environ.get("MLCACHE_NO_EXTENSIONS") or os.environ.get("MLCACHE_PURE_PYTHON"):
    _speedups = None
else:
    try:
        from . import _speedups
    except ImportError:  # built without a compiler
        _speedups = None

COMPILED = _speedups is not None

if _speedups is not None:
    from ._speedups import POLICIES, EnvelopeFormat, HitPath, MemoryTier, physical_key, run
else:
    from ._drive import run
    from .codecs import EnvelopeFormat
    from .decorators import HitPath
    from .policies import POLICIES
    from .tiers.memory import MemoryTier
    from .tiers.physical import physical_key
