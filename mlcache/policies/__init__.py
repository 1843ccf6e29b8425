"""Pure-Python eviction policies (the reference twins of the compiled ones).

``POLICIES`` maps a policy name to its class. A tier looks its policy up here (or in the compiled
module's ``POLICIES``), so adding a policy means adding a class and a registry entry, nothing in
the tiers.
"""

from __future__ import annotations

from typing import Any

from .._checks import check_choice
from .base import Policy
from .lfu import LFUPolicy
from .lru import FIFOPolicy, LRUPolicy
from .s3fifo import S3FIFOPolicy
from .sieve import SievePolicy
from .wtinylfu import WTinyLFUPolicy

__all__ = [
    "POLICIES",
    "make_policy",
    "FIFOPolicy",
    "LFUPolicy",
    "LRUPolicy",
    "Policy",
    "S3FIFOPolicy",
    "SievePolicy",
    "WTinyLFUPolicy",
]

POLICIES: dict[str, type[Policy]] = {
    cls.name: cls
    for cls in (LRUPolicy, FIFOPolicy, LFUPolicy, SievePolicy, S3FIFOPolicy, WTinyLFUPolicy)
}


def make_policy(name: str, registry: dict[str, Any], maxsize: int) -> Any:
    """Instantiate the policy called ``name`` from ``registry`` (pure or compiled) for a
    storage of at most ``maxsize`` entries."""
    return registry[check_choice("policy", name, registry)](maxsize)
