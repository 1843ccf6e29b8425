"""How entries become bytes in L2 and L3: codecs, compression, signing and the envelope.

Envelope (version 1), little-endian::

    magic "ML" | version u8 | flags u8 | codec u8 | reserved u8 |
    expires_at f64 | stale_until f64 | written_at f64 | load_time f32 |
    payload ... | tag (16 bytes)

``flags``: NULL (a cached "not found"; no payload), COMPRESSED (zlib), SIGNED. The tag is a
keyed BLAKE2b MAC (RFC 7693) of the physical key, the header and the payload when the tier has
a secret (SIGNED), otherwise an **unkeyed** BLAKE2b digest. Binding the key means that another
key's valid bytes, copied under this key, read as a miss; keying it means that bytes written by
anyone without the secret read as a miss. A reader trusts nothing in the envelope before the tag
checks out, and a codec that can execute code on load (pickle) is only ever used for SIGNED
envelopes, unless the tier was explicitly built with ``unsafe_pickle=True``.

The unkeyed digest (L3 without a secret; L2 always has one, from its key file) detects
corruption, not forgery: anyone who can write to the store can compute it, so they can plant
entries that read back as valid values. What keeps that from running code is the codec:
msgpack and JSON only build data, and pickle is refused without a secret unless the tier opts
out with ``unsafe_pickle=True`` (``envelope_settings``, for both twins; the reader decodes with
its own codec, never the one an envelope names).
"""

from __future__ import annotations

import datetime
import decimal
import functools
import hashlib
import hmac
import json
import math
import pickle
import struct
import sys
import uuid
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Final

from ._checks import check_choice, check_positive_int
from .entry import NULL, Entry
from .errors import ConfigurationError, SerializationError

__all__ = [
    "CODECS",
    "Codec",
    "CorruptEntry",
    "EnvelopeFormat",
    "JsonCodec",
    "MsgpackCodec",
    "PickleCodec",
    "MAX_DECOMPRESSED_SIZE",
    "envelope_settings",
    "encode_error",
    "inflate",
    "not_bytes",
]

MAGIC: Final = b"ML"
VERSION: Final = 1
_HEADER = struct.Struct("<2sBBBxdddf")
_TAG_SIZE: Final = 16
FLAG_NULL: Final = 1
FLAG_COMPRESSED: Final = 2
FLAG_SIGNED: Final = 4
MAX_DECOMPRESSED_SIZE: Final = 64 * 1024 * 1024  # what a compressed payload may expand to


class CorruptEntry(Exception):
    """Bytes in a tier that are not a valid envelope for this key and this tier's settings."""


class Codec:
    """Turns values into bytes (``dumps``) and back (``loads``); ``executes_code``: loading may
    run arbitrary code. ``dumps``/``loads`` are attributes holding C-level callables where the
    library has them, so a decode costs no Python frame of ours."""

    id: int
    name: str
    executes_code: bool = False
    dumps: Callable[[Any], bytes]
    loads: Callable[[bytes | memoryview], Any]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class PickleCodec(Codec):
    """Any picklable Python value, types intact. Only ever loaded from signed envelopes."""

    id = 1
    name = "pickle"
    executes_code = True

    def __init__(self) -> None:
        self.dumps = functools.partial(pickle.dumps, protocol=pickle.HIGHEST_PROTOCOL)
        self.loads = pickle.loads  # callers verified the tag first (keyed, unless unsafe_pickle)


class JsonCodec(Codec):
    """JSON: str keys only; tuples come back as lists, bytes and sets are refused."""

    id = 2
    name = "json"

    def __init__(self) -> None:
        encode = json.JSONEncoder(separators=(",", ":")).encode
        self.dumps = lambda value: encode(value).encode()
        self.loads = lambda data: json.loads(bytes(data))


class MsgpackCodec(Codec):
    """MessagePack (the ``msgpack`` extra), keeping types exact: what it reads back is the type
    that was written, so a value does not change type with the tier that served it. Besides
    None, bool, int, float, str, bytes, list and dict, it keeps tuple, set, frozenset,
    datetime, date, time, timedelta, Decimal, UUID and ints beyond 64 bits (as extension
    types, each decoded into that one type from plain data: nothing else can be built, no code
    runs). Aware datetimes and times come back with a fixed UTC offset (a ``datetime.timezone``)
    for their zone; a bytearray comes back as bytes. Any other type, subclasses of these
    included (an IntEnum, an OrderedDict), is refused with ``SerializationError``: give the
    tier a secret to use pickle for those."""

    id = 4  # (3 was msgpack with tuples read back as lists: such entries now read as misses)
    name = "msgpack"

    def __init__(self) -> None:
        try:
            import msgpack
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "codec 'msgpack' needs the msgpack package: pip install 'mlcache[msgpack]'"
            ) from exc
        ext = msgpack.ExtType
        decoders = {code: decode for code, _, decode in _MSGPACK_EXT.values()}

        def default(value: Any) -> Any:  # (msgpack calls it for types it has no form for)
            encoder = _MSGPACK_EXT.get(type(value))
            if encoder is None:
                raise TypeError(
                    f"msgpack keeps no {type(value).__name__} exactly (give the tier a secret to "
                    "use pickle)"
                )
            code, encode, _ = encoder
            return ext(code, encode(value, self.dumps))

        def ext_hook(code: int, data: bytes) -> Any:
            decode = decoders.get(code)
            if decode is None:
                raise ValueError(f"unknown msgpack extension type {code}")
            return decode(data, self.loads)

        # strict_types: a tuple (or a subclass of anything) goes to ``default``, not to its base.
        self.dumps = functools.partial(
            msgpack.packb, use_bin_type=True, strict_types=True, default=default
        )
        unpackb = msgpack.unpackb
        # A frame of ours is cheaper here than a partial, which merges its keywords into a new
        # dict at every call (every msgpack read passes here).
        self.loads = lambda data: unpackb(data, raw=False, strict_map_key=False, ext_hook=ext_hook)


def _items(value: Any, dumps: Callable[[Any], bytes]) -> bytes:
    return dumps(list(value))


def _text(value: Any, dumps: Callable[[Any], bytes]) -> bytes:
    return str(value).encode()


def _iso(value: Any, dumps: Callable[[Any], bytes]) -> bytes:
    return value.isoformat().encode()


def _clock(value: Any, dumps: Callable[[Any], bytes]) -> bytes:
    return dumps([value.isoformat(), value.fold])  # (fold: which of a repeated local hour)


def _from_clock(kind: Any) -> Callable[..., Any]:
    def decode(data: bytes, loads: Callable[[bytes], Any]) -> Any:
        text, fold = loads(data)
        return kind.fromisoformat(text).replace(fold=fold)

    return decode


#: MsgpackCodec's extension types: python type -> (code, encode(value, dumps), decode(data, loads)).
_MSGPACK_EXT: Final[dict[type, tuple[int, Callable[..., bytes], Callable[..., Any]]]] = {
    tuple: (1, _items, lambda data, loads: tuple(loads(data))),
    set: (2, _items, lambda data, loads: set(loads(data))),
    frozenset: (3, _items, lambda data, loads: frozenset(loads(data))),
    datetime.datetime: (4, _clock, _from_clock(datetime.datetime)),
    datetime.date: (5, _iso, lambda data, loads: datetime.date.fromisoformat(data.decode())),
    datetime.time: (6, _clock, _from_clock(datetime.time)),
    datetime.timedelta: (
        7,
        lambda value, dumps: dumps([value.days, value.seconds, value.microseconds]),
        lambda data, loads: datetime.timedelta(*loads(data)),
    ),
    decimal.Decimal: (8, _text, lambda data, loads: decimal.Decimal(data.decode())),
    uuid.UUID: (9, lambda value, dumps: value.bytes, lambda data, loads: uuid.UUID(bytes=data)),
    int: (10, _text, lambda data, loads: int(data)),  # (only those beyond msgpack's 64 bits)
}


CODECS: Final[dict[str, type[Codec]]] = {
    c.name: c for c in (PickleCodec, JsonCodec, MsgpackCodec)
}


def envelope_settings(
    codec: str, secret: bytes | str | None, unsafe_pickle: bool, max_decompressed_size: int
) -> tuple[Codec, bytes | None]:
    """Validate an envelope format's settings; return its codec and its MAC key (BLAKE2b takes
    keys of up to 64 bytes: longer secrets are hashed down to 64), or None when unsigned."""
    check_positive_int("max_decompressed_size", max_decompressed_size)
    if max_decompressed_size > sys.maxsize:  # (the compiled twin holds it in a Py_ssize_t)
        raise ConfigurationError(f"max_decompressed_size must be <= {sys.maxsize}")
    codec_obj = CODECS[check_choice("codec", codec, CODECS)]()
    if secret is not None and not isinstance(secret, (bytes, str)):
        raise ConfigurationError("secret must be bytes or str")
    if secret is not None and len(secret) < 16:
        raise ConfigurationError("secret must be at least 16 bytes long")
    if codec_obj.executes_code and secret is None and not unsafe_pickle:
        raise ConfigurationError(
            "codec 'pickle' needs a secret to sign entries (bytes that anyone else wrote "
            "could run code when unpickled); give secret=..., or use codec='msgpack' or "
            "'json', or opt out with unsafe_pickle=True"
        )
    if secret is None:
        return codec_obj, None
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    return codec_obj, raw if len(raw) <= 64 else hashlib.sha512(raw).digest()


def encode_error(codec: Codec, value: Any, exc: Exception) -> SerializationError:
    """The error for a value that ``codec`` cannot encode."""
    return SerializationError(
        f"cannot encode a value of type {type(value).__name__} with codec {codec.name!r}: {exc}"
    )


def not_bytes(data: Any) -> CorruptEntry:
    """The error for something a tier handed back that is not ``bytes`` (a tier of someone
    else's, a broken client): it reads as a corrupt entry, never as a TypeError."""
    return CorruptEntry(f"not bytes but {type(data).__name__}")


def inflate(payload: bytes | memoryview, limit: int) -> bytes:
    """The zlib-compressed ``payload`` decompressed, if it fits in ``limit`` bytes; else (a
    zip bomb: a few KB that expand to gigabytes) ``CorruptEntry``, before more than ``limit``
    bytes are allocated. A stream cut short is ``CorruptEntry`` too."""
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(payload, limit)
    except zlib.error as exc:
        raise CorruptEntry(f"payload does not decompress: {exc}") from exc
    # Input left over means the output was cut at the limit; no end of stream means the
    # output was cut at the limit too, or the stream itself was.
    if inflater.unconsumed_tail or not inflater.eof:
        raise CorruptEntry(f"compressed payload expands beyond {limit} bytes (or is cut short)")
    return data


class EnvelopeFormat:
    """One tier's way of packing entries: a codec, an optional secret and compression (the
    pure twin of ``mlcache._speedups.EnvelopeFormat``).

    ``pack`` raises ``SerializationError`` for values the codec cannot encode; ``unpack``
    raises ``CorruptEntry`` for anything that is not a valid envelope written for this key by
    a writer with the same secret (it never returns planted data and never runs planted code),
    ``data`` that is not ``bytes`` included, and for a compressed payload that would expand
    beyond ``max_decompressed_size`` bytes (``pack`` compresses only payloads up to that size,
    so every envelope it writes reads back).
    """

    def __init__(
        self,
        codec: str,
        secret: bytes | str | None,
        *,
        compress_threshold: int | None = 1024,
        unsafe_pickle: bool = False,
        max_decompressed_size: int = MAX_DECOMPRESSED_SIZE,
    ) -> None:
        self.codec, mac_key = envelope_settings(codec, secret, unsafe_pickle, max_decompressed_size)
        # The tag's hasher, keyed once: copying it is cheaper than keying it for every entry.
        self._mac = hashlib.blake2b(digest_size=_TAG_SIZE, key=mac_key or b"")
        self.signed = secret is not None
        self._flags = FLAG_SIGNED if secret is not None else 0
        self.compress_threshold = compress_threshold
        self.unsafe_pickle = unsafe_pickle
        self.max_decompressed_size = max_decompressed_size

    def _tag(self, key: bytes, body: bytes | memoryview) -> bytes:
        """The tag of ``body`` under ``key``: a keyed MAC when the format has a secret, else an
        unkeyed digest, which detects corruption, not forgery (see the module docstring)."""
        h = self._mac.copy()
        h.update(len(key).to_bytes(4, "little") + key)
        h.update(body)
        return h.digest()

    def pack(self, key: bytes, entry: Entry, now: float) -> bytes:
        """The envelope of ``entry`` stored under physical key ``key``."""
        flags = self._flags
        if entry.value is NULL:
            flags |= FLAG_NULL
            payload = b""
        else:
            try:
                payload = self.codec.dumps(entry.value)
            except Exception as exc:
                raise encode_error(self.codec, entry.value, exc) from exc
            threshold = self.compress_threshold
            if threshold is not None and threshold <= len(payload) <= self.max_decompressed_size:
                packed = zlib.compress(payload, 1)
                if len(packed) < len(payload):
                    payload, flags = packed, flags | FLAG_COMPRESSED
        header = _HEADER.pack(
            MAGIC, VERSION, flags, self.codec.id,
            entry.expires_at, entry.stale_until, now, entry.load_time,
        )  # fmt: skip
        body = header + payload
        return body + self._tag(key, body)

    def unpack(self, key: bytes, data: object) -> tuple[Entry, float]:
        """``(entry, written_at)`` from the envelope ``data`` read under physical key ``key``."""
        if not isinstance(data, bytes):
            raise not_bytes(data)
        if len(data) < _HEADER.size + _TAG_SIZE:
            raise CorruptEntry("too short")
        magic, version, flags, codec_id, expires, stale, written, load = _HEADER.unpack_from(data)
        if magic != MAGIC or version != VERSION:
            raise CorruptEntry("not an mlcache envelope (or another format version)")
        if bool(flags & FLAG_SIGNED) != self.signed:
            raise CorruptEntry("signed by a writer with other settings")
        view = memoryview(data)
        if not hmac.compare_digest(view[-_TAG_SIZE:], self._tag(key, view[:-_TAG_SIZE])):
            raise CorruptEntry("tag mismatch (corrupt, planted, or copied from another key)")
        if not (stale >= expires and not math.isnan(expires)):
            raise CorruptEntry("inconsistent lifetime")
        if flags & FLAG_NULL:
            return Entry(NULL, expires, stale, load), written
        if codec_id != self.codec.id:
            raise CorruptEntry(f"written with codec id {codec_id}, this tier reads {self.codec.name}")
        payload = view[_HEADER.size : -_TAG_SIZE]
        if flags & FLAG_COMPRESSED:
            payload = inflate(payload, self.max_decompressed_size)
        try:
            value = self.codec.loads(payload)
        except Exception as exc:
            raise CorruptEntry(f"payload does not decode: {type(exc).__name__}") from exc
        return Entry(value, expires, stale, load), written

    def unpack_many(self, keys: Sequence[bytes], blobs: Sequence[object]) -> list[Any]:
        """``unpack`` of each blob under its key, in one call: ``(entry, written_at)``, None
        for a None blob (nothing stored), or the ``CorruptEntry`` (returned, not raised)."""
        if len(keys) != len(blobs):
            raise ValueError(f"{len(keys)} keys but {len(blobs)} blobs")
        out: list[Any] = []
        for key, data in zip(keys, blobs):
            if data is None:
                out.append(None)
                continue
            try:
                out.append(self.unpack(key, data))
            except CorruptEntry as exc:
                out.append(exc)
        return out

    def __repr__(self) -> str:  # never shows the secret
        return f"EnvelopeFormat(codec={self.codec.name!r}, signed={self.signed})"
