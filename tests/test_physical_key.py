"""Physical keys: every str has its own bytes in L2/L3, and ordinary keys stay readable."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import COMPILED, PURE
from mlcache.tiers.base import MAX_KEY_BYTES, physical_key

ANY_TEXT = st.text(st.characters(exclude_categories=()))  # lone surrogates included
# Pieces whose combinations used to share bytes: escaped bytes that spell real characters'
# UTF-8 ("\udcc3\udca9" is the escape of "é"), surrogates that cannot be escaped, and the
# marker of hashed keys.
LOOK_ALIKES = st.lists(
    st.sampled_from(["é", "\udcc3", "\udca9", "\ud800", "\udced", "\udca0", "\udc80", "\udcff",
                     "\xff", "#sha256:", "#sha256:u", "u", "a", "\x00"]),
    max_size=3,
).map("".join)  # fmt: skip
KEYS = st.one_of(ANY_TEXT, LOOK_ALIKES)


class Sub(str):
    """A str subclass: the compiled twin hands it to the pure one."""


def partners(key: str) -> set[str]:
    """Other strs that an encoding might mix up with ``key``."""
    escaped = key.encode("utf-8", "surrogatepass").decode("utf-8", "surrogateescape")
    return {escaped, "#sha256:" + escaped, physical_key(key).decode("utf-8", "surrogateescape")}


@given(st.lists(KEYS, min_size=2, max_size=40))
@settings(max_examples=1000)
def test_distinct_keys_never_share_a_physical_key(keys):
    seen: dict[bytes, str] = {}
    for key in keys:
        assert seen.setdefault(physical_key(key), key) == key


@given(KEYS)
@settings(max_examples=1000)
def test_no_look_alike_shares_a_keys_physical_key(key):
    for other in partners(key) - {key}:
        assert physical_key(other) != physical_key(key)


@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=60))
def test_ordinary_keys_are_their_own_utf8(key):
    raw = key.encode()
    if raw[:1] != b"\x00" and not raw.startswith(b"#sha256:"):
        assert physical_key(key) == raw  # (60 characters are at most 240 bytes)


def test_bytes_keys_keep_their_bytes_and_odd_strs_get_their_own_names():
    assert physical_key(b"\xff\xc3".decode("utf-8", "surrogateescape")) == b"\xff\xc3"
    assert physical_key("é") == "é".encode()
    assert physical_key("\udcc3\udca9") != physical_key("é")
    assert physical_key("\ud800") != physical_key("#sha256:\udced\udca0\udc80")
    assert len(physical_key("x" * (MAX_KEY_BYTES + 1))) == len(b"#sha256:") + 64


@pytest.mark.skipif(COMPILED is None, reason="the compiled extension is not built")
@given(st.one_of(KEYS, st.text(st.characters(max_codepoint=127), max_size=MAX_KEY_BYTES + 2),
                 st.text("#sha256:\x00ab", max_size=12), st.builds(Sub, st.text(max_size=5))))
@settings(max_examples=1000)
def test_twins_agree(key):
    assert COMPILED.physical_key(key) == PURE.physical_key(key)


@pytest.mark.parametrize("key", ["", "a", "\x00", "#sha256", "#sha256:", "#sha256:ab", "x" * MAX_KEY_BYTES,
                                 "x" * (MAX_KEY_BYTES + 1), "é", "\udcff", Sub("k")])
def test_twins_agree_at_the_edges(impl, key):
    assert impl.physical_key(key) == PURE.physical_key(key)
