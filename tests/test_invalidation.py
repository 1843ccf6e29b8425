"""The invalidation bus, between caches that stand for separate processes (each has its own
origin; two L2 directories stand for two hosts)."""

from __future__ import annotations

import time

import pytest
import redis as redis_py

from mlcache import Cache, DiskTier, MemoryTier, RedisTier
from mlcache.invalidation import stream_id
from mlcache.tiers.base import physical_key

pytestmark = pytest.mark.timeout(60)


def settled(*caches):
    """Wait until every cache has published what it wrote and applied what the others did."""
    for cache in caches:
        eventually(cache._bus.idle)
    target = stream_id(caches[0]._bus._tier.bus_last())
    for cache in caches:
        eventually(lambda: cache._bus.position >= target)


def eventually(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "did not happen in time"
        time.sleep(0.005)
    return True


def making(tmp_path, url):
    """The body of a ``make`` fixture over the Redis at ``url``: yields make(host="a", l1=True,
    **options) -> a Cache standing for one process (``host``: which L2 directory, or None),
    then closes them all."""
    made = []
    prefix = f"bus{time.monotonic_ns()}:"

    def make_cache(host="a", l1=True, **options):
        tiers = [MemoryTier(1000)] if l1 else []
        if host:
            tiers.append(DiskTier(tmp_path / f"host-{host}"))
        tiers.append(RedisTier(url, prefix=prefix, **options.pop("redis", {})))
        cache = Cache(*tiers, **options)
        made.append(cache)
        assert cache._bus.wait_started(5)
        return cache

    yield make_cache
    for cache in made:
        cache.close()


@pytest.fixture
def make(tmp_path, redis_server):
    yield from making(tmp_path, redis_server.url)


def test_a_write_drops_the_other_processes_l1_copy(make):
    a, b = make(), make()
    a.set("k", 1)
    settled(a, b)
    assert b.get("k") == 1  # now in b's L1
    a.set("k", 2)
    eventually(lambda: b.tiers[0].get("k") is None)
    assert b.get("k") == 2
    a.delete("k")
    eventually(lambda: b.get("k", "gone") == "gone")


def test_own_messages_are_not_applied(make):
    a = make()
    a.set("k", 1)
    eventually(lambda: a._bus.stats()["messages"] >= 1)
    time.sleep(0.1)
    assert a.tiers[0].get("k") == 1 and a._bus.stats()["applied"] == 0


def test_another_hosts_l2_copy_is_dropped_too(make):
    a, b = make(host="a"), make(host="b")
    a.set("k", "v1")
    settled(a, b)  # (b drops what it did not have yet, then reads)
    assert b.get("k") == "v1"  # b's host now has it in L1 and in its own L2
    pk = physical_key("k")
    assert b.tiers[1].get(pk) is not None
    a.set("k", "v2")
    eventually(lambda: b.tiers[1].get(pk) is None and b.tiers[0].get("k") is None)
    assert b.get("k") == "v2"


def test_same_host_l2_is_left_alone(make):
    a, b = make(host="a"), make(host="a")
    a.set("k", "v1")
    b.get("k")
    a.set("k", "v2")
    eventually(lambda: b.tiers[0].get("k") is None)
    assert b.tiers[1].get(physical_key("k")) is not None  # a wrote the new value there
    assert b.get("k") == "v2"


def test_bursts_are_batched(make):
    a, b = make(), make()
    b_messages = b._bus.stats()["received"]
    a.set_many({f"k{i}": i for i in range(500)})
    eventually(lambda: b._bus.stats()["applied"] - b_messages >= 1)
    time.sleep(0.1)
    assert b._bus.stats()["received"] - b_messages <= 3  # 500 keys in one or a few messages


def test_clear_flushes_the_others(make):
    a, b = make(), make()
    a.set("k", 1)
    b.get("k")
    a.clear()
    eventually(lambda: len(b.tiers[0]) == 0)


def test_a_killed_reader_connection_reconnects_without_losing_news(make, redis_server):
    killed_reader_scenario(make, [redis_server.port])


def killed_reader_scenario(make, ports):
    """``ports``: the servers where the readers' XREAD connections may be."""
    a, b = make(), make()
    a.set("k", 1)
    b.get("k")
    killed = 0
    for port in ports:
        admin = redis_py.Redis(port=port)
        for client in admin.client_list():
            if client.get("cmd") == "xread":
                admin.client_kill_filter(_id=client["id"])
                killed += 1
    assert killed >= 2  # every reader's blocking connection
    a.set("k", 2)  # published while b reconnects: the stream keeps it for b
    eventually(lambda: b.get("k") == 2)
    assert b._bus.stats()["gaps"] == 0


def test_a_trimmed_stream_is_a_gap_flush_and_suspect_l2(make, redis_server, monkeypatch):
    a = make(host="a")
    b = make(host="b")
    b.set("mine", 1)
    settled(a, b)
    offline = {"on": True}
    real_read = b._bus._tier.bus_read

    def read(*args):  # b is cut off (fault injection) ...
        if offline["on"]:
            time.sleep(0.01)
            raise ConnectionError("cut off")
        return real_read(*args)

    monkeypatch.setattr(b._bus._tier, "bus_read", read)
    b._bus._tier.bus_interrupt()
    admin = redis_py.Redis(port=redis_server.port)
    admin.xtrim(a._bus._tier._bus, maxlen=0)  # ... while the stream drops what it had not read
    a.set("x", 1)
    offline["on"] = False
    eventually(lambda: b._bus.stats()["gaps"] == 1)
    assert len(b.tiers[0]) == 0
    assert b.get("mine") == 1  # from L3: L2's copy is suspect now
    assert b.stats()["tiers"]["disk"]["suspect"] >= 1


def test_redis_down_during_writes_then_replay(make, redis_factory, tmp_path):
    server = redis_factory()
    prefix = "replay:"
    a = Cache(MemoryTier(100), DiskTier(tmp_path / "a"), RedisTier(server.url, prefix=prefix))
    b = Cache(MemoryTier(100), DiskTier(tmp_path / "b"), RedisTier(server.url, prefix=prefix))
    try:
        assert a._bus.wait_started(5) and b._bus.wait_started(5)
        a.set("k", "old")
        settled(a, b)
        assert b.get("k") == "old"
        server.pause()  # unreachable, keeping its data (and the old value in L3)
        a.set("k", "new")  # reaches a's L1 and L2 only: queued for the bus, L3 to repair
        assert b.get("k") == "old"  # b cannot know yet (bounded by its L1 lifetime)
        assert a._bus.stats()["queued"] >= 1
        server.resume()
        eventually(lambda: b.tiers[0].get("k") is None, timeout=10)  # replayed
        assert b.get_or_load("k", lambda: "reloaded") == "reloaded"  # L3's old copy is gone
        assert a._bus.stats()["queued"] == 0
    finally:
        a.close()
        b.close()


def test_queue_overflow_makes_every_peer_flush(redis_factory, tmp_path):
    server = redis_factory()
    a = Cache(MemoryTier(100), RedisTier(server.url, prefix="ovf:"))
    b = Cache(MemoryTier(100), RedisTier(server.url, prefix="ovf:"))
    try:
        assert a._bus.wait_started(5) and b._bus.wait_started(5)
        a._bus.queue_limit = 5
        a.set("keep", 1)
        b.get("keep")
        server.pause()
        for i in range(20):
            a.set(f"k{i}", i)
        assert a._bus.stats()["overflows"] >= 1
        server.resume()
        eventually(lambda: len(b.tiers[0]) == 0, timeout=10)  # b flushed
        eventually(lambda: a._bus.stats()["queued"] == a._bus.stats()["flush_pending"] == 0, timeout=10)
        assert b.get("keep", "gone") == "gone"  # L3 was cleared too
    finally:
        a.close()
        b.close()


def test_no_bus_without_redis_or_when_turned_off(tmp_path, redis_server):
    assert Cache(MemoryTier(10), DiskTier(tmp_path))._bus is None
    assert Cache(MemoryTier(10), RedisTier(redis_server.url), invalidation=False)._bus is None
    assert Cache(RedisTier(redis_server.url))._bus is None  # nothing above L3 to invalidate


def test_a_restart_resumes_from_the_hosts_position(make, redis_server, tmp_path):
    a = make(host="a")
    b = make(host="b")
    a.set("k", "v1")
    b.get("k")
    eventually(lambda: b._bus._tier is not None)
    time.sleep(1.2)  # b saved its host's position
    b.close()
    a.set("k", "v2")  # b's host is away: nobody drops its L2 copy now
    b2 = make(host="b")  # a process starting on b's host later
    eventually(lambda: b2.tiers[1].get(physical_key("k")) is None)  # caught up from the position
    assert b2.get("k") == "v2"


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork()")
def test_a_forked_child_hears_the_parents_writes(make):
    """The child's L1 is a copy of the parent's: it must read the bus on from the parent's
    position, as a process of its own (the parent's messages are not the child's own)."""
    import os

    parent = make()
    parent.set("k", "old")
    settled(parent)
    reader, writer = os.pipe()
    go_reader, go_writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(go_writer)
            os.read(go_reader, 1)  # the parent has written "new"
            deadline = time.monotonic() + 10
            while parent.tiers[0].get("k") == "old" and time.monotonic() < deadline:
                time.sleep(0.01)
            os.write(writer, repr(parent.get("k")).encode())
        finally:
            os._exit(0)
    os.close(writer)
    os.close(go_reader)
    parent.set("k", "new")
    os.write(go_writer, b"x")
    with os.fdopen(reader) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    assert answer == "'new'"


def test_a_burst_on_a_healthy_redis_is_published_whole(make):
    """The queue limit is for an unreachable Redis: a burst bigger than it, while Redis
    answers, is published in batches; nothing is forgotten, nobody flushes, L3 is kept."""
    a, b = make(), make()
    a._bus.queue_limit, a._bus.batch = 5, 7
    b.set("keep", 1)
    b.set("k3", "old")
    settled(a, b)
    a.set_many({f"k{i}": i for i in range(50)})
    settled(a, b)
    assert a._bus.stats()["overflows"] == 0 and a._bus.stats()["messages"] >= 50 // 7
    assert b.tiers[0].get("keep") == 1  # not flushed
    assert b.tiers[0].get("k3") is None and b.get("k3") == 3  # dropped, then read from L3


def test_forgotten_notices_flush_the_peers_but_keep_l3(make, monkeypatch):
    """Publishing fails while L3 writes succeed (the stream's node is down): past the queue
    limit the peers flush, but L3 holds every write, so it is not cleared."""
    a, b = make(), make()
    a._bus.queue_limit = 5
    b.set("keep", 1)
    settled(a, b)
    assert b.tiers[0].get("keep") == 1
    tier = a._bus._tier

    def unreachable(*args, **kwargs):
        raise ConnectionError("the stream's node is down")

    monkeypatch.setattr(tier, "bus_publish", unreachable)
    a.set("first", 0)
    eventually(lambda: a._bus._failing)
    for i in range(20):
        a.set(f"k{i}", i)
    assert a._bus.stats()["overflows"] >= 1 and a._bus.stats()["flush_pending"] == 1
    monkeypatch.undo()
    eventually(lambda: b.tiers[0].get("keep") is None)  # b flushed its L1
    settled(a, b)
    assert b.get("keep") == 1 and b.get("k7") == 7  # L3 kept everything


def test_a_malformed_message_is_counted_and_the_reader_goes_on(make, redis_server):
    a, b = make(), make()
    b.set("keep", 1)
    settled(a, b)
    stream = redis_py.Redis.from_url(redis_server.url)
    for garbage in (b"{not json", b"[1, 2]", b'{"k": 1}', b"\xff"):
        stream.xadd(a._bus._tier._bus, {b"o": b"someone", b"h": b"elsewhere", b"k": garbage})
    stream.xadd(a._bus._tier._bus, {b"o": b"someone"})  # no keys at all: "[]", nothing to drop
    eventually(lambda: b._bus.stats()["malformed"] == 4)
    assert b.tiers[0].get("keep") is None  # anything may have changed: flushed
    b.get("k")
    a.set("k", 2)  # and the reader is not stuck on them
    eventually(lambda: b.tiers[0].get("k") is None)


def test_a_damaged_saved_position_is_a_fresh_start_with_l2_suspect(make, tmp_path):
    a = make(host="a")
    key = a._bus._position_key
    a.close()
    DiskTier(tmp_path / "host-a").set(key, b"not-a-stream-id", None)
    c, d = make(host="a"), make(host="b")
    assert c._bus._saved is None and c._l2_cutoff > float("-inf")  # L2 is suspect
    c.get("k")
    d.set("k", 1)
    eventually(lambda: c.tiers[0].get("k") is None or c.get("k") == 1)
    assert c.get("k") == 1


def test_at_exit_what_is_queued_is_published(make, redis_server, tmp_path):
    """A process that ends without close() still publishes its last writes (1 s at most)."""
    import subprocess
    import sys

    b = make(host="b")
    b.set("k", "old")
    settled(b)
    prefix = b._bus._tier.prefix
    script = f"""
import time
from mlcache import Cache, DiskTier, MemoryTier, RedisTier
cache = Cache(MemoryTier(10), DiskTier({str(tmp_path / 'host-a')!r}), RedisTier({redis_server.url!r}, prefix={prefix!r}))
assert cache._bus.wait_started(5)
tier = cache._bus._tier
publish = tier.bus_publish
def slow(*args, **kwargs):  # the exit comes before the publisher's first try ends
    time.sleep(0.3)
    return publish(*args, **kwargs)
tier.bus_publish = slow
cache.set("k", "new")
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    eventually(lambda: b.tiers[0].get("k") is None)
    assert b.get("k") == "new"
