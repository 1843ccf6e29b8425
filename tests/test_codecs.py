"""The envelope: round trips through every codec, and what it refuses."""

from __future__ import annotations

import collections
import datetime
import enum
import math
import os
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlcache import NULL, ConfigurationError, Entry, SerializationError
from conftest import COMPILED, IMPLS
from mlcache.codecs import CorruptEntry

SECRET = b"s" * 32
KEY = b"user:42"
SETTINGS = [("pickle", SECRET), ("json", None), ("json", SECRET), ("msgpack", None),
            ("msgpack", SECRET)]  # fmt: skip


def formats():
    return [i.EnvelopeFormat(c, s) for i in IMPLS for c, s in SETTINGS]


def fmt_id(fmt):
    return f"{type(fmt).__module__.split('.')[-1]}-{fmt!r}"


@pytest.mark.parametrize("fmt", formats(), ids=fmt_id)
@pytest.mark.parametrize(
    "value", [1, "text", [1, 2, {"a": None}], NULL, "x" * 5000, 1.5, True, None, {}]
)
def test_round_trip(fmt, value):
    entry = Entry(value, 1000.0, 1010.0, 0.25)
    back, written = fmt.unpack(KEY, fmt.pack(KEY, entry, now=990.0))
    assert back == entry and written == 990.0
    if value is NULL:
        assert back.value is NULL  # the sentinel survives as itself, whatever the codec


def test_pickle_keeps_python_types(impl):
    fmt = impl.EnvelopeFormat("pickle", SECRET)
    value = {"t": (1, 2), "s": {3}, b"b": 1.5j}
    assert fmt.unpack(KEY, fmt.pack(KEY, Entry(value, math.inf), 0))[0].value == value


EXACT = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text() | st.binary() | st.datetimes() | st.datetimes(timezones=st.just(datetime.timezone.utc))
    | st.dates() | st.times() | st.timedeltas() | st.decimals(allow_nan=False) | st.uuids(),
    lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=4).map(tuple)
    | st.dictionaries(st.text(max_size=5) | st.tuples(st.integers(0, 9)), inner, max_size=4)
    | st.frozensets(st.integers() | st.text(max_size=3), max_size=4)
    | st.sets(st.integers(-9, 9) | st.tuples(st.text(max_size=2)), max_size=4),
    max_leaves=20,
)  # fmt: skip


def _typed(value):
    """``value`` with the type of everything inside it spelled out (``==`` ignores 1 vs True,
    a list vs a tuple inside a set, ...)."""
    if isinstance(value, dict):
        return ("dict", sorted((repr(_typed(k)), _typed(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_typed(v) for v in value])
    if isinstance(value, (set, frozenset)):
        return (type(value).__name__, sorted(repr(_typed(v)) for v in value))
    return (type(value).__name__, repr(value))


@given(value=EXACT)
@settings(max_examples=300, deadline=None)
def test_msgpack_gives_back_the_types_it_was_given(value):
    """Whatever tier serves it, a value has the type it was cached with: L1 keeps the object,
    so L3's msgpack must keep tuples, sets, dates, decimals... exactly."""
    for impl in IMPLS:
        fmt = impl.EnvelopeFormat("msgpack", None)
        back = fmt.unpack(KEY, fmt.pack(KEY, Entry(value, math.inf), 0))[0].value
        assert back == value and _typed(back) == _typed(value)


@pytest.mark.parametrize("value", [collections.OrderedDict(a=1), enum.IntEnum("Level", "LOW").LOW,
                                   object(), [1, {"deep": collections.Counter("ab")}]],
                         ids=["OrderedDict", "IntEnum", "object", "nested Counter"])  # fmt: skip
def test_msgpack_refuses_what_it_would_give_back_as_another_type(impl, value):
    with pytest.raises(SerializationError, match="codec 'msgpack'.*give the tier a secret"):
        impl.EnvelopeFormat("msgpack", None).pack(KEY, Entry(value), 0)


@given(code=st.integers(-128, 127), data=st.binary(max_size=40))
@settings(max_examples=300, deadline=None)
def test_msgpack_extensions_with_any_content_read_as_a_value_or_corrupt(code, data):
    payload = b"\x92\x01\xc7" + bytes([len(data)]) + code.to_bytes(1, "big", signed=True) + data
    for impl in IMPLS:
        writer = impl.EnvelopeFormat("msgpack", None)
        writer.codec.dumps = lambda value: payload  # planted: any bytes that pass the tag
        planted = writer.pack(KEY, Entry("v"), 0)
        try:
            value = impl.EnvelopeFormat("msgpack", None).unpack(KEY, planted)[0].value
        except CorruptEntry:
            continue
        assert 1 <= code <= 10 or code == -1  # ours, or msgpack's own Timestamp (plain data)
        assert value[0] == 1


def test_compression_only_when_it_helps(impl):
    fmt = impl.EnvelopeFormat("msgpack", None, compress_threshold=100)
    small = fmt.pack(KEY, Entry("a" * 50), 0)
    big = fmt.pack(KEY, Entry("a" * 10_000), 0)
    assert len(big) < 200 and small[3] & 2 == 0 and big[3] & 2
    random_bytes = os.urandom(5000)
    assert fmt.pack(KEY, Entry(random_bytes), 0)[3] & 2 == 0
    assert fmt.unpack(KEY, big)[0].value == "a" * 10_000


def test_unencodable_value_raises_serialization_error(impl):
    with pytest.raises(SerializationError, match="type function with codec 'pickle'"):
        impl.EnvelopeFormat("pickle", SECRET).pack(KEY, Entry(lambda: 1), 0)
    with pytest.raises(SerializationError, match="type set with codec 'json'"):
        impl.EnvelopeFormat("json", None).pack(KEY, Entry({1, 2}), 0)


def test_pickle_without_secret_is_refused_unless_opted_out(impl):
    with pytest.raises(ConfigurationError, match="needs a secret"):
        impl.EnvelopeFormat("pickle", None)
    unsafe = impl.EnvelopeFormat("pickle", None, unsafe_pickle=True)
    assert unsafe.unpack(KEY, unsafe.pack(KEY, Entry((1, 2)), 0))[0].value == (1, 2)


@pytest.mark.parametrize("secret", [b"short", 123])
def test_bad_secrets(impl, secret):
    with pytest.raises(ConfigurationError):
        impl.EnvelopeFormat("json", secret)


class Boom:
    """Unpickling this runs code: it must never happen for planted bytes."""

    ran = False

    def __reduce__(self):
        return (Boom._detonate, ())

    @staticmethod
    def _detonate():
        Boom.ran = True
        return "pwned"


def planted_payloads(fmt) -> dict[str, bytes]:
    make = type(fmt)
    valid = fmt.pack(b"other-key", Entry("other"), 0)
    forged_unsigned = make("pickle", None, unsafe_pickle=True).pack(KEY, Entry(Boom()), 0)
    forged_other_secret = make("pickle", b"x" * 32).pack(KEY, Entry(Boom()), 0)
    return {
        "raw pickle": pickle.dumps(Boom()),
        "unsigned pickle envelope": forged_unsigned,
        "pickle signed with another secret": forged_other_secret,
        "another key's valid envelope": valid,
        "truncated": fmt.pack(KEY, Entry("v"), 0)[:-3],
        "random": os.urandom(64),
        "empty": b"",
        "header only": fmt.pack(KEY, Entry("v"), 0)[:34],
    }


@pytest.mark.parametrize("fmt", formats(), ids=fmt_id)
def test_planted_bytes_never_decode_and_never_run_code(fmt):
    Boom.ran = False
    for name, data in planted_payloads(fmt).items():
        with pytest.raises(CorruptEntry):
            fmt.unpack(KEY, data)
            pytest.fail(f"{name} decoded")
    assert not Boom.ran


def test_a_flipped_bit_anywhere_is_detected(impl):
    fmt = impl.EnvelopeFormat("msgpack", None)
    data = bytearray(fmt.pack(KEY, Entry({"a": 1}, 100.0), 0))
    for i in range(len(data)):
        for bit in (1, 128):
            data[i] ^= bit
            with pytest.raises(CorruptEntry):
                fmt.unpack(KEY, bytes(data))
            data[i] ^= bit


@given(st.binary(max_size=200))
@settings(max_examples=300)
def test_arbitrary_bytes_read_as_corrupt(data):
    for impl in IMPLS:
        for fmt in (impl.EnvelopeFormat("pickle", SECRET), impl.EnvelopeFormat("msgpack", None)):
            with pytest.raises(CorruptEntry):
                fmt.unpack(KEY, data)


def test_repr_never_shows_the_secret(impl):
    fmt = impl.EnvelopeFormat("pickle", "my-very-secret-signing-key")
    assert "secret" not in repr(fmt).replace("signed", "") and "very" not in repr(fmt)


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@pytest.mark.skipif(COMPILED is None, reason="the compiled extension is not built")
@given(
    value=VALUES,
    key=st.binary(max_size=300),
    times=st.tuples(st.floats(0, 2e9), st.floats(0, 100), st.floats(0, 1e9), st.floats(0, 10)),
    setting=st.sampled_from(SETTINGS),
    secret=st.one_of(st.none(), st.binary(min_size=16, max_size=100)),
)
@settings(max_examples=300, deadline=None)
def test_twins_write_identical_bytes_and_read_each_other(value, key, times, setting, secret):
    codec = setting[0]
    if codec == "pickle" and secret is None:
        secret = SECRET
    if codec == "json" and isinstance(value, bytes):
        value = value.hex()
    expires, window, now, load = times
    entry = Entry(value, expires, expires + window, load)
    compiled = COMPILED.EnvelopeFormat(codec, secret, compress_threshold=64)
    pure = IMPLS[-1].EnvelopeFormat(codec, secret, compress_threshold=64)
    try:
        data = pure.pack(key, entry, now)
    except SerializationError:  # e.g. JSON cannot hold bytes inside containers
        with pytest.raises(SerializationError):
            compiled.pack(key, entry, now)
        return
    assert compiled.pack(key, entry, now) == data
    for reader in (compiled, pure):
        back, written = reader.unpack(key, data)
        assert written == now and back.expires_at == entry.expires_at
        assert back.load_time == pytest.approx(load, rel=1e-6)  # stored as float32
    assert compiled.unpack(key, data)[0].value == pure.unpack(key, data)[0].value


NOT_BYTES = [None, "ML" + "x" * 60, 0, 10**12, -1, 1.5, [], object(), bytearray(64)]


@pytest.mark.parametrize("data", NOT_BYTES, ids=lambda d: type(d).__name__)
def test_anything_but_bytes_reads_as_corrupt(impl, data):
    fmt = impl.EnvelopeFormat("msgpack", None)
    with pytest.raises(CorruptEntry, match=f"not bytes but {type(data).__name__}"):
        fmt.unpack(KEY, data)


def test_even_a_valid_envelope_must_come_as_bytes(impl):
    fmt = impl.EnvelopeFormat("msgpack", None)
    data = fmt.pack(KEY, Entry("v"), 0)
    for wrapped in (memoryview(data), bytearray(data)):
        with pytest.raises(CorruptEntry, match="not bytes"):
            fmt.unpack(KEY, wrapped)


def _outcome(fmt, data):
    try:
        entry, written = fmt.unpack(KEY, data)
    except Exception as exc:
        return type(exc), str(exc)
    return entry, written


@pytest.mark.skipif(COMPILED is None, reason="the compiled extension is not built")
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.sampled_from(NOT_BYTES),
        st.builds(memoryview, st.binary(max_size=80)),
        st.text(max_size=80),
        st.integers(-(2**70), 10**6),
        # valid envelopes with bytes flipped or cut: these reach the later checks
        st.tuples(st.sampled_from(SETTINGS), st.text("ab", max_size=3000),
                  st.integers(0, 4000), st.integers(0, 255)).map(
            lambda t: _damaged(*t)),
    ),
    setting=st.sampled_from(SETTINGS),
)  # fmt: skip
@settings(max_examples=500, deadline=None)
def test_twins_agree_on_garbage(data, setting):
    compiled = COMPILED.EnvelopeFormat(*setting, compress_threshold=64)
    pure = IMPLS[-1].EnvelopeFormat(*setting, compress_threshold=64)
    outcome = _outcome(compiled, data)
    assert outcome == _outcome(pure, data)
    assert isinstance(outcome[0], Entry) or outcome[0] is CorruptEntry


def _damaged(setting, value, at, xor):
    data = bytearray(IMPLS[-1].EnvelopeFormat(*setting, compress_threshold=64).pack(KEY, Entry(value), 0))
    if at < len(data):
        data[at] ^= xor
    else:
        del data[at - len(data) :]
    return bytes(data)


@pytest.mark.parametrize("setting", [("msgpack", None), ("pickle", SECRET), ("json", None)])
def test_a_zip_bomb_reads_as_corrupt_before_it_expands(impl, setting):
    limit = 16 * 1024
    writer = impl.EnvelopeFormat(*setting)  # the default limit: 64 MiB
    bomb = writer.pack(KEY, Entry("a" * (64 * limit)), 0)
    assert bomb[3] & 2 and len(bomb) < 8 * 1024  # compressed: a few KB, for a MiB
    reader = impl.EnvelopeFormat(*setting, max_decompressed_size=limit)
    with pytest.raises(CorruptEntry, match=f"expands beyond {limit} bytes"):
        reader.unpack(KEY, bomb)
    assert writer.unpack(KEY, bomb)[0].value == "a" * (64 * limit)  # within 64 MiB: fine


def test_payloads_over_the_limit_are_stored_uncompressed_and_read_back(impl):
    fmt = impl.EnvelopeFormat("msgpack", None, compress_threshold=64, max_decompressed_size=1000)
    exactly, over = "a" * 997, "a" * 998  # msgpack adds 3 bytes of header
    assert fmt.pack(KEY, Entry(exactly), 0)[3] & 2 and not fmt.pack(KEY, Entry(over), 0)[3] & 2
    for value in (exactly, over):
        assert fmt.unpack(KEY, fmt.pack(KEY, Entry(value), 0))[0].value == value
    assert impl.EnvelopeFormat("msgpack", None).max_decompressed_size == 64 * 1024 * 1024


@pytest.mark.parametrize("size", [0, -1, 1.5, True, 2**63])
def test_bad_max_decompressed_size(impl, size):
    with pytest.raises(ConfigurationError, match="max_decompressed_size"):
        impl.EnvelopeFormat("json", None, max_decompressed_size=size)


@pytest.mark.parametrize("fmt", formats(), ids=fmt_id)
def test_unpack_many_is_unpack_of_each(fmt):
    good = fmt.pack(KEY, Entry("v", 5.0, 6.0, 0.5), 1.0)
    out = fmt.unpack_many([KEY, KEY, b"other", KEY], [good, None, good, b"short"])
    assert out[0] == fmt.unpack(KEY, good) and out[1] is None
    assert [type(x) for x in out[2:]] == [CorruptEntry, CorruptEntry]
    assert str(out[2]).startswith("tag mismatch") and str(out[3]) == "too short"
    assert fmt.unpack_many([], []) == []
    with pytest.raises(ValueError, match="2 keys but 1 blobs"):
        fmt.unpack_many([KEY, KEY], [good])


def _many_outcome(fmt, keys, blobs):
    return [x if not isinstance(x, Exception) else (type(x), str(x)) for x in fmt.unpack_many(keys, blobs)]


@pytest.mark.skipif(COMPILED is None, reason="the compiled extension is not built")
@given(
    items=st.lists(st.tuples(
        st.sampled_from([KEY, b"other", b""]),
        st.one_of(st.none(), st.binary(max_size=80), st.sampled_from(NOT_BYTES),
                  st.tuples(st.sampled_from(SETTINGS), st.text("ab", max_size=300),
                            st.integers(0, 400), st.integers(0, 255)).map(lambda t: _damaged(*t)),
                  st.sampled_from(SETTINGS).map(
                      lambda s: IMPLS[-1].EnvelopeFormat(*s).pack(KEY, Entry([1, "x"], 9.0), 2.0))),
    ), max_size=8),
    setting=st.sampled_from(SETTINGS),
)  # fmt: skip
@settings(max_examples=300, deadline=None)
def test_twins_agree_on_batches(items, setting):
    keys, blobs = [k for k, _ in items], [b for _, b in items]
    compiled = COMPILED.EnvelopeFormat(*setting, compress_threshold=64)
    pure = IMPLS[-1].EnvelopeFormat(*setting, compress_threshold=64)
    assert _many_outcome(compiled, keys, blobs) == _many_outcome(pure, keys, blobs)
