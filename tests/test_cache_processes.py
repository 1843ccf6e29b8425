"""Two processes sharing L2 (a diskcache directory) and L3 (a Redis prefix)."""

from __future__ import annotations

import time

import pytest

from workers import Worker

L1_TTL = 0.5  # the documented bound on how long another process's L1 may lag


@pytest.fixture
def pair(tmp_path, redis_server):
    config = {
        "memory": {"maxsize": 100, "ttl": L1_TTL},
        "disk": {"directory": str(tmp_path / "l2")},
        "redis": {"url": redis_server.url, "prefix": f"procs{time.monotonic_ns()}:"},
    }
    a, b = Worker(config), Worker(config)
    yield a, b
    a.close()
    b.close()


def eventually(probe, expected, bound):
    """Poll ``probe`` until it returns ``expected``; fail if that takes longer than ``bound``."""
    start = time.monotonic()
    while True:
        value = probe()
        if value == expected:
            return time.monotonic() - start
        assert time.monotonic() - start < bound, f"still {value!r} after {bound} s"
        time.sleep(0.02)


def test_processes_see_each_others_writes_and_deletes(pair):
    a, b = pair
    a("set", "k", 1)
    assert b("get", "k") == 1  # b had nothing in L1: read through to L2
    a("set", "k", 2)
    lag = eventually(lambda: b("get", "k"), 2, L1_TTL + 1.0)  # b's L1 held 1 until it expired
    assert lag <= L1_TTL + 1.0
    b("set", "k", 3)
    eventually(lambda: a("get", "k"), 3, L1_TTL + 1.0)
    a("delete", "k")
    eventually(lambda: b("get", "k", "gone"), "gone", L1_TTL + 1.0)


def test_loads_are_shared_through_the_lower_tiers(pair):
    a, b = pair
    a("set_many", {"x": [1, 2], "y": None})
    assert b("get_many", ["x", "y", "z"]) == {"x": [1, 2], "y": None}
    assert b("stats")["tiers"]["disk"]["hits"] == 2
