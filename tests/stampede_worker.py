"""One process of a cross-process stampede: N threads ask for one cold key at a set time.

    python stampede_worker.py '<json>'

json: {"config": <proc_worker-style tier config>, "key": str, "threads": int,
       "start_at": epoch seconds, "delay": loader seconds, "counter": redis url,
       "hang": bool (the loader never returns: to be killed while holding the lease)}
Prints {"values": [...], "loads": n, "seconds": wall time from start_at to the last answer}.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import redis

from proc_worker import build


def main() -> None:
    spec = json.loads(sys.argv[1])
    cache = build(spec["config"])
    counter = redis.Redis.from_url(spec["counter"])
    loads = []

    def loader():
        loads.append(1)
        counter.incr(f"loads:{spec['key']}")
        if spec.get("hang"):
            print(json.dumps({"holding": True}), flush=True)
            time.sleep(3600)
        time.sleep(spec["delay"])
        return f"loaded by {os.getpid()}"

    values = [None] * spec["threads"]

    def worker(i):
        values[i] = cache.get_or_load(spec["key"], loader)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(spec["threads"])]
    time.sleep(max(0.0, spec["start_at"] - time.time()))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.time() - spec["start_at"]
    print(json.dumps({"values": values, "loads": len(loads), "seconds": seconds}), flush=True)
    cache.close()


if __name__ == "__main__":
    main()
