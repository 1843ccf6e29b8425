"""The workload of the fault-injection tests: 8 threads of mixed get_or_load/set on a cache with
L1, L2 and L3, for a while, reporting every call and the tiers' state over time.

    python fault_worker.py '<json>'

json: {"disk": dir or null, "redis": url or null, "on_error": "skip" | "raise",
       "duration": s, "threads": n, "keys": n, "sample": s, "timeout": redis socket timeout}
Prints {"calls": [[start, latency, status], ...], "samples": [[t, {tier: stats}], ...],
"errors": [first few error reprs]}; status is "ok", "wrong" (a value that was never written
for that key) or "error" (an exception reached the caller).
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time

from mlcache import Cache, DiskTier, MemoryTier, RedisTier
from mlcache.resilience import CircuitBreaker


def main() -> None:
    spec = json.loads(sys.argv[1])
    breaker = {"failures": 3, "window": 2.0, "cooldown": 0.5}
    tiers = [MemoryTier(maxsize=20, ttl=0.5)]
    if spec.get("disk"):
        tiers.append(DiskTier(spec["disk"], timeout=0.1, breaker=CircuitBreaker(**breaker),
                              on_error=spec.get("on_error", "skip")))  # fmt: skip
    if spec.get("redis"):
        tiers.append(RedisTier(spec["redis"], prefix="faults:", socket_timeout=spec.get("timeout", 0.05),
                               connect_timeout=0.05, breaker=CircuitBreaker(**breaker),
                               on_error=spec.get("on_error", "skip")))  # fmt: skip
    cache = Cache(*tiers, ttl=30, lock_timeout=1.0, lease_ttl=1.0)
    t0 = time.monotonic()
    end = t0 + spec["duration"]
    calls: list[list] = []
    errors: list[str] = []
    samples: list[list] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        n = 0
        while time.monotonic() < end:
            key = f"k{rng.randrange(spec['keys'])}"
            n += 1
            started = time.monotonic()
            try:
                if rng.random() < 0.7:
                    value = cache.get_or_load(key, lambda: f"{key}:load")
                else:
                    value = f"{key}:set{seed}.{n}"
                    cache.set(key, value)
                status = "ok" if isinstance(value, str) and value.startswith(key + ":") else "wrong"
            except Exception as exc:  # reported: the tests want none in fail-safe mode
                status = "error"
                if len(errors) < 5:
                    errors.append(repr(exc))
            calls.append([round(started - t0, 4), round(time.monotonic() - started, 5), status])

    def sampler() -> None:
        while time.monotonic() < end:
            stats = cache.stats()["tiers"]
            samples.append([round(time.monotonic() - t0, 3),
                            {name: {k: v for k, v in s.items() if k != "latency"} for name, s in stats.items()}])
            time.sleep(spec.get("sample", 0.1))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(spec.get("threads", 8))]
    threads.append(threading.Thread(target=sampler))
    for t in threads:
        t.start()
    print(json.dumps({"ready": True}), flush=True)
    for t in threads:
        t.join()
    print(json.dumps({"calls": calls, "samples": samples, "errors": errors}), flush=True)
    cache.close()


if __name__ == "__main__":
    main()
