"""Single-flight across processes: 4 processes x 16 threads, and a lease holder killed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

pytestmark = pytest.mark.timeout(120)

WORKER = Path(__file__).with_name("stampede_worker.py")


def spawn(spec: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), json.dumps(spec)], stdout=subprocess.PIPE, text=True
    )


def config(tmp_path, redis_server, prefix, with_redis=True, lease_ttl=10.0):
    return {
        "memory": {"maxsize": 100},
        "disk": {"directory": str(tmp_path / "l2")},
        "redis": {"url": redis_server.url, "prefix": prefix} if with_redis else None,
        "cache": {"lease_ttl": lease_ttl},
    }


@pytest.mark.parametrize("with_redis", [True, False], ids=["L1+L2+L3", "L1+L2"])
def test_4_processes_x_16_threads_one_load(tmp_path, redis_server, with_redis):
    key = f"cold-{with_redis}"
    start_at = time.time() + 2.0  # every process has started by then
    specs = [
        {"config": config(tmp_path, redis_server, "procs:", with_redis), "key": key, "threads": 16,
         "start_at": start_at, "delay": 0.05, "counter": redis_server.url}
        for _ in range(4)
    ]  # fmt: skip
    procs = [spawn(spec) for spec in specs]
    outs = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    values = [v for out in outs for v in out["values"]]
    assert len(values) == 64 and len(set(values)) == 1  # everyone got the same value
    assert sum(out["loads"] for out in outs) == 1
    assert int(redis.Redis(port=redis_server.port).get(f"loads:{key}")) == 1
    # with Redis, waiters are woken at once; with the disk alone they poll (<= 50 ms apart)
    assert max(out["seconds"] for out in outs) < 0.05 + 1.0


def test_killed_lease_holder_is_replaced_after_the_lease_ttl(tmp_path, redis_server):
    key = "holder-dies"
    lease_ttl = 1.0
    holder = spawn({"config": config(tmp_path, redis_server, "kill:", lease_ttl=lease_ttl),
                    "key": key, "threads": 1, "start_at": time.time(), "delay": 0,
                    "counter": redis_server.url, "hang": True})  # fmt: skip
    assert json.loads(holder.stdout.readline()) == {"holding": True}
    waiter_start = time.time()
    waiter = spawn({"config": config(tmp_path, redis_server, "kill:", lease_ttl=lease_ttl),
                    "key": key, "threads": 4, "start_at": waiter_start, "delay": 0.05,
                    "counter": redis_server.url})  # fmt: skip
    time.sleep(0.3)  # the waiter is blocked on the holder's lease
    killed_at = time.time()
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    out = json.loads(waiter.communicate(timeout=30)[0])
    assert len(set(out["values"])) == 1 and out["loads"] == 1  # one takeover, one load
    assert int(redis.Redis(port=redis_server.port).get(f"loads:{key}")) == 2  # the dead one's too
    done_after_kill = waiter_start + out["seconds"] - killed_at
    assert done_after_kill <= lease_ttl + 1.0  # the lease ran out, one waiter took over
