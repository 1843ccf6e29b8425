"""Bytes someone else planted in L2 or L3 never run code and never come back as a value."""

from __future__ import annotations

import logging
import os
import pickle
import stat

import diskcache
import pytest
import redis

from mlcache import Cache, DiskTier, RedisTier
from mlcache.tiers.base import physical_key
from mlcache.tiers.disk import KEY_FILE
from mlcache.tiers.redis import mask_url


class Detonator:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))  # unpickling creates a file: the proof of execution


def planted(marker, victim_pkey, cache_tier):
    """What an attacker with write access to the store might write under a key."""
    other = cache_tier.format.pack(b"some-other-key", __import__("mlcache").Entry("not yours"), 0)
    valid = cache_tier.format.pack(victim_pkey, __import__("mlcache").Entry("genuine"), 0)
    return {
        "crafted pickle": pickle.dumps(Detonator(marker)),
        "truncated envelope": valid[:-5],
        "random bytes": os.urandom(80),
        "another key's valid envelope": other,
    }


def test_planted_bytes_in_redis_read_as_a_miss(tmp_path, redis_server, caplog):
    marker = tmp_path / "pwned"
    tier = RedisTier(redis_server.url, prefix="sec:")
    cache = Cache(tier)
    admin = redis.Redis(port=redis_server.port)
    pk = physical_key("victim")
    caplog.set_level(logging.WARNING, logger="mlcache")
    for name, data in planted(marker, pk, tier).items():
        admin.set(b"sec:" + pk, data)
        assert cache.get("victim", "miss") == "miss", name
        assert cache.get_or_load("victim", lambda: "reloaded") == "reloaded", name
        cache.delete("victim")
    assert not marker.exists()
    # each planted value was read three times: get, then get_or_load before and under its lease
    assert cache.stats()["tiers"]["redis"]["corrupt"] == 12
    assert 1 <= len([r for r in caplog.records if "unreadable entry" in r.message]) <= 2
    cache.close()


def test_signed_pickle_in_redis_rejects_unsigned_and_foreign_signatures(tmp_path, redis_server):
    marker = tmp_path / "pwned"
    tier = RedisTier(redis_server.url, prefix="signed:", secret="a-long-enough-secret-1")
    other = RedisTier(redis_server.url, prefix="signed:", secret="another-long-secret-22")
    cache, attacker = Cache(tier), Cache(other)
    attacker.set("victim", Detonator(marker))  # validly signed, but with the wrong secret
    assert cache.get("victim", "miss") == "miss"
    assert not marker.exists()
    cache.set("mine", (1, {2}))
    assert cache.get("mine") == (1, {2})  # pickle keeps Python types
    cache.close()
    attacker.close()


def test_pickle_on_redis_needs_a_secret(redis_server):
    from mlcache import ConfigurationError

    with pytest.raises(ConfigurationError, match="needs a secret"):
        Cache(RedisTier(redis_server.url, codec="pickle"))
    Cache(RedisTier(redis_server.url, codec="pickle", unsafe_pickle=True)).close()


def test_planted_rows_in_diskcache_read_as_a_miss(tmp_path):
    marker = tmp_path / "pwned"
    directory = tmp_path / "l2"
    tier = DiskTier(directory)
    cache = Cache(tier)
    pk = physical_key("victim")
    raw = diskcache.Cache(str(directory))  # an attacker using diskcache directly
    for name, data in planted(marker, pk, tier).items():
        raw.set(pk, data)
        assert cache.get("victim", "miss") == "miss", name
    raw.set(pk, Detonator(marker))  # diskcache's own pickle row (CVE-2025-69872's path)
    assert cache.get("victim", "miss") == "miss"
    raw.set(("tuple", "key"), "pickled key")
    assert cache.get("victim", "miss") == "miss"
    assert not marker.exists()
    disk_stats = cache.stats()["tiers"]["disk"]
    assert disk_stats["corrupt"] == 6 and disk_stats["errors"] == 0
    raw.close()
    cache.close()


def test_disk_key_file_is_private_and_shared(tmp_path):
    directory = tmp_path / "l2"
    first = Cache(DiskTier(directory))
    first.set("k", "v")
    mode = stat.S_IMODE(os.stat(directory / KEY_FILE).st_mode)
    assert mode == 0o600
    second = Cache(DiskTier(directory))  # another process on the host would do the same
    assert second.get("k") == "v"
    (directory / KEY_FILE).write_bytes(os.urandom(32))  # the key changes: old entries are foreign
    third = Cache(DiskTier(directory))
    assert third.get("k", "miss") == "miss"
    for c in (first, second, third):
        c.close()


def test_secrets_never_in_repr_or_errors(redis_server):
    url = f"redis://user:hunter2@127.0.0.1:{redis_server.port}/0"
    tier = RedisTier(url, secret="signing-secret-0123456789")
    cache = Cache(tier)
    text = repr(cache) + repr(tier) + repr(tier.format)
    assert "hunter2" not in text and "signing-secret" not in text
    assert mask_url(url) in repr(tier)
    from mlcache import ConfigurationError

    with pytest.raises(ConfigurationError) as info:
        RedisTier("http://:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in str(info.value)
    cache.close()


def test_rows_of_other_types_in_diskcache_read_as_a_miss(tmp_path):
    directory = tmp_path / "l2"
    cache = Cache(DiskTier(directory))
    raw = diskcache.Cache(str(directory))
    for planted_value in ("a str row", 10**9, 1.5):  # 10**9: never allocated as zero bytes
        raw.set(physical_key("victim"), planted_value)
        assert cache.get("victim", "miss") == "miss"
        assert cache.get_many(["victim"]) == {}
        assert cache.get_or_load("victim", lambda: "reloaded") == "reloaded"
        cache.delete("victim")
    assert cache.stats()["tiers"]["disk"]["errors"] == 0
    raw.close()
    cache.close()


@pytest.mark.parametrize("how", ["readable by others", "symlink"])
def test_disk_key_file_planted_in_a_shared_directory_is_refused(tmp_path, how):
    from mlcache import ConfigurationError

    directory = tmp_path / "shared"
    directory.mkdir()
    if how == "symlink":
        (tmp_path / "attacker.key").write_bytes(os.urandom(32))
        os.chmod(tmp_path / "attacker.key", 0o600)
        (directory / KEY_FILE).symlink_to(tmp_path / "attacker.key")
    else:
        (directory / KEY_FILE).write_bytes(b"k" * 32)  # a key the attacker knows
        os.chmod(directory / KEY_FILE, 0o644)
    with pytest.raises(ConfigurationError, match="key file"):
        Cache(DiskTier(directory))
    Cache(DiskTier(directory, secret="a-configured-secret-0123")).close()  # a secret needs no file
