"""The decorator's L1 hit against functools.lru_cache and peers (issue: decorator).

Run:  python benchmarks/bench_decorator.py [--rounds N]

A hit is a call of a decorated one-argument function whose result is cached (mlcache: in L1,
with a TTL; the cache is L1 alone, so every call is an L1 hit). Ratios to lru_cache are the
median of per-round ratios in interleaved rounds (benchmarks/harness.py).
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import cachebox
import cachetools

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import interleaved, table  # noqa: E402

import mlcache  # noqa: E402
from mlcache import Cache  # noqa: E402
from mlcache.decorators import HitPath as PureHitPath  # noqa: E402
from mlcache.decorators import decorate  # noqa: E402
from mlcache.tiers.memory import MemoryTier as PureMemoryTier  # noqa: E402

KEYS = list(range(100))


def identity(x):
    return x


def mlcache_cached(memory_tier, hit_path):
    cache = Cache(memory_tier(maxsize=1000), ttl=60)
    return decorate(identity, cache, hit_path, ttl=None, null_ttl=None, stale_ttl=None,
                    stale_if_error=None, key=None, typed=False, namespace=None, version=None)  # fmt: skip


def contenders():
    out = {
        "functools.lru_cache": functools.lru_cache(maxsize=1000)(identity),
        "mlcache @cached (compiled)": mlcache.Cache(mlcache.MemoryTier(1000), ttl=60).cached()(identity)
        if mlcache.COMPILED else None,
        "mlcache @cached (pure)": mlcache_cached(PureMemoryTier, PureHitPath),
        "cachebox.cached(LRUCache)": cachebox.cached(cachebox.LRUCache(1000))(identity),
        "cachebox.cached(TTLCache)": cachebox.cached(cachebox.TTLCache(1000, 60))(identity),
        "cachetools.cached(LRUCache)": cachetools.cached(cachetools.LRUCache(1000))(identity),
        "cachetools.cached(TTLCache)": cachetools.cached(cachetools.TTLCache(1000, 60))(identity),
    }
    return {name: f for name, f in out.items() if f is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    cases = {}
    for name, func in contenders().items():
        for k in KEYS:
            func(k)  # warm: every benchmarked call is a hit

        def run(n, func=func):
            for _ in range(n // len(KEYS)):
                for k in KEYS:
                    func(k)

        cases[name] = run
    print(f"mlcache {mlcache.__version__}, compiled={mlcache.COMPILED}, python {sys.version.split()[0]}")
    print(f"rounds={args.rounds}, 100 hot keys, one-argument function\n")
    results = interleaved(cases, baseline="functools.lru_cache", ops=200_000, rounds=args.rounds)
    print(table("L1 hit through the decorator (target: compiled <= 1.3x lru_cache)", results,
                "functools.lru_cache"))  # fmt: skip


if __name__ == "__main__":
    main()
