"""The tiered Cache's overhead over the raw stores (issue: tiered Cache).

Run:  python benchmarks/bench_tiers.py [--rounds N] [--quick]

Starts a private redis-server on a free loopback port. Each case reads a ~150-byte value:
- Cache(DiskTier).get (value in L2 only) vs diskcache.Cache.get of the same value (which
  diskcache pickles and unpickles itself);
- Cache(RedisTier).get (value in L3 only) vs redis-py GET of the same bytes + decoding them;
- Cache(RedisTier).get_many of 100 keys vs one raw MGET + decoding;
- Cache(MemoryTier).get vs MemoryTier.get (L1 hit).
Ratios are medians of per-round ratios in interleaved rounds (benchmarks/harness.py).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import diskcache
import msgpack
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import interleaved, table  # noqa: E402

import mlcache  # noqa: E402
from mlcache import Cache, DiskTier, MemoryTier, RedisTier  # noqa: E402
from mlcache.testing import RedisServer  # noqa: E402

VALUE = {"id": 42, "name": "Ada Lovelace", "email": "ada@example.org", "roles": ["admin", "dev"],
         "bio": "x" * 60}  # fmt: skip
KEYS = [f"user:{i}" for i in range(100)]


def repeat(fn, keys):
    def run(n):
        k = len(keys)
        for i in range(n):
            fn(keys[i % k])

    return run


def bench_disk(workdir: Path, ops: int, rounds: int):
    cache = Cache(DiskTier(workdir / "mlcache"))
    cache.set_many({k: VALUE for k in KEYS})
    raw = diskcache.Cache(str(workdir / "raw"))
    for k in KEYS:  # diskcache pickles the value itself; get returns it unpickled
        raw.set(k, VALUE)
    results = interleaved(
        {"diskcache.Cache.get": repeat(raw.get, KEYS), "Cache(DiskTier).get": repeat(cache.get, KEYS)},
        baseline="diskcache.Cache.get", ops=ops, rounds=rounds,
    )  # fmt: skip
    cache.close()
    raw.close()
    return results


def bench_redis(url: str, ops: int, rounds: int):
    results = []
    for codec, secret, decode in (
        ("msgpack", None, lambda b: msgpack.unpackb(b, raw=False)),
        ("pickle", "a-benchmark-secret-of-32-bytes!!", __import__("pickle").loads),
    ):
        cache = Cache(RedisTier(url, prefix=f"bench-{codec}:", codec=codec, secret=secret))
        cache.set_many({k: VALUE for k in KEYS})
        payload = cache.tiers[0].format.codec.dumps(VALUE)
        client = redis.Redis.from_url(url)
        client.mset({f"raw-{codec}:{k}": payload for k in KEYS})
        raw_keys = [f"raw-{codec}:{k}" for k in KEYS]

        def raw_get(key, client=client, decode=decode):
            return decode(client.get(key))

        def raw_mget(n, client=client, decode=decode):
            for _ in range(n):
                [decode(b) for b in client.mget(raw_keys)]

        def cache_mget(n, cache=cache):
            for _ in range(n):
                cache.get_many(KEYS)

        results.append((codec, interleaved(
            {f"GET + {codec} decode": repeat(raw_get, raw_keys),
             f"Cache(RedisTier).get [{codec}]": repeat(cache.get, KEYS)},
            baseline=f"GET + {codec} decode", ops=ops // 4, rounds=rounds,
        ), interleaved(
            {f"MGET 100 + {codec} decode": raw_mget,
             f"Cache(RedisTier).get_many(100) [{codec}]": cache_mget},
            baseline=f"MGET 100 + {codec} decode", ops=max(ops // 400, 5), rounds=rounds,
        )))  # fmt: skip
        cache.close()
        client.close()
    return results


def bench_memory(ops: int, rounds: int):
    tier = MemoryTier(1000)
    cache = Cache(MemoryTier(1000))
    for k in KEYS:
        tier.set(k, VALUE)
        cache.set(k, VALUE)
    return interleaved(
        {"MemoryTier.get": repeat(tier.get, KEYS), "Cache(MemoryTier).get": repeat(cache.get, KEYS)},
        baseline="MemoryTier.get", ops=ops * 10, rounds=rounds,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    ops = 2000 if args.quick else 20_000
    workdir = Path(tempfile.mkdtemp(prefix="mlcache-bench-"))
    server = RedisServer(workdir / "redis").start()
    try:
        print(f"mlcache {mlcache.__version__}, compiled={mlcache.COMPILED}, "
              f"python {sys.version.split()[0]}, redis-py {redis.__version__}, "
              f"hiredis={redis.utils.HIREDIS_AVAILABLE}")  # fmt: skip
        print(f"rounds={args.rounds}\n")
        print(table("L2 hit: Cache(DiskTier).get vs diskcache.Cache.get (target <= 1.25x)",
                    bench_disk(workdir, ops, args.rounds), "diskcache.Cache.get"))  # fmt: skip
        for codec, single, many in bench_redis(server.url, ops, args.rounds):
            print()
            print(table(f"L3 hit [{codec}]: Cache(RedisTier).get vs GET + decode (target <= 1.15x)",
                        single, f"GET + {codec} decode"))  # fmt: skip
            print()
            print(table(f"L3 get_many(100) [{codec}] vs MGET + decode (target <= 1.3x)",
                        many, f"MGET 100 + {codec} decode"))  # fmt: skip
        print()
        print(table("L1 hit: Cache(MemoryTier).get vs MemoryTier.get", bench_memory(ops, args.rounds),
                    "MemoryTier.get"))  # fmt: skip
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
