"""The eviction-policy protocol shared by the L1 tier and the trace simulator.

A policy is created for a storage of at most ``maxsize`` entries (policies with segments or
sketches size them from it) and decides *which* entry leaves and nothing else (as in Caffeine and cachetools, the policy
is kept apart from the data). It knows entries only by their *slot*, a small integer that the
storage (``MemoryTier`` or the simulator) allocates; the storage owns keys, values, expiry and
locking. The storage calls, in this order of life:

- ``grow(capacity)`` before it uses slots ``0 .. capacity-1`` (capacity only increases);
- ``evict() -> slot`` when it is full and a *new* key needs room: the policy picks the victim,
  forgets it and returns it (evict-before-insert, as libCacheSim and cachetools do);
- ``on_insert(slot, h)`` after a new entry took ``slot``; ``h`` is the key's hash (the identity
  that ghost lists and frequency sketches remember after the entry has gone);
- ``on_hit(slot)`` on a read hit; ``on_update(slot)`` when an entry's value is replaced;
- ``on_remove(slot)`` when an entry leaves for another reason (delete, expiry);
- ``reset()`` to forget everything.

Every policy has a compiled twin in ``mlcache._speedups`` with the same name and behaviour.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["Policy"]


class Policy:
    """Base class: a policy that remembers nothing (subclasses override what they need)."""

    name: ClassVar[str] = ""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize

    def grow(self, capacity: int) -> None:
        """Prepare for slots up to ``capacity - 1``."""

    def on_insert(self, slot: int, h: int) -> None:
        """A new entry was stored in ``slot``; ``h`` is its key's hash."""

    def on_hit(self, slot: int) -> None:
        """The entry in ``slot`` was read."""

    def on_update(self, slot: int) -> None:
        """The entry in ``slot`` got a new value (by default, counts as a use)."""
        self.on_hit(slot)

    def on_remove(self, slot: int) -> None:
        """The entry in ``slot`` left without being evicted (delete or expiry)."""

    def evict(self) -> int:
        """Choose a victim among the stored slots, forget it and return it (-1 if none)."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget every slot."""

    def check(self, live: set[int]) -> None:
        """Raise ``AssertionError`` unless the policy tracks exactly the slots in ``live``."""
        raise NotImplementedError

    def call(self, method: str, *args: int) -> int | None:
        """Call protocol method ``method`` by name (as the compiled twin's ``call``, whose
        protocol methods are C-level): for tests that drive both twins alike."""
        if method not in _PROTOCOL:
            raise ValueError(f"not a protocol method: {method!r}")
        return getattr(self, method)(*args)  # type: ignore[no-any-return]


_PROTOCOL = frozenset(["grow", "on_insert", "on_hit", "on_update", "on_remove", "evict", "reset"])
