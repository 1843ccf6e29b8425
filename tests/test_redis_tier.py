"""RedisTier on its own: settings it refuses, masking, copy-up fills, lease renewal, clients."""

from __future__ import annotations

import asyncio
import datetime
import gc
import math

import pytest
import redis

from mlcache import Cache, ConfigurationError, RedisTier
from mlcache.tiers.redis import mask_url


@pytest.mark.parametrize("prefix", ["", "app", "app2", 7])
def test_prefixes_that_clear_could_overreach_are_refused(redis_server, prefix):
    with pytest.raises(ConfigurationError, match="prefix"):
        RedisTier(redis_server.url, prefix=prefix)


@pytest.mark.parametrize("option", ["socket_timeout", "connect_timeout"])
@pytest.mark.parametrize("value", [-1, 0, math.nan, math.inf, "1", True])
def test_bad_timeouts_are_refused(redis_server, option, value):
    with pytest.raises(ConfigurationError, match=option):
        RedisTier(redis_server.url, **{option: value})


def test_a_password_in_the_query_string_is_masked(redis_server):
    url = "unix:///run/redis.sock?db=0&password=hunter2&client_name=x"
    assert mask_url(url) == "unix:///run/redis.sock?db=0&password=***&client_name=x"
    tier = RedisTier(f"{redis_server.url}?password=hunter2", prefix="q:")
    assert "hunter2" not in repr(tier) and "hunter2" not in repr(Cache(tier, invalidation=False))


def test_values_read_from_redis_have_the_types_they_were_cached_with(redis_server):
    """No secret: L3 uses msgpack, and another process (no L1 copy) gets a tuple back as a
    tuple, a date as a date: the same value as the writer's L1 serves."""
    value = {"pair": (1, "a"), "tags": {"x"}, "at": datetime.date(2024, 5, 1), (1, 2): [(3,)]}
    writer = Cache(RedisTier(redis_server.url, prefix="types:"), invalidation=False)
    reader = Cache(RedisTier(redis_server.url, prefix="types:"), invalidation=False)
    writer.set("k", value)
    back = reader.get("k")
    assert back == value and type(back["pair"]) is tuple and type(back[(1, 2)][0]) is tuple
    writer.close()
    reader.close()


def test_fill_never_overwrites_and_keeps_the_lease(redis_server):
    tier = RedisTier(redis_server.url, prefix="fill:")
    tier.clear()
    assert tier.lease_acquire(b"k", b"token", 5) is None
    assert tier.fill(b"k", b"one", None, 0.0) is True
    assert tier.fill(b"k", b"two", 10, 0.0) is False
    assert tier.fill_many([(b"k", b"three", None), (b"j", b"four", 10)], 0.0) == 1
    assert tier.get_many([b"k", b"j"]) == [b"one", b"four"]
    assert tier.lease_acquire(b"k", b"other", 5) == b"token"  # a fill is no write: still held
    tier.close()


def test_lease_renew_extends_only_the_holders_lease(redis_server):
    tier = RedisTier(redis_server.url, prefix="renew:")
    admin = redis.Redis(port=redis_server.port)
    assert tier.lease_acquire(b"k", b"mine", 0.5) is None
    assert tier.lease_renew(b"k", b"mine", 30) is True
    assert admin.pttl(b"renew:\x00lease:k") > 20_000
    assert tier.lease_renew(b"k", b"not mine", 60) is False
    tier.set(b"k", b"written", None)  # a write takes the lease away ...
    assert tier.lease_renew(b"k", b"mine", 30) is False  # ... and a renewal cannot bring it back
    tier.close()


def test_one_wake_up_wakes_every_waiter_at_once_and_later_ones_too(redis_server):
    """Waiters in several processes (here: tiers, each with its own connections) are all woken
    by the holder's one write, with no waiter passing anything on; one that starts waiting
    after the write returns at once."""
    import threading
    import time

    tiers = [RedisTier(redis_server.url, prefix="wake:") for _ in range(4)]
    holder = tiers[0]
    holder.clear()
    assert holder.lease_acquire(b"k", b"holder", 10) is None
    woken: list[tuple[bool, float]] = []
    waiters = [
        threading.Thread(target=lambda t=t: woken.append((t.lease_wait(b"k", b"holder", 5), time.monotonic())))
        for t in tiers[1:]
    ]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.2)
    assert not woken  # all blocked
    written = time.monotonic()
    assert holder.set_under_lease(b"k", b"value", 60, b"holder")
    for waiter in waiters:
        waiter.join(5)
    assert [w for w, _ in woken] == [True] * 3
    assert all(at - written < 0.5 for _, at in woken)  # none waited out its 1 s slice
    started = time.monotonic()
    assert tiers[1].lease_wait(b"k", b"holder", 5) is True  # late: no wait at all
    assert time.monotonic() - started < 0.5
    assert tiers[1].lease_wait(b"k", b"someone else", 0.05) is False
    for tier in tiers:
        tier.close()


def test_clients_of_closed_event_loops_are_not_kept(redis_server):
    admin = redis.Redis(port=redis_server.port)
    name = b"loops-test"
    tier = RedisTier(f"{redis_server.url}?client_name=loops-test", prefix="loops:")
    cache = Cache(tier, invalidation=False)
    for _ in range(20):
        asyncio.run(cache.aget("k"))  # sync code calling an async API: a new loop each time
    gc.collect()
    assert len(tier._async) <= 1
    open_now = [c for c in admin.client_list() if c.get("name", "").encode() == name]
    assert len(open_now) <= 4  # the last loop's clients, not twenty loops' worth
    cache.close()
