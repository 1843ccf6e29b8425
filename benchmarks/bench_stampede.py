"""Stampede: 4 processes x 16 callers of one cold key, loader 50 ms (issue: stampede).

Run:  python benchmarks/bench_stampede.py [--rounds N]
(needs the peers: pip install cashews dogpile.cache)

For mlcache (L1 + L2 + L3, threads), dogpile.cache (Redis backend, distributed lock, threads),
cashews (Redis, ``@cache(lock=True)``, asyncio tasks) and diskcache (its ``Lock`` recipe around
get/set, threads), each round starts 4 fresh processes that all ask for one new key at the same
instant, and reports: loader calls (all processes), wall time from the start to the last answer
minus the loader's 50 ms, and the Redis commands clients sent meanwhile (MONITOR; commands
inside Lua scripts are not counted). Medians over the rounds, contenders interleaved.

The start is a barrier: each process first imports, builds its cache, connects the benchmark's
load counter and starts its 16 callers, which block on an event (asyncio tasks: on an
``asyncio.Event``); it then reports ready. Once all 4 are ready, the coordinator sends them one
start time, a moment ahead; the clock starts there, when each process releases its callers.
So neither process start-up, imports nor thread creation is counted (on a loaded 2-core
machine these took up to seconds, and a process still importing at the start time used to
count), but everything the callers do from the start is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROCESSES, CALLERS, LOAD_SECONDS = 4, 16, 0.05
HERE = Path(__file__).resolve()


# -- one process of one contender -----------------------------------------------------------


def ready_and_start_at() -> float:
    """Tell the coordinator this process is ready; the start time it answers (epoch seconds)."""
    print("ready", flush=True)
    return float(sys.stdin.readline())


def worker(spec: dict) -> dict:
    import redis

    counter = redis.Redis.from_url(spec["url"])
    counter.ping()  # (the counter is the benchmark's: its connection is no part of the loader)
    key = spec["key"]

    def load():
        counter.incr("bench:loads:" + key)
        time.sleep(LOAD_SECONDS)
        return f"value from {os.getpid()}"

    def in_threads(call):
        out = [None] * CALLERS
        go = threading.Event()

        def caller(i):
            go.wait()
            out[i] = call()

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(CALLERS)]
        for t in threads:
            t.start()
        time.sleep(max(0.0, ready_and_start_at() - time.time()))
        go.set()
        for t in threads:
            t.join()
        return out

    lib = spec["lib"]
    if lib == "mlcache":
        from mlcache import Cache, DiskTier, MemoryTier, RedisTier

        cache = Cache(MemoryTier(1000), DiskTier(spec["dir"] + "/mlcache"),
                      RedisTier(spec["url"], prefix="bench:mlcache:"))  # fmt: skip
        values = in_threads(lambda: cache.get_or_load(key, load))
    elif lib == "dogpile.cache":
        from dogpile.cache import make_region

        region = make_region().configure(
            "dogpile.cache.redis", expiration_time=300,
            arguments={"url": spec["url"], "distributed_lock": True, "thread_local_lock": False,
                       "lock_timeout": 10, "redis_expiration_time": 600},
        )  # fmt: skip
        values = in_threads(lambda: region.get_or_create(key, load))
    elif lib == "diskcache":
        import diskcache

        cache = diskcache.Cache(spec["dir"] + "/diskcache")

        def get():
            value = cache.get(key)
            if value is None:
                with diskcache.Lock(cache, "lock:" + key):
                    value = cache.get(key)
                    if value is None:
                        value = load()
                        cache.set(key, value)
            return value

        values = in_threads(get)
    elif lib == "cashews":
        from cashews import cache

        cache.setup(spec["url"])

        @cache(ttl="5m", lock=True, key="bench:cashews:" + key)
        async def get():
            await asyncio.sleep(0)
            return await asyncio.to_thread(load)

        async def main():
            go = asyncio.Event()

            async def caller():
                await go.wait()
                return await get()

            tasks = [asyncio.create_task(caller()) for _ in range(CALLERS)]
            await asyncio.sleep(0)  # (every task is now blocked on the event)
            start_at = await asyncio.to_thread(ready_and_start_at)
            await asyncio.sleep(max(0.0, start_at - time.time()))
            go.set()
            return await asyncio.gather(*tasks)

        values = asyncio.run(main())
    else:
        raise ValueError(lib)
    return {"values": values, "done": time.time()}


# -- the coordinator --------------------------------------------------------------------------


class Monitor:
    """Counts the commands clients send to Redis (MONITOR; not those inside Lua scripts)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(b"MONITOR\r\n")
        self.file = self.sock.makefile("rb")
        self.file.readline()
        self.count = 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for line in self.file:
                where = line.split(b"] ", 1)[0]
                if not where.endswith(b" lua") and b"bench:loads:" not in line:
                    self.count += 1
        except (OSError, ValueError):
            pass

    def stop(self) -> int:
        time.sleep(0.2)
        self.sock.close()
        self.thread.join(5)
        return self.count


def one_round(lib: str, url: str, port: int, workdir: str, n: int) -> dict:
    import redis

    key = f"{lib}-{n}-{time.time_ns()}"
    spec = {"lib": lib, "url": url, "key": key, "dir": workdir}
    procs = [
        subprocess.Popen([sys.executable, str(HERE), "--worker", json.dumps(spec)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(PROCESSES)
    ]  # fmt: skip
    for p in procs:  # the barrier: every process is built, connected and its callers waiting
        assert p.stdout.readline().strip() == "ready"
    monitor = Monitor(port)
    start_at = time.time() + 0.2  # (room for every process to read it first)
    for p in procs:
        p.stdin.write(f"{start_at!r}\n")
        p.stdin.flush()
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    commands = monitor.stop()
    values = [v for out in outs for v in out["values"]]
    return {
        "loads": int(redis.Redis.from_url(url).get("bench:loads:" + key) or 0),
        "same_value": len(set(values)) == 1 and len(values) == PROCESSES * CALLERS,
        "extra_ms": (max(out["done"] for out in outs) - start_at - LOAD_SECONDS) * 1000,
        "commands": commands,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--only", help="comma-separated contenders")
    parser.add_argument("--json", help="also write every round's figures to this file")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    sys.path.insert(0, str(HERE.parents[1]))
    from mlcache.testing import RedisServer

    libs = (args.only or "mlcache,dogpile.cache,cashews,diskcache").split(",")
    workdir = tempfile.mkdtemp(prefix="mlcache-stampede-")
    server = RedisServer(Path(workdir) / "redis").start()
    results: dict[str, list[dict]] = {lib: [] for lib in libs}
    try:
        for n in range(args.rounds):
            for lib in (libs if n % 2 == 0 else libs[::-1]):
                results[lib].append(one_round(lib, server.url, server.port, workdir, n))
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"{PROCESSES} processes x {CALLERS} callers, one cold key, loader {LOAD_SECONDS * 1000:.0f} ms, "
          f"{args.rounds} rounds (median [min-max])\n")  # fmt: skip
    print("| contender | loader calls | wall - loader (ms) | Redis commands | all got one value |")
    print("|---|---:|---:|---:|---|")
    for lib, rounds in results.items():
        def cell(name, fmt="{:.0f}"):
            xs = [r[name] for r in rounds]
            return f"{fmt.format(statistics.median(xs))} [{fmt.format(min(xs))}-{fmt.format(max(xs))}]"

        same = all(r["same_value"] for r in rounds)
        print(f"| {lib} | {cell('loads')} | {cell('extra_ms')} | {cell('commands')} | {same} |")


if __name__ == "__main__":
    main()
