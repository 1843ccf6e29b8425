"""The trace simulator against libCacheSim (PyPI ``libcachesim``): speed and agreement.

Run:  python benchmarks/bench_sim.py [--rounds N] [--traces DIR]

Speed: for lru, fifo and sieve at 1% and 10% of each trace's unique objects, the time of one
whole replay, interleaved rounds, median of per-round ratios (harness.py). libCacheSim's
contender is what its Python API offers for a fast replay: a new cache (``hashpower=18``) and
its C ``process_trace`` over its own oracleGeneral reader (rewound each time; the file is in
the page cache). mlcache's is ``mlcache.bench.simulate.replay`` over the keys in memory (an
``array('q')``), the compiled simulator with the same compiled policy classes as the L1 tier.
Reading the trace is outside both. Agreement: miss counts of every policy libCacheSim also has,
at 1%, 5% and 10%, and cloudPhysicsIO's LRU misses that libCacheSim's own tests assert.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import tempfile
from array import array
from pathlib import Path

import libcachesim as lcs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import interleaved  # noqa: E402

import mlcache  # noqa: E402
from mlcache.bench.readers import Trace, read_trace, zipf  # noqa: E402
from mlcache.bench.simulate import NEVER, next_accesses, replay  # noqa: E402

LIBCACHESIM = {"lru": "LRU", "fifo": "FIFO", "sieve": "Sieve", "s3fifo": "S3FIFO",
               "wtinylfu": "WTinyLFU", "belady": "Belady"}  # fmt: skip
CLOUDPHYSICS_LRU = {128: 99411, 256: 96397, 384: 95652, 512: 95370, 640: 95182, 768: 94997,
                    896: 94891, 1024: 94816}  # fmt: skip


def traces(root: Path) -> list[tuple[Trace, str | None]]:
    """(trace, its oracleGeneral file if it already is one)."""
    return [
        (read_trace(root / "libcachesim/cloudPhysicsIO.oracleGeneral.bin", "oraclegeneral"),
         str(root / "libcachesim/cloudPhysicsIO.oracleGeneral.bin")),
        (read_trace(root / "arc/OLTP.lis.zst", "arc"), None),
        (read_trace(root / "caffeine/scarab-recs.trace.xz", "be_i64"), None),
        (read_trace(root / "cache2k/orm-busy.trace.xz", "be_i32"), None),
        (zipf(1.0, 1_000_000, 5_000_000, seed=1), None),
    ]  # fmt: skip


def write_oracle(trace: Trace, directory: str) -> str:
    """The trace as libCacheSim's oracleGeneral file (size 1, 1-based next access or -1)."""
    path = os.path.join(directory, trace.name + ".oracleGeneral.bin")
    nexts = next_accesses(trace.keys)
    pack = struct.Struct("<IQIq").pack
    with open(path, "wb") as f:
        for i, (k, n) in enumerate(zip(trace.keys, nexts)):
            f.write(pack(i, k % (1 << 64), 1, -1 if n == NEVER else n + 1))
    return path


def reader(path: str) -> lcs.TraceReader:
    return lcs.TraceReader(
        path, lcs.TraceType.ORACLE_GENERAL_TRACE, lcs.ReaderInitParam(ignore_obj_size=True)
    )


def libcachesim_misses(path: str, policy: str, size: int, requests: int) -> int:
    cache = getattr(lcs, LIBCACHESIM[policy])(size, hashpower=18)
    return round(cache.process_trace(reader(path))[0] * requests)


def speed(trace: Trace, path: str, rounds: int) -> list[str]:
    rows = []
    keys = trace.keys
    for policy in ("lru", "fifo", "sieve"):
        for pct in (1, 10):
            size = max(1, trace.unique * pct // 100)
            r = reader(path)

            def theirs(_ops: int, policy: str = policy, size: int = size, r=r) -> None:
                r.reset()
                getattr(lcs, LIBCACHESIM[policy])(size, hashpower=18).process_trace(r)

            def ours(_ops: int, policy: str = policy, size: int = size) -> None:
                replay(keys, policy, size)

            results = interleaved({"libcachesim": theirs, "mlcache": ours},
                                  baseline="libcachesim", ops=len(keys), rounds=rounds)  # fmt: skip
            lib, ml = results
            rows.append(
                f"| {trace.name} | {policy} | {size:,} ({pct}%) | {lib.ns:.1f} | {ml.ns:.1f} | "
                f"**{1 / ml.ratio:.2f}x** [{1 / ml.ratio_hi:.2f}-{1 / ml.ratio_lo:.2f}] |"
            )
            print(rows[-1], flush=True)
    return rows


def agreement(trace: Trace, path: str) -> list[str]:
    rows = []
    nexts = next_accesses(trace.keys)
    for policy in LIBCACHESIM:
        cells = []
        for pct in (1, 5, 10):
            size = max(1, trace.unique * pct // 100)
            ours = len(trace) - replay(trace.keys, policy, size, nexts=nexts)
            theirs = libcachesim_misses(path, policy, size, len(trace))
            diff = (ours - theirs) / len(trace)
            cells.append(f"{ours:,} / {theirs:,}" + (" (equal)" if ours == theirs
                                                      else f" ({diff:+.4f})"))  # fmt: skip
        rows.append(f"| {trace.name} | {policy} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=11)
    shared = Path(__file__).resolve().parents[2] / "shared/traces"
    parser.add_argument("--traces", type=Path, default=shared)
    args = parser.parse_args()
    print(f"mlcache {mlcache.__version__}, compiled={mlcache.COMPILED}, "
          f"libcachesim {lcs.__version__}, python {sys.version.split()[0]}, "
          f"rounds={args.rounds}\n")  # fmt: skip
    root = args.traces
    cp = read_trace(root / "libcachesim/cloudPhysicsIO.txt", "plain")
    got = {s: len(cp) - replay(cp.keys, "lru", s) for s in CLOUDPHYSICS_LRU}
    print("cloudPhysicsIO LRU misses (libCacheSim's test values):",
          "equal" if got == CLOUDPHYSICS_LRU else f"DIFFER {got}", "\n")  # fmt: skip
    speed_rows, agree_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for trace, path in traces(root):
            path = path or write_oracle(trace, tmp)
            print(f"# {trace.name}: {len(trace):,} requests, {trace.unique:,} unique", flush=True)
            speed_rows += speed(trace, path, args.rounds)
            agree_rows += agreement(trace, path)
    print("\n### Replay speed (ns per request; speed-up = libcachesim time / mlcache time, "
          "median [min-max] of per-round ratios)\n")
    print("| trace | policy | size | libcachesim ns/req | mlcache ns/req | speed-up |")
    print("|---|---|---:|---:|---:|---:|")
    print("\n".join(speed_rows))
    print("\n### Agreement (misses: mlcache / libcachesim; difference in miss ratio if any)\n")
    print("| trace | policy | 1% | 5% | 10% |")
    print("|---|---|---:|---:|---:|")
    print("\n".join(agree_rows))


if __name__ == "__main__":
    main()
