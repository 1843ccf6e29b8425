"""L1 MemoryTier against functools.lru_cache, cachetools and cachebox (issue: foundation).

Run:  python benchmarks/bench_memory.py [--rounds N] [--quick]

Reports, for get hit, insert with eviction and a Zipf(0.99) get-or-set mix (100k keys,
capacity 10k), the median of per-round time ratios to cachebox.LRUCache; then bytes per entry
for 1M entries (RSS growth in a fresh process per contender).
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import threading
from pathlib import Path

import cachebox
import cachetools

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import interleaved, table  # noqa: E402

import mlcache  # noqa: E402
from mlcache.bench.zipf import zipf_trace  # noqa: E402
from mlcache.tiers.memory import MemoryTier as PureMemoryTier  # noqa: E402

try:
    from mlcache._speedups import MemoryTier as CompiledMemoryTier
except ImportError:
    CompiledMemoryTier = None

CAPACITY = 10_000


def contenders() -> dict[str, object]:
    """name -> factory of an empty LRU cache of CAPACITY entries."""
    out: dict[str, object] = {"cachebox.LRUCache": lambda: cachebox.LRUCache(CAPACITY)}
    if CompiledMemoryTier is not None:
        out["mlcache compiled"] = lambda: CompiledMemoryTier(CAPACITY, "lru")
    out["mlcache pure"] = lambda: PureMemoryTier(CAPACITY, "lru")
    out["cachetools.LRUCache"] = lambda: cachetools.LRUCache(CAPACITY)
    out["cachetools.LRUCache + Lock"] = lambda: LockedCache(cachetools.LRUCache(CAPACITY))
    out["functools.lru_cache"] = lambda: functools.lru_cache(maxsize=CAPACITY)(lambda k: k)
    return out


class LockedCache:
    """cachetools as its documentation says to share it between threads: behind a lock."""

    def __init__(self, cache) -> None:
        self.cache, self.lock = cache, threading.Lock()

    def get(self, key):
        with self.lock:
            return self.cache.get(key)

    def __setitem__(self, key, value):
        with self.lock:
            self.cache[key] = value


def accessors(cache):
    """(get, put) for any contender; lru_cache's get is a call (a hit once filled)."""
    if isinstance(cache, (CompiledMemoryTier or PureMemoryTier, PureMemoryTier)):
        return cache.get, cache.set
    if callable(cache):  # functools.lru_cache
        return cache, lambda k, v: cache(k)
    return cache.get, cache.__setitem__


def bench_get_hit(ops: int, rounds: int) -> list:
    keys = list(range(1000))
    cases = {}
    for name, factory in contenders().items():
        cache = factory()
        get, put = accessors(cache)
        for k in keys:
            put(k, k)

        def run(n, get=get):
            for k in keys * (n // len(keys)):
                get(k)

        cases[name] = run
    return interleaved(cases, baseline="cachebox.LRUCache", ops=ops, rounds=rounds)


def bench_insert_evict(ops: int, rounds: int) -> list:
    cases = {}
    for name, factory in contenders().items():
        cache = factory()
        get, put = accessors(cache)
        for k in range(CAPACITY):
            put(k, k)
        state = {"next": CAPACITY}

        def run(n, put=put, state=state):
            start = state["next"]
            for k in range(start, start + n):
                put(k, k)
            state["next"] = start + n

        cases[name] = run
    return interleaved(cases, baseline="cachebox.LRUCache", ops=ops, rounds=rounds)


def bench_zipf(ops: int, rounds: int) -> tuple[list, dict[str, float]]:
    trace = zipf_trace(0.99, 100_000, ops, seed=7)
    cases, hit_ratios = {}, {}
    for name, factory in contenders().items():
        holder = {}

        def run(n, factory=factory, holder=holder):
            cache = holder["cache"] = factory()  # every round starts cold
            get, put = accessors(cache)
            if callable(cache) and not hasattr(cache, "get"):
                for k in trace[:n]:
                    cache(k)
                return
            for k in trace[:n]:
                if get(k) is None:
                    put(k, k)

        cases[name] = run
    results = interleaved(cases, baseline="cachebox.LRUCache", ops=ops, rounds=rounds)
    return results, hit_ratios


MEMORY_SNIPPET = r"""
import gc, json, sys
name, n = sys.argv[1], int(sys.argv[2])
keys = list(range(10**9, 10**9 + n))
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
if name == "cachebox.LRUCache":
    import cachebox; c = cachebox.LRUCache(n); put = c.__setitem__
elif name == "cachetools.LRUCache":
    import cachetools; c = cachetools.LRUCache(n); put = c.__setitem__
elif name == "functools.lru_cache":
    import functools; c = functools.lru_cache(maxsize=n)(lambda k: k); put = lambda k, v: c(k)
elif name == "mlcache compiled":
    from mlcache._speedups import MemoryTier; c = MemoryTier(n); put = c.set
elif name == "mlcache pure":
    from mlcache.tiers.memory import MemoryTier; c = MemoryTier(n); put = c.set
gc.collect(); gc.disable()
before = rss()
for k in keys:
    put(k, k)
gc.collect()
print(json.dumps((rss() - before) / n))
"""


def bench_memory(n: int) -> dict[str, float]:
    out = {}
    for name in contenders():
        if name.endswith("+ Lock"):
            continue
        proc = subprocess.run(
            [sys.executable, "-c", MEMORY_SNIPPET, name, str(n)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        out[name] = json.loads(proc.stdout)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="fewer ops, for a smoke run")
    args = parser.parse_args()
    ops = 20_000 if args.quick else 200_000
    print(f"mlcache {mlcache.__version__}, compiled={mlcache.COMPILED}, python {sys.version.split()[0]}")
    print(f"rounds={args.rounds}, ops per round={ops}, capacity={CAPACITY}\n")
    print(table("get hit (1,000 hot keys)", bench_get_hit(ops, args.rounds), "cachebox.LRUCache"))
    print()
    print(table("insert with eviction (full cache, new keys)", bench_insert_evict(ops, args.rounds), "cachebox.LRUCache"))
    print()
    zipf, _ = bench_zipf(ops, args.rounds)
    print(table("Zipf(0.99) get-or-set, 100k keys, capacity 10k (cold start each round)", zipf, "cachebox.LRUCache"))
    print()
    n = 100_000 if args.quick else 1_000_000
    mem = bench_memory(n)
    print(f"### bytes per entry ({n:,} int entries, RSS growth)\n")
    print("| contender | bytes/entry |\n|---|---:|")
    for name, b in mem.items():
        print(f"| {name} | {b:.0f} |")


if __name__ == "__main__":
    main()
