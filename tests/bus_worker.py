"""One process of the invalidation scenarios: a writer or a reader over a shared "database"
(a SQLite file holding each key's version) and a cache with L1, L2 and L3.

    python bus_worker.py '<json>'

json: {"role": "writer" | "reader", "disk": dir, "redis": url, "db": path, "keys": n,
       "duration": s, "l1_ttl": s, "final_after": s}
After printing {"ready": true} it waits for a line on stdin, then runs for ``duration`` s.
The writer bumps a key's version in the database, then writes it through the cache (set, or
every fourth time delete), logging [key, version, acknowledged at]. A reader loads keys
through the cache, logging [key, version seen, read started at]. Then, ``final_after`` s later
(less than the L1 lifetime: only invalidations can have fixed a stale copy), each process
reads every key once more. Times are time.monotonic(), which every process shares.
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
import time

from mlcache import Cache, DiskTier, MemoryTier, RedisTier
from mlcache.resilience import CircuitBreaker


def main() -> None:
    spec = json.loads(sys.argv[1])
    db = sqlite3.connect(spec["db"], timeout=10, isolation_level=None)
    keys = [f"k{i}" for i in range(spec["keys"])]

    def breaker() -> CircuitBreaker:
        return CircuitBreaker(failures=3, window=2.0, cooldown=0.5)

    cache = Cache(
        MemoryTier(1000, ttl=spec["l1_ttl"]),
        DiskTier(spec["disk"], breaker=breaker()),
        RedisTier(spec["redis"], prefix="ledger:", breaker=breaker()),
        ttl=60,
    )
    assert cache._bus.wait_started(10)

    def load(key: str):
        return lambda: db.execute("SELECT version FROM t WHERE key = ?", (key,)).fetchone()[0]

    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()
    rng = random.Random(spec.get("seed", 0))
    log = []
    end = time.monotonic() + spec["duration"]
    version = 0
    while time.monotonic() < end:
        key = rng.choice(keys)
        if spec["role"] == "writer":
            version += 1
            db.execute("UPDATE t SET version = ? WHERE key = ?", (version, key))
            if version % 4:
                cache.set(key, version)
            else:
                cache.delete(key)
            log.append([key, version, time.monotonic()])
            time.sleep(0.003)
        else:
            started = time.monotonic()
            log.append([key, cache.get_or_load(key, load(key)), started])
            time.sleep(0.001)
    time.sleep(spec["final_after"])
    final = {key: cache.get_or_load(key, load(key)) for key in keys}
    print(json.dumps({"log": log, "final": final, "bus": cache.stats()["bus"]}), flush=True)
    cache.close()


if __name__ == "__main__":
    main()
