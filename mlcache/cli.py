"""The ``mlcache`` command line (``python -m mlcache``).

Errors end with a one-line message on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable, Sequence

from . import __version__
from ._impl import COMPILED
from .bench.cli import add_parser as add_bench_parser
from .decorators import cached
from .errors import CacheError

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> None:
    from .settings import configure, describe, get_cache

    impl = "compiled (Cython)" if COMPILED else "pure Python"
    print(f"mlcache {__version__} demo; L1 implementation: {impl}\n")
    configure()  # MLCACHE_* environment variables, else L1 + L2 in the user's cache directory
    tiers = describe()["default"]["tiers"]
    print("The default cache (set MLCACHE_TIERS to add Redis):")
    for level, tier in enumerate(tiers, 1):
        shown = ", ".join(f"{k}={v}" for k, v in tier.items() if k != "type")
        print(f"   L{level} {tier['type']}: {shown}")

    run = f"{time.time_ns():x}"  # fresh keys, so that a second run starts cold too
    loads = []

    @cached(ttl=60, null_ttl=5, version=run)
    def get_user(user_id: int) -> dict[str, object] | None:
        """A slow lookup: 0.2 s, like a remote database."""
        loads.append(user_id)
        time.sleep(0.2)
        return None if user_id == 404 else {"id": user_id, "name": f"user {user_id}"}

    print("\n1. A decorated slow function (0.2 s per call), 32 concurrent callers of one cold key:")
    started = time.perf_counter()
    results = _in_threads(32, lambda: get_user(7))
    elapsed = time.perf_counter() - started
    print(f"   {len(loads)} load for {len(results)} callers, all answered in {elapsed:.2f} s "
          f"(uncached: 32 loads, {32 * 0.2:.1f} s of work); every caller got {results[0]}")
    started = time.perf_counter()
    for _ in range(100_000):
        get_user(7)
    per_call = (time.perf_counter() - started) / 100_000
    print(f"   then an L1 hit costs {per_call * 1e9:.0f} ns per call")

    print("\n2. A missing user is cached as 'not found' (null_ttl=5 s), so it is loaded once:")
    before = len(loads)
    print(f"   get_user(404) x 3 -> {[get_user(404) for _ in range(3)]}, {len(loads) - before} load")

    print("\n3. Where each call was served from (Cache.lookup), after dropping L1:")
    cache = get_cache()
    key = get_user.key(7)
    print(f"   from L1:              {cache.lookup(key).source}")
    if cache._memory is not None:
        cache._memory.clear()
    print(f"   L1 cleared, from:     {cache.lookup(key).source} (and copied back up to L1)")
    print(f"   and now from:         {cache.lookup(key).source}")
    get_user.invalidate(7)
    print(f"   after invalidate(7):  {cache.lookup(key).source}")

    stats = cache.stats()
    print(f"\n4. Stats: loads={stats['loads']}, waits for another caller's load={stats['waits']}, "
          f"null hits={stats['null_hits']}")
    for name, tier_stats in stats["tiers"].items():
        print(f"   {name}: " + ", ".join(f"{k}={v}" for k, v in tier_stats.items()))

    print("\n5. Eviction policies on a synthetic Zipf trace (`python -m mlcache bench`):")
    main(["bench", "--zipf", "0.9,20000,200000,1", "--sizes", "1%,10%",
          "--policies", "lru,fifo,sieve,s3fifo,wtinylfu,belady"])  # fmt: skip


def _in_threads(n: int, call: Callable[[], object]) -> list[object]:
    results: list[object] = [None] * n
    barrier = threading.Barrier(n)

    def worker(i: int) -> None:
        barrier.wait()
        results[i] = call()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _info(args: argparse.Namespace) -> None:
    import json

    from .settings import configure, describe

    configure()
    print(f"mlcache {__version__}")
    print(f"implementation: {'compiled (Cython)' if COMPILED else 'pure Python'}")
    print(f"python: {sys.version.split()[0]}")
    extras = {name: _installed(name) for name in ("diskcache", "redis", "hiredis", "msgpack")}
    print("installed: " + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in extras.items()))
    print("configuration (secrets masked):")
    print(json.dumps(describe(), indent=2))


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlcache", description="mlcache command line")
    parser.add_argument("--version", action="version", version=f"mlcache {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the demo (the README's main job)").set_defaults(
        run=_demo
    )
    commands.add_parser(
        "info", help="show the version, the active implementation and the configuration"
    ).set_defaults(run=_info)
    add_bench_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        args.run(args)
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
        return 0
    except (CacheError, OSError) as exc:
        print(f"mlcache: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mlcache: interrupted", file=sys.stderr)
        return 130
    return 0
