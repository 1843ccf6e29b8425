"""Hit ratios of every policy, and both Belady bounds, on every shared trace.

Run:  python benchmarks/bench_policies.py [--traces DIR] [--out DIR]

For each trace in the shared folder (LIRS, libCacheSim's cloudPhysicsIO, ARC, scarab,
cache2k), caches of 1%, 5% and 10% of its unique objects, the compiled simulator (sizes in
objects, every first access a miss, no warm-up excluded). Prints a markdown table per size and
writes ``policies.json`` and ``policies.png`` (hit ratio against size, one panel per trace) to
``--out`` (default: this folder). cloudPhysicsIO is replayed once (its three files hold the
same trace). ARC traces: cite Megiddo & Modha, "ARC: A Self-Tuning, Low Overhead Replacement
Cache", FAST 2003.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import mlcache  # noqa: E402
from mlcache.bench.plot import plot_hit_ratios  # noqa: E402
from mlcache.bench.readers import Trace, read_trace  # noqa: E402
from mlcache.bench.simulate import POLICY_NAMES, next_accesses, simulate  # noqa: E402

PERCENTS = (1, 5, 10)
# folder, file pattern, format
SOURCES = [
    ("lirs", "*.trace.gz", "lirs"),
    ("libcachesim", "cloudPhysicsIO.oracleGeneral.bin", "oraclegeneral"),
    ("arc", "*.lis.zst", "arc"),
    ("caffeine", "scarab-recs.trace.xz", "be_i64"),
    ("cache2k", "*.trace.xz", "be_i32"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = Path(__file__).resolve().parent
    parser.add_argument("--traces", type=Path, default=here.parents[1] / "shared/traces")
    parser.add_argument("--out", type=Path, default=here)
    args = parser.parse_args()
    assert mlcache.COMPILED, "run with the compiled extension (the pure simulator is too slow)"
    print(f"mlcache {mlcache.__version__}, compiled simulator, python {sys.version.split()[0]}\n")
    runs: list[tuple[Trace, list]] = []
    for folder, pattern, fmt in SOURCES:
        for path in sorted((args.traces / folder).glob(pattern)):
            start = time.perf_counter()
            trace = read_trace(path, fmt)
            trace.name = trace.name.split(".")[0]
            read = time.perf_counter() - start
            nexts = next_accesses(trace.keys)
            sizes = [max(1, round(trace.unique * p / 100)) for p in PERCENTS]
            results = [simulate(trace.keys, policy, size, nexts=nexts)
                       for size in sizes for policy in POLICY_NAMES]  # fmt: skip
            runs.append((trace, results))
            print(f"  {folder}/{trace.name}: {len(trace):,} requests, {trace.unique:,} unique; "
                  f"read {read:.1f} s, simulated {sum(r.seconds for r in results):.1f} s",
                  file=sys.stderr, flush=True)  # fmt: skip
    for i, pct in enumerate(PERCENTS):
        print(f"### Hit ratio (%) at {pct}% of unique objects\n")
        print("| trace | requests | size | " + " | ".join(POLICY_NAMES) + " |")
        print("|---|---:|---:|" + "---:|" * len(POLICY_NAMES))
        for trace, results in runs:
            row = results[i * len(POLICY_NAMES):(i + 1) * len(POLICY_NAMES)]
            best = max(r.hit_ratio for r in row if not r.policy.startswith("belady"))
            cells = [(f"**{100 * r.hit_ratio:.2f}**" if r.hit_ratio == best
                      and not r.policy.startswith("belady") else f"{100 * r.hit_ratio:.2f}")
                     for r in row]  # fmt: skip
            print(f"| {trace.name} | {len(trace):,} | {row[0].size:,} | {' | '.join(cells)} |")
        print()
    rows = [{"trace": t.name, "unique": t.unique, **r.as_dict()} for t, rs in runs for r in rs]
    (args.out / "policies.json").write_text(json.dumps(rows, indent=1) + "\n")
    cols = 5
    nrows = math.ceil(len(runs) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.2 * nrows))
    for ax, (trace, results) in zip(axes.flat, runs):
        plot_hit_ratios(results, "", f"{trace.name} ({len(trace):,} req.)", ax=ax)
        ax.legend().set_visible(ax is axes.flat[0])
        ax.set_xlabel("cache size (objects; 1%, 5%, 10% of unique)", fontsize=7)
    for ax in list(axes.flat)[len(runs):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(args.out / "policies.png", dpi=80)


if __name__ == "__main__":
    main()
