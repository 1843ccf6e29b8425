"""Physical keys: the bytes that name a logical key (``str``) in L2 and L3.

The logical key in UTF-8 (the bytes of a bytes key); a key longer than ``MAX_KEY_BYTES``, or
one that starts with the hashed-key marker or with a NUL byte, is replaced by the marker and
its SHA-256, and so is, under a name of its own, a ``str`` that no bytes key decodes to (lone
surrogates). So any key length works, distinct keys never share a physical key, and names that
start with NUL are free for a tier's own bookkeeping (leases).

This is the pure twin; the compiled one (``mlcache._speedups.physical_key``) serves ordinary
ASCII keys itself and hands every other key to this one.
"""

from __future__ import annotations

import hashlib

__all__ = ["MAX_KEY_BYTES", "physical_key"]

MAX_KEY_BYTES = 250
_HASHED = b"#sha256:"


def physical_key(key: str) -> bytes:
    """The bytes that name ``key`` in a remote tier: distinct keys never share them (up to
    SHA-256 collisions), whatever they hold, lone surrogates included.

    A key that some bytes key decodes to (UTF-8 with surrogateescape, see ``Cache``) is named
    by those bytes, so ordinary keys stay readable in Redis; it is hashed, to the marker and
    its SHA-256, when it is long, starts with the marker or starts with NUL. Every other
    ``str`` (it holds surrogates that no bytes decode to, e.g. ``"\\udcc3\\udca9"``, whose
    escaped bytes are the UTF-8 of ``"é"``) is named by the marker, ``u`` and the SHA-256 of
    its lossless UTF-8 with surrogatepass: ``u`` is not a hex digit, so no other key's name
    looks like it.
    """
    if key.isascii():  # the common case: ASCII is its own bytes key
        raw = key.encode()
    else:
        try:
            raw = key.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raw = None
        if raw is None or raw.decode("utf-8", "surrogateescape") != key:
            digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
            return _HASHED + b"u" + digest.encode()
    if len(raw) > MAX_KEY_BYTES or raw.startswith(_HASHED) or raw[:1] == b"\x00":
        raw = _HASHED + hashlib.sha256(raw).hexdigest().encode()
    return raw
