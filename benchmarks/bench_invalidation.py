"""How long another process serves an outdated value (issue: consistency across processes).

Run:  python benchmarks/bench_invalidation.py [--rounds N]

Runs the scenarios of tests/test_invalidation_processes.py (a writer and three readers, in
four processes, on two "hosts" = two L2 directories, sharing one private redis-server) and
reports, per scenario, over all rounds: reads, reads that returned an outdated value, and for
those how long the value had been outdated (p50 / p99 / max), and whether the write ledger
held (every process reads the database's final versions afterwards).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1] / "tests"))

import redis as redis_py  # noqa: E402
from test_invalidation_processes import scenario, staleness  # noqa: E402

from mlcache.testing import RedisServer  # noqa: E402


def kill_readers(port: int):
    admin = redis_py.Redis(port=port)

    def kill():
        for client in admin.client_list():
            if client.get("cmd") == "xread":
                admin.client_kill_filter(_id=client["id"])

    return kill


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = {}
    for n in range(args.rounds):
        for name in ("no fault", "reader connections killed (twice)", "Redis killed 1 s, back empty"):
            workdir = Path(tempfile.mkdtemp(prefix="mlcache-bus-"))
            server = RedisServer(workdir / "redis").start()
            try:
                if name.startswith("no"):
                    result = scenario(workdir, server)
                elif name.startswith("reader"):
                    kill = kill_readers(server.port)
                    result = scenario(workdir, server, kill, 2.0, kill, 2.5)
                else:
                    result = scenario(workdir, server, server.kill, 2.0, server.start, 3.0)
            finally:
                server.stop()
            _, outs, final_db = result
            reads, stale = staleness(outs[0]["log"], [o["log"] for o in outs[1:]])
            ledger = all(o["final"] == final_db for o in outs)
            rows.setdefault(name, []).append((reads, stale, ledger))
    print(f"{args.rounds} rounds; 1 writer + 3 readers (1 on the writer's host, 2 on another)\n")
    print("| scenario | reads | outdated reads | outdated for p50 / p99 / max (ms) | lost acknowledged writes |")
    print("|---|---:|---:|---:|---:|")
    for name, results in rows.items():
        stale = sorted(s for _, st, _ in results for s in st)

        def q(p):
            return stale[min(len(stale) - 1, int(p * len(stale)))] * 1000 if stale else 0.0

        reads = sum(r for r, _, _ in results)
        lost = sum(0 if ok else 1 for _, _, ok in results)
        print(f"| {name} | {reads} | {len(stale)} | {q(0.5):.1f} / {q(0.99):.1f} / "
              f"{(stale[-1] * 1000 if stale else 0):.1f} | {lost} |")  # fmt: skip


if __name__ == "__main__":
    main()
