"""Shared fixtures: both implementations of every compiled class, and private Redis servers."""

from __future__ import annotations

import types

import pytest

import mlcache._drive
import mlcache.codecs
import mlcache.decorators
import mlcache.policies
import mlcache.tiers.memory
import mlcache.tiers.physical
from redis_proc import RedisServer, require_redis_server

try:
    from mlcache import _speedups
except ImportError:  # pure-only install (MLCACHE_NO_EXTENSIONS=1 at build time)
    _speedups = None

PURE = types.SimpleNamespace(
    name="pure",
    MemoryTier=mlcache.tiers.memory.MemoryTier,
    POLICIES=mlcache.policies.POLICIES,
    EnvelopeFormat=mlcache.codecs.EnvelopeFormat,
    HitPath=mlcache.decorators.HitPath,
    physical_key=mlcache.tiers.physical.physical_key,
    run=mlcache._drive.run,
)
COMPILED = (
    None
    if _speedups is None
    else types.SimpleNamespace(
        name="compiled",
        MemoryTier=_speedups.MemoryTier,
        POLICIES=_speedups.POLICIES,
        EnvelopeFormat=_speedups.EnvelopeFormat,
        HitPath=_speedups.HitPath,
        physical_key=_speedups.physical_key,
        run=_speedups.run,
    )
)
IMPLS = [PURE] if COMPILED is None else [COMPILED, PURE]


@pytest.fixture(params=IMPLS, ids=[i.name for i in IMPLS])
def impl(request):
    """Each implementation (compiled and pure) of the twinned classes."""
    return request.param


@pytest.fixture
def both():
    """(compiled, pure), for differential tests; skipped when the extension is not built."""
    if COMPILED is None:
        pytest.skip("the compiled extension is not built")
    return COMPILED, PURE


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One private redis-server for the session (tests flush what they use)."""
    require_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_factory(tmp_path):
    """Start private redis-servers that the test may kill, pause and restart."""
    servers: list[RedisServer] = []

    require_redis_server()

    def start(*extra: str) -> RedisServer:
        server = RedisServer(tmp_path / f"redis{len(servers)}", None, *extra).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# -- tiered caches --------------------------------------------------------------------------

import asyncio  # noqa: E402
import threading  # noqa: E402
import itertools  # noqa: E402

from mlcache import Cache, DiskTier, RedisTier  # noqa: E402

COMBOS = ["L1", "L1+L2", "L1+L3", "L2", "L3", "L2+L3", "L1+L2+L3"]
# Tests of behaviour (not of timeouts) give Redis commands and connections room on a busy 2-core
# machine (a Cluster client's first command connects twice; 100 ms was once too short in CI);
# the fault tests set their own tight timeouts.
_PATIENT = {"socket_timeout": 1.0, "connect_timeout": 1.0}
_prefixes = itertools.count()


class HeldLoad:
    """``cache.get_or_load(key, ...)`` running in another thread, held inside its loader (which
    then returns ``value``) until ``release()``; built once the loader has started."""

    def __init__(self, cache, key, value="loaded"):
        self.result = []
        loading, self._go = threading.Event(), threading.Event()

        def loader():
            loading.set()
            self._go.wait(30)
            return value

        self.thread = threading.Thread(target=lambda: self.result.append(cache.get_or_load(key, loader)))
        self.thread.start()
        assert loading.wait(10), "the load did not start"

    def release(self):
        self._go.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the held load did not end"


class Faces:
    """Calls the sync API, or the async one on a private event loop, by the same names."""

    def __init__(self, cache: Cache, face: str) -> None:
        self.cache, self.face = cache, face
        self.loop = asyncio.new_event_loop() if face == "async" else None

    def __getattr__(self, name: str):
        if self.loop is None or name not in {
            "get", "set", "delete", "get_or_load", "get_many", "set_many", "clear", "close",
        }:  # fmt: skip
            return getattr(self.cache, name)
        method = getattr(self.cache, "a" + name)
        return lambda *a, **k: self.loop.run_until_complete(method(*a, **k))

    def finish(self) -> None:
        self.close()
        if self.loop is not None:
            self.loop.close()


def building(request, tmp_path, redis_url, prefix="t"):
    """The body of a ``build`` fixture whose L3 is at ``redis_url()``: yields ``make``, then
    closes every cache it made."""
    made: list[Faces] = []
    face = getattr(request, "param", "sync")

    def make(combo: str, *, memory=None, disk=None, redis=None, face=face, impl=None, **options):
        tiers = []
        if "L1" in combo:
            tier_cls = (impl or IMPLS[0]).MemoryTier
            tiers.append(tier_cls(**{"maxsize": 1000, "timer": options.get("timer"), **(memory or {})}))
        if "L2" in combo:
            tiers.append(DiskTier(**{"directory": tmp_path / "l2", **(disk or {})}))
        if "L3" in combo:
            tiers.append(RedisTier(
                **{"url": redis_url(), "prefix": f"{prefix}{next(_prefixes)}:", **_PATIENT, **(redis or {})}
            ))  # fmt: skip
        faces = Faces(Cache(*tiers, **options), face)
        made.append(faces)
        return faces

    yield make
    for faces in made:
        faces.finish()


@pytest.fixture
def build(request, tmp_path):
    """build(combo, **options) -> a Cache over fresh tiers (Redis: a private server, a fresh
    prefix), driven through the face under test (``face`` parameter, default sync)."""
    yield from building(request, tmp_path, lambda: request.getfixturevalue("redis_server").url)


@pytest.fixture
def shared_redis():
    """Options that make several caches of one test share a Redis prefix."""
    return {"prefix": f"shared{next(_prefixes)}:"}


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory, monkeypatch):
    """Every test starts unconfigured, with a private per-user cache directory, and leaves
    nothing configured behind."""
    import mlcache.settings as settings

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    for name in list(__import__("os").environ):
        if name.startswith("MLCACHE_") and name not in ("MLCACHE_NO_EXTENSIONS", "MLCACHE_PURE_PYTHON",
                                                        "MLCACHE_REQUIRE_REDIS", "MLCACHE_REQUIRE_EXTENSIONS"):
            monkeypatch.delenv(name)
    yield
    with settings._lock:
        caches = list(settings._caches.values())
        settings._caches.clear()
        settings._settings = None
    for cache in caches:
        cache.close()
