# The compiled envelope: twin of mlcache.codecs.EnvelopeFormat (read that module's docstring for
# the format). Same bytes out, same checks in; the tag is computed with the vendored BLAKE2b
# reference code instead of a hashlib object per entry.

from libc.math cimport isnan
from libc.string cimport memcpy
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE

import zlib

from mlcache.codecs import (CorruptEntry, MAX_DECOMPRESSED_SIZE, encode_error, envelope_settings,
                            inflate, not_bytes)
from mlcache.entry import NULL as NULL_VALUE  # (NULL is C's NULL in Cython)

cdef extern from "mlblake2.h":
    ctypedef struct blake2b_state:
        pass
    int blake2b_init(blake2b_state* S, uint8_t outlen) nogil
    int blake2b_init_key(blake2b_state* S, uint8_t outlen, const void* key, uint8_t keylen) nogil
    int blake2b_update(blake2b_state* S, const uint8_t* data, uint64_t inlen) nogil
    int blake2b_final(blake2b_state* S, uint8_t* out, uint8_t outlen) nogil

cdef enum:
    _HEADER_SIZE = 34
    _TAG = 16
    _F_NULL = 1
    _F_COMPRESSED = 2
    _F_SIGNED = 4
    _FORMAT_VERSION = 1


cdef inline void _put_u64(uint8_t* p, uint64_t v) noexcept nogil:
    cdef int i
    for i in range(8):
        p[i] = <uint8_t>(v >> (8 * i))


cdef inline uint64_t _get_u64(const uint8_t* p) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    for i in range(8):
        v |= (<uint64_t>p[i]) << (8 * i)
    return v


cdef inline void _put_f64(uint8_t* p, double d) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, &d, 8)
    _put_u64(p, v)


cdef inline double _get_f64(const uint8_t* p) noexcept nogil:
    cdef uint64_t v = _get_u64(p)
    cdef double d
    memcpy(&d, &v, 8)
    return d


cdef inline void _put_f32(uint8_t* p, float f) noexcept nogil:
    cdef uint32_t v
    cdef int i
    memcpy(&v, &f, 4)
    for i in range(4):
        p[i] = <uint8_t>(v >> (8 * i))


cdef inline float _get_f32(const uint8_t* p) noexcept nogil:
    cdef uint32_t v = 0
    cdef float f
    cdef int i
    for i in range(4):
        v |= (<uint32_t>p[i]) << (8 * i)
    memcpy(&f, &v, 4)
    return f


cdef class EnvelopeFormat:
    """One tier's way of packing entries: a codec, an optional secret and compression.

    ``pack`` raises ``SerializationError`` for values the codec cannot encode; ``unpack``
    raises ``CorruptEntry`` for anything that is not a valid envelope written for this key by
    a writer with the same secret (it never returns planted data and never runs planted code),
    ``data`` that is not ``bytes`` included, and for a compressed payload that would expand
    beyond ``max_decompressed_size`` bytes (``pack`` compresses only payloads up to that size,
    so every envelope it writes reads back).
    """

    cdef readonly object codec
    cdef readonly bint signed
    cdef readonly object compress_threshold
    cdef readonly bint unsafe_pickle
    cdef readonly Py_ssize_t max_decompressed_size
    cdef uint8_t _flags
    cdef uint8_t _codec_id
    cdef blake2b_state _mac  # keyed once; each tag starts from a copy

    def __init__(self, codec, secret, *, compress_threshold=1024, unsafe_pickle=False,
                 max_decompressed_size=MAX_DECOMPRESSED_SIZE):
        self.codec, mac_key = envelope_settings(codec, secret, unsafe_pickle, max_decompressed_size)
        self.max_decompressed_size = max_decompressed_size
        self.signed = secret is not None
        self.compress_threshold = compress_threshold
        self.unsafe_pickle = unsafe_pickle
        self._flags = _F_SIGNED if self.signed else 0
        self._codec_id = self.codec.id
        cdef bytes k = mac_key or b""
        if k:
            blake2b_init_key(&self._mac, _TAG, <const char*>k, <uint8_t>len(k))
        else:  # unsigned: an unkeyed digest (init_key refuses an empty key)
            blake2b_init(&self._mac, _TAG)

    cdef void _tag(self, const uint8_t* key, Py_ssize_t keylen, const uint8_t* body,
                   Py_ssize_t n, uint8_t* out) noexcept nogil:
        # A keyed MAC when the format has a secret, else an unkeyed digest: that one detects
        # corruption, not forgery (see mlcache.codecs).
        cdef blake2b_state state = self._mac
        cdef uint8_t size[4]
        cdef int i
        for i in range(4):
            size[i] = <uint8_t>(keylen >> (8 * i))
        blake2b_update(&state, size, 4)
        blake2b_update(&state, key, keylen)
        blake2b_update(&state, body, n)
        blake2b_final(&state, out, _TAG)

    def pack(self, bytes key, entry, double now):
        """The envelope of ``entry`` stored under physical key ``key``."""
        cdef uint8_t flags = self._flags
        cdef bytes payload
        value = entry.value
        if value is NULL_VALUE:
            flags |= _F_NULL
            payload = b""
        else:
            try:
                payload = self.codec.dumps(value)
            except Exception as exc:
                raise encode_error(self.codec, value, exc) from exc
            threshold = self.compress_threshold
            if threshold is not None and threshold <= len(payload) <= self.max_decompressed_size:
                packed = zlib.compress(payload, 1)
                if len(packed) < len(payload):
                    payload, flags = packed, flags | _F_COMPRESSED
        cdef Py_ssize_t size = PyBytes_GET_SIZE(payload)
        cdef Py_ssize_t total = _HEADER_SIZE + size + _TAG
        cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
        cdef uint8_t* p = <uint8_t*>PyBytes_AS_STRING(out)
        p[0] = 77  # "ML"
        p[1] = 76
        p[2] = _FORMAT_VERSION
        p[3] = flags
        p[4] = self._codec_id
        p[5] = 0
        _put_f64(p + 6, entry.expires_at)
        _put_f64(p + 14, entry.stale_until)
        _put_f64(p + 22, now)
        _put_f32(p + 30, entry.load_time)
        memcpy(p + _HEADER_SIZE, PyBytes_AS_STRING(payload), size)
        self._tag(<const uint8_t*>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), p,
                  _HEADER_SIZE + size, p + _HEADER_SIZE + size)
        return out

    def unpack(self, bytes key, data):
        """``(entry, written_at)`` from the envelope ``data`` read under physical key ``key``."""
        return self._unpack(key, data)

    def unpack_many(self, keys, blobs):
        """``unpack`` of each blob under its key, in one call: ``(entry, written_at)``, None
        for a None blob (nothing stored), or the ``CorruptEntry`` (returned, not raised)."""
        cdef Py_ssize_t i, n = len(keys)
        if n != len(blobs):
            raise ValueError(f"{n} keys but {len(blobs)} blobs")
        cdef list out = []
        for i in range(n):
            data = blobs[i]
            if data is None:
                out.append(None)
                continue
            try:
                out.append(self._unpack(keys[i], data))
            except CorruptEntry as exc:
                out.append(exc)
        return out

    cdef tuple _unpack(self, bytes key, data):
        if key is None:  # (a typed bytes may be None: its buffer must not be read)
            raise TypeError("a physical key is bytes, not None")
        if not isinstance(data, bytes):  # (bytes(data) would allocate an int's worth of zeros)
            raise not_bytes(data)
        cdef bytes raw = <bytes>data  # a subclass too: its buffer, as the pure twin reads it
        cdef Py_ssize_t n = PyBytes_GET_SIZE(raw)
        cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(raw)
        cdef uint8_t tag[_TAG]
        cdef uint8_t diff = 0
        cdef int i
        if n < _HEADER_SIZE + _TAG:
            raise CorruptEntry("too short")
        if p[0] != 77 or p[1] != 76 or p[2] != _FORMAT_VERSION:
            raise CorruptEntry("not an mlcache envelope (or another format version)")
        cdef uint8_t flags = p[3]
        if ((flags & _F_SIGNED) != 0) != self.signed:
            raise CorruptEntry("signed by a writer with other settings")
        self._tag(<const uint8_t*>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), p, n - _TAG, tag)
        for i in range(_TAG):  # constant time, as hmac.compare_digest
            diff |= tag[i] ^ p[n - _TAG + i]
        if diff:
            raise CorruptEntry("tag mismatch (corrupt, planted, or copied from another key)")
        cdef double expires = _get_f64(p + 6), stale = _get_f64(p + 14)
        cdef double written = _get_f64(p + 22)
        cdef float load = _get_f32(p + 30)
        if not (stale >= expires and not isnan(expires)):
            raise CorruptEntry("inconsistent lifetime")
        if flags & _F_NULL:
            return Entry(NULL_VALUE, expires, stale, load), written
        if p[4] != self._codec_id:
            raise CorruptEntry(f"written with codec id {p[4]}, this tier reads {self.codec.name}")
        payload = PyBytes_FromStringAndSize(<const char*>p + _HEADER_SIZE, n - _HEADER_SIZE - _TAG)
        if flags & _F_COMPRESSED:
            payload = inflate(payload, self.max_decompressed_size)
        try:
            value = self.codec.loads(payload)
        except Exception as exc:
            raise CorruptEntry(f"payload does not decode: {type(exc).__name__}") from exc
        return Entry(value, expires, stale, load), written

    def __repr__(self):  # never shows the secret
        return f"EnvelopeFormat(codec={self.codec.name!r}, signed={self.signed})"
