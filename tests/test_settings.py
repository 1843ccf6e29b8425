"""configure(): from a dict, TOML, pyproject.toml, the environment, URLs; validation."""

from __future__ import annotations

import pytest

import mlcache
from mlcache import ConfigurationError, DiskTier, MemoryTier, RedisTier, configure, get_cache
from mlcache.settings import describe


def tier_types(cache):
    return [type(t).__name__ for t in cache.tiers]


def test_default_is_l1_and_l2_in_the_user_cache_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = get_cache()
    assert tier_types(cache) == ["MemoryTier", "DiskTier"]
    assert cache.tiers[1].directory == tmp_path / "mlcache" / "default"
    cache.set("k", "v")
    assert (tmp_path / "mlcache" / "default" / "cache.db").exists()


def test_named_caches_with_default_tiers_do_not_share_entries(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    configure({"caches": {"default": {}, "sessions": {}, "a/../b": {}}})
    default, sessions = get_cache(), get_cache("sessions")
    sessions.set("user:1", "a session")
    assert default.get("user:1", "absent") == "absent"
    default.clear()
    assert sessions.get("user:1") == "a session"
    assert get_cache("a/../b").tiers[1].directory == tmp_path / "mlcache" / "a%2F%2E%2E%2Fb"


def test_reconfigure_rebinds_decorated_functions(tmp_path):
    configure({"tiers": ["memory://"]})
    calls = []

    @mlcache.cached(ttl=60)
    def double(x):
        calls.append(x)
        return 2 * x

    assert double(2) == 4 and double(2) == 4 and calls == [2]  # an L1 hit on the hit path
    first = get_cache()
    configure({"tiers": ["memory://"]})
    assert double(2) == 4 and calls == [2, 2]  # the new (empty) cache, not the old L1
    assert double.cache is get_cache() is not first


def test_from_a_dict_with_urls(tmp_path, redis_server):
    configure({"ttl": 120, "null_ttl": 5, "tiers": [
        "memory://?maxsize=500&policy=lfu&ttl=30",
        f"file://{tmp_path}/l2?ttl=3600&size_limit=1000000",
        f"{redis_server.url}?prefix=app:&socket_timeout=0.25",
    ]})  # fmt: skip
    cache = get_cache()
    memory, disk, redis_tier = cache.tiers
    assert (memory.maxsize, memory.policy, memory.ttl) == (500, "lfu", 30.0)
    assert disk.directory == tmp_path / "l2" and disk.ttl == 3600
    assert isinstance(redis_tier, RedisTier) and redis_tier.prefix == "app:"
    assert (cache.ttl, cache.null_ttl) == (120, 5)
    cache.set("k", 1)
    assert get_cache().get("k") == 1


def test_tiers_as_tables_and_named_caches(tmp_path):
    configure({"caches": {
        "default": {"tiers": [{"type": "memory", "maxsize": 10}]},
        "sessions": {"ttl": 10, "tiers": [{"type": "memory"}, {"type": "disk", "directory": str(tmp_path)}]},
    }})  # fmt: skip
    assert tier_types(get_cache()) == ["MemoryTier"]
    assert tier_types(get_cache("sessions")) == ["MemoryTier", "DiskTier"]
    assert get_cache("sessions") is get_cache("sessions")
    with pytest.raises(ConfigurationError, match="no cache named 'nope' is configured"):
        get_cache("nope")


def test_from_toml_and_pyproject(tmp_path):
    toml = tmp_path / "mlcache.toml"
    toml.write_text('[caches.default]\nttl = 60\ntiers = ["memory://?maxsize=7"]\n')
    configure(toml)
    assert get_cache().tiers[0].maxsize == 7 and get_cache().ttl == 60
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\n\n[tool.mlcache]\ntiers = ["memory://?maxsize=9"]\n')
    configure(pyproject)
    assert get_cache().tiers[0].maxsize == 9


def test_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCACHE_TIERS", f"memory://?maxsize=11, file://{tmp_path}/env-l2")
    monkeypatch.setenv("MLCACHE_TTL", "42")
    monkeypatch.setenv("MLCACHE_SECRET", "an-environment-secret-of-some-length")
    configure()
    cache = get_cache()
    assert cache.tiers[0].maxsize == 11 and cache.ttl == 42
    assert cache.tiers[1].format.signed
    monkeypatch.setenv("MLCACHE_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigurationError, match="cannot read settings file"):
        configure()


def test_reconfigure_closes_the_old_caches(tmp_path):
    configure({"tiers": ["memory://", f"file://{tmp_path}/a"]})
    old = get_cache()
    configure({"tiers": ["memory://"]})
    assert old._closed and get_cache() is not old


def test_a_failed_configure_closes_the_tiers_it_had_built(tmp_path, monkeypatch):
    from mlcache.tiers.disk import DiskTier

    closed = []
    monkeypatch.setattr(DiskTier, "close", lambda self: closed.append(self.directory))
    with pytest.raises(ConfigurationError, match="tiers\\[2\\]"):
        configure({"tiers": ["memory://", f"file://{tmp_path}/a", "redis://localhost?codec=yaml"]})
    assert closed == [tmp_path / "a"]


BAD = [
    ({"tiers": ["memory://?maxsize=0"]}, r"caches.default.tiers\[0\] \(memory\): maxsize must be an integer >= 1, got 0"),
    ({"tiers": ["memory://?maxsize=lots"]}, r"caches.default.tiers\[0\].maxsize must be an integer, got 'lots'"),
    ({"tiers": ["memory://?policy=mru"]}, r"policy must be one of 'fifo', 'lfu', 'lru'"),
    ({"tiers": ["memory://?colour=red"]}, r"unknown setting caches.default.tiers\[0\].colour; allowed: maxsize, policy, ttl"),
    ({"tiers": ["ftp://host"]}, r"unknown tier URL scheme"),
    ({"tiers": [{"type": "tape"}]}, r"caches.default.tiers\[0\].type must be one of 'memory', 'disk', 'redis', got 'tape'"),
    ({"tiers": []}, r"tiers must be a non-empty list"),
    ({"tiers": [{"type": "disk", "directory": "/tmp/x"}, "memory://"]}, r"a memory tier must come first"),
    ({"ttl": -5, "tiers": ["memory://"]}, r"caches.default: ttl must be a finite number of seconds > 0"),
    ({"ttl": "soon", "tiers": ["memory://"]}, r"caches.default.ttl must be a number, got 'soon'"),
    ({"tiers": ["memory://"], "colour": 1}, r"unknown setting caches.default.colour; allowed: beta, lease_ttl"),
    ({"tiers": ["memory://"], "on_lock_timeout": "panic"}, r"on_lock_timeout must be one of 'load', 'raise', 'stale', got 'panic'"),
    ({"tiers": ["redis://localhost?codec=yaml"]}, r"codec must be one of 'json', 'msgpack', 'pickle', got 'yaml'"),
    ({"tiers": ["redis://localhost?on_error=ignore"]}, r"on_error must be one of"),
    ({"tiers": ["redis://localhost/abc"]}, r"the database must be a number, got 'abc'"),
    ({"tiers": [{"type": "redis", "secret": 123}]}, r"tiers\[0\].secret must be a non-empty string, got \*\*\*"),
    ({"caches": {"default": 5}}, r"caches.default must be a table"),
    ({"caches": {}, "ttl": 1}, r"unknown setting 'ttl': with 'caches'"),
    (["memory://"], r"configure\(\) takes a dict, a path to a TOML file or None, got list"),
]  # fmt: skip


@pytest.mark.parametrize("settings, message", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_settings_fail_at_configure_time_naming_the_setting(settings, message):
    with pytest.raises(ConfigurationError, match=message):
        configure(settings)


def test_bad_toml(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("tiers = [\n")
    with pytest.raises(ConfigurationError, match="is not valid TOML"):
        configure(bad)


def test_secrets_never_appear(redis_server):
    url = f"redis://:hunter2@127.0.0.1:{redis_server.port}/0"
    configure({"secret": "top-secret-signing-key", "tiers": ["memory://", url]})
    shown = repr(describe()) + repr(get_cache())
    assert "hunter2" not in shown and "top-secret" not in shown and "***" in shown
    with pytest.raises(ConfigurationError) as info:
        configure({"tiers": ["memory://?maxsize=0", url], "secret": "top-secret-signing-key"})
    assert "hunter2" not in str(info.value) and "top-secret" not in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        configure({"tiers": [f"redis://:hunter2@localhost?socket_timeout=x"]})
    assert "hunter2" not in str(info.value)


def test_public_names():
    for name in ("Cache", "MemoryTier", "DiskTier", "RedisTier", "cached", "configure", "get_cache"):
        assert hasattr(mlcache, name)
    assert MemoryTier and DiskTier
