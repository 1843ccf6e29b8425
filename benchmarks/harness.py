"""Side-by-side timing: interleaved rounds, the median of per-round ratios to a baseline.

Absolute times on a shared machine are noise; a ratio measured in the same round, with the
order of the contenders shuffled every round, is not. Every benchmark in this folder uses this.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable

__all__ = ["Result", "interleaved", "table", "time_per_op"]


class Result:
    def __init__(self, name: str, per_op: list[float], ratios: list[float]) -> None:
        self.name = name
        self.ns = statistics.median(per_op) * 1e9
        self.ratio = statistics.median(ratios)
        self.ratio_lo, self.ratio_hi = min(ratios), max(ratios)


def time_per_op(fn: Callable[[int], None], ops: int) -> float:
    """Seconds per operation of ``fn(ops)`` (which performs ``ops`` operations)."""
    gc.disable()
    try:
        start = time.perf_counter()
        fn(ops)
        return (time.perf_counter() - start) / ops
    finally:
        gc.enable()


def interleaved(
    cases: dict[str, Callable[[int], None]],
    *,
    baseline: str,
    ops: int,
    rounds: int = 15,
    seed: int = 1,
) -> list[Result]:
    """Run every case once per round in a shuffled order; ratios are to ``baseline``'s time
    in the same round."""
    rng = random.Random(seed)
    names = list(cases)
    for name in names:  # warm-up
        time_per_op(cases[name], max(1, ops // 10))
    per_op: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(rounds):
        rng.shuffle(names)
        this_round = {n: time_per_op(cases[n], ops) for n in names}
        for n in names:
            per_op[n].append(this_round[n])
    ratios = {
        n: [a / b for a, b in zip(per_op[n], per_op[baseline], strict=True)] for n in per_op
    }
    return [Result(n, per_op[n], ratios[n]) for n in cases]


def table(title: str, results: list[Result], baseline: str) -> str:
    lines = [
        f"### {title}",
        "",
        f"| contender | median ns/op | ratio to {baseline} (median, [min-max]) |",
        "|---|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r.name} | {r.ns:.0f} | {r.ratio:.2f} [{r.ratio_lo:.2f}-{r.ratio_hi:.2f}] |")
    return "\n".join(lines)
