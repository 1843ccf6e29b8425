"""@cache.cached and @mlcache.cached on every kind of callable, over real tiers, with both the
compiled and the pure hit path."""

from __future__ import annotations

import asyncio
import inspect
import sys

import pytest

import mlcache
from mlcache import Cache, InvalidKeyError
from mlcache.decorators import decorate
from mlcache.testing import FakeClock
from mlcache.tiers.base import physical_key


@pytest.fixture
def cached(build, impl):
    """cached(combo="L1+L2+L3", **decorator options) -> a decorator over a fresh cache whose
    L1 and hit path are the implementation under test."""
    made = {}

    def factory(combo="L1+L2+L3", cache_options=None, **options):
        faces = build(combo, impl=impl, **(cache_options or {}))
        made["cache"] = faces.cache
        defaults = {"ttl": None, "null_ttl": None, "stale_ttl": None, "stale_if_error": None,
                    "key": None, "typed": False, "namespace": None, "version": None}  # fmt: skip
        return lambda func: decorate(func, faces.cache, impl.HitPath, **{**defaults, **options})

    factory.made = made
    return factory


def test_plain_function_hits_l1_and_loads_once(cached):
    calls = []

    @cached(ttl=60)
    def square(x):
        calls.append(x)
        return x * x

    assert [square(3), square(3), square(x=3), square(4)] == [9, 9, 9, 16]
    assert calls == [3, 4]
    assert square.__name__ == "square" and square.__wrapped__ is square.uncached
    assert square.key(3) == f"{__name__}.test_plain_function_hits_l1_and_loads_once.<locals>.square|i3"
    assert isinstance(square.cache, Cache)


def test_arguments_bound_to_the_signature_share_an_entry(cached):
    calls = []

    @cached()
    def f(a, b=2, *, c=3):
        calls.append((a, b, c))
        return a + b + c

    assert f(1) == f(1, 2) == f(1, b=2) == f(a=1, b=2, c=3) == 6
    assert len(calls) == 1
    f(1, 3)
    assert len(calls) == 2


def test_plain_hit_path_and_string_keys_agree(cached):
    """Entries the hit path reads are the ones the string key names, in both directions."""
    calls = []

    @cached()
    def user(uid, org):
        calls.append((uid, org))
        return f"{org}/{uid}"

    assert user(1, "acme") == "acme/1"
    cache = cached.made["cache"]
    key = user.key(1, "acme")
    cache.set(key, "overwritten")
    assert user(1, "acme") == "overwritten"  # the hit path sees the write by key string
    assert cache.get(key) == "overwritten"
    assert cache.delete(key)
    assert user(1, "acme") == "acme/1" and len(calls) == 2


def test_a_look_alike_key_string_never_reaches_a_calls_l1_entry(cached):
    """``ns|i01`` decodes to the argument 1 but is not f(1)'s key: it must be its own entry."""

    calls = []

    @cached()
    def f(x):
        calls.append(x)
        return x * 10

    assert f(1) == 10
    namespace = f.key(1).partition("|")[0]
    cache = cached.made["cache"]
    cache.set(f"{namespace}|i01", "planted")
    assert f(1) == 10 and cache.get(f"{namespace}|i01") == "planted"
    cache.delete(f"{namespace}|i01")
    assert f(1) == 10 and calls == [1]  # still cached: the delete named another entry


def test_null_results_are_cached(cached):
    calls = []

    @cached(null_ttl=30)
    def find(uid):
        calls.append(uid)

    assert find(404) is None and find(404) is None
    assert calls == [404]


def test_invalidate_and_refresh_reach_every_tier(cached):
    counter = iter(range(100))

    @cached()
    def value(name):
        return f"{name}-{next(counter)}"

    assert value("a") == "a-0"
    cache = cached.made["cache"]
    memory, disk, redis_tier = cache.tiers
    pk = physical_key(value.key("a"))
    assert disk.get(pk) is not None and redis_tier.get(pk) is not None
    assert value.invalidate("a") is True
    assert disk.get(pk) is None and redis_tier.get(pk) is None
    assert value("a") == "a-1"
    assert value.refresh("a") == "a-2"
    assert value("a") == "a-2"
    assert disk.format.unpack(pk, disk.get(pk))[0].value == "a-2"
    assert redis_tier.format.unpack(pk, redis_tier.get(pk))[0].value == "a-2"


def test_methods_exclude_self_and_share_entries(cached):
    calls = []

    class Repo:
        def __init__(self, name):
            self.name = name

        @cached()
        def get(self, uid):
            calls.append((self.name, uid))
            return uid * 10

    a, b = Repo("a"), Repo("b")
    assert a.get(1) == b.get(1) == 10
    assert calls == [("a", 1)]  # one entry for both instances: self is not in the key
    assert a.get(uid=2) == 20 and Repo.get(a, 2) == 20
    assert a.get.invalidate(1) and a.get(1) == 10 and len(calls) == 3  # the instance is bound
    assert Repo.get.invalidate(a, 1) and a.get(1) == 10 and len(calls) == 4  # or passed
    assert b.get.key(1) == Repo.get.key(a, 1) == a.get.key(uid=1)
    assert b.get.refresh(1) == 10 and calls[-1] == ("b", 1)


def test_methods_keyed_by_instance_with_key_function(cached):
    class Repo:
        def __init__(self, tenant):
            self.tenant = tenant

        @cached(key=lambda self, uid: (self.tenant, uid))
        def get(self, uid):
            return f"{self.tenant}:{uid}"

    assert Repo("a").get(1) == "a:1" and Repo("b").get(1) == "b:1"


def test_classmethods_and_staticmethods(cached):
    calls = []

    class Models:
        @cached()
        @classmethod
        def build(cls, x):
            calls.append(("build", cls.__name__, x))
            return f"{cls.__name__}:{x}"

        @classmethod
        @cached()
        def make(cls, x):
            calls.append(("make", cls.__name__, x))
            return f"{cls.__name__}:{x}"

        @cached()
        @staticmethod
        def plain(x):
            calls.append(("plain", x))
            return x + 1

    class Sub(Models):
        pass

    assert Models.build(1) == "Models:1" and Sub.build(1) == "Sub:1"  # cls is in the key
    assert Models.build(1) == "Models:1"
    assert Models.make(2) == "Models:2" and Sub.make(2) == "Sub:2"
    assert Models.plain(5) == Models().plain(5) == 6
    assert len(calls) == 5


def test_async_functions(cached):
    calls = []

    @cached(ttl=60)
    async def fetch(uid, verbose=False):
        calls.append(uid)
        await asyncio.sleep(0.01)
        return {"id": uid}

    assert inspect.iscoroutinefunction(fetch)

    async def main():
        results = await asyncio.gather(*[fetch(1) for _ in range(20)])
        assert results == [{"id": 1}] * 20
        assert await fetch(1, verbose=False) == {"id": 1}
        assert await fetch.ainvalidate(1) is True
        assert await fetch(1) == {"id": 1}
        assert await fetch.arefresh(1) == {"id": 1}
        await cached.made["cache"].aclose()

    asyncio.run(main())
    assert calls == [1, 1, 1]
    with pytest.raises(TypeError, match="use arefresh"):
        fetch.refresh(1)


def test_async_methods(cached):
    class Service:
        @cached()
        async def get(self, x):
            return x * 2

    async def main():
        s = Service()
        assert await s.get(2) == 4 and await Service().get(2) == 4
        await cached.made["cache"].aclose()

    asyncio.run(main())


def test_unkeyable_argument_raises_before_calling(cached):
    calls = []

    @cached()
    def total(items):
        calls.append(items)
        return sum(items)

    with pytest.raises(InvalidKeyError, match="argument 'items'"):
        total([1, 2])
    assert calls == [] and total((1, 2)) == 3


def test_an_int_too_long_for_str_raises_before_calling(cached):
    calls = []

    @cached()
    def square(n):
        calls.append(n)
        return n * n

    with pytest.raises(InvalidKeyError, match="argument 'n'"):
        square(10 ** (sys.get_int_max_str_digits() + 1))
    assert calls == [] and square(3) == 9


def test_loader_exception_propagates_and_is_not_cached(cached):
    attempts = []

    @cached()
    def flaky(x):
        attempts.append(x)
        if len(attempts) == 1:
            raise ConnectionError("first call fails")
        return x

    with pytest.raises(ConnectionError):
        flaky(1)
    assert flaky(1) == 1 and len(attempts) == 2


def test_hit_path_defers_to_the_full_path_near_expiry(build, impl):
    """Within beta * 30 load times of expiry, a hit takes the full path, where early refresh
    is decided (here: always, with random() near 1)."""
    import time as _time

    clock = FakeClock()
    faces = build("L1", impl=impl, timer=clock, ttl=10, beta=1.0, random=lambda: 0.999999)
    calls = []

    def slow(x):
        calls.append(x)
        _time.sleep(0.05)
        return len(calls)

    f = decorate(slow, faces.cache, impl.HitPath, ttl=None, null_ttl=None, stale_ttl=None,
                 stale_if_error=None, key=None, typed=False, namespace=None, version=None)  # fmt: skip
    assert f(1) == 1
    clock.advance(5)  # 5 s left; 30 load times = 1.5 s: still served by the hit path
    assert f(1) == 1 and len(calls) == 1
    clock.advance(4.5)  # 0.5 s left: the full path refreshes early (-0.05 * ln(1e-6) > 0.5)
    assert f(1) == 2 and len(calls) == 2


def test_module_level_cached_uses_the_configured_default_cache(tmp_path):
    mlcache.configure({"tiers": ["memory://?maxsize=100", f"file://{tmp_path}/l2"]})
    calls = []

    @mlcache.cached(ttl=60)
    def f(x):
        calls.append(x)
        return x

    assert f(1) == 1 and f(1) == 1 and calls == [1]
    assert f.cache is mlcache.get_cache()
    mlcache.configure({"caches": {"default": {"tiers": ["memory://"]},
                                  "other": {"tiers": ["memory://"]}}})  # fmt: skip

    @mlcache.cached("other")
    def g(x):
        return x

    assert g(2) == 2 and g.cache is mlcache.get_cache("other")


def test_bare_decorator(tmp_path):
    mlcache.configure({"tiers": ["memory://"]})

    @mlcache.cached
    def h(x):
        return x

    assert h(3) == 3 and h.cache is mlcache.get_cache()


def test_another_process_sees_invalidate(cached, tmp_path):
    """invalidate() reaches the shared tiers at once (other processes' L1s lag by their TTL
    until the invalidation bus)."""
    from workers import Worker

    @cached()
    def f(x):
        return x

    cache = cached.made["cache"]
    other = Worker({"memory": None, "disk": {"directory": str(tmp_path / "l2")},
                    "redis": {"url": cache.tiers[2].url, "prefix": cache.tiers[2].prefix}})  # fmt: skip
    try:
        f(5)
        assert other("get", f.key(5)) == 5
        f.invalidate(5)
        assert other("get", f.key(5), "gone") == "gone"
    finally:
        other.close()
