"""``mlcache bench``: replay a trace (or a synthetic Zipf one) through eviction policies and
report hit ratios, misses and simulator speed per policy and cache size.

Bad input ends the command with a one-line error naming the file and line, exit status 2
(``mlcache.cli`` prints every ``CacheError`` that way).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable
from typing import Any

from .._impl import COMPILED
from ..errors import ConfigurationError
from .readers import FORMATS, Trace, read_trace, zipf
from .simulate import POLICY_NAMES, SimResult, next_accesses, simulate

__all__ = ["add_parser", "parse_sizes", "run"]

DEFAULT_ZIPF = "0.99,10000,200000,42"
DEFAULT_SIZES = "0.5%,1%,5%,10%,20%"


def add_parser(commands: Any) -> None:
    """Register the ``bench`` subcommand on an argparse subparsers object."""
    p = commands.add_parser(
        "bench",
        help="replay an access trace through eviction policies (hit ratios)",
        description="Replay an access trace through eviction policies and print hit ratios. "
        f"With neither --trace nor --zipf: a Zipf trace ({DEFAULT_ZIPF}).",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--trace", metavar="PATH", help="the trace file (compression detected)")
    source.add_argument("--zipf", metavar="ALPHA,OBJECTS,REQUESTS,SEED", help="a synthetic trace")
    p.add_argument("--format", default="plain", help=f"trace format: {', '.join(FORMATS)}")
    p.add_argument(
        "--sizes", default=DEFAULT_SIZES,
        help="cache sizes in objects, or N%% of the trace's unique objects (comma-separated)",
    )  # fmt: skip
    p.add_argument(
        "--policies", default=",".join(POLICY_NAMES), help=f"of {', '.join(POLICY_NAMES)}"
    )
    p.add_argument("--key-column", default="0", help="csv: key column (0-based index or name)")
    p.add_argument("--size-column", default=None, help="csv: object size column")
    p.add_argument("--header", action="store_true", help="csv: the first row names the columns")
    p.add_argument("--delimiter", default=",", help="csv: the field delimiter")
    p.add_argument("--json", metavar="OUT", help="write the results as a JSON list")
    p.add_argument("--csv", metavar="OUT", help="write the results as CSV")
    p.add_argument("--plot", metavar="OUT", help="plot hit-ratio curves (needs matplotlib)")
    p.add_argument("--pure", action="store_true", help="use the pure-Python simulator")
    p.set_defaults(run=run)


def parse_sizes(spec: str, unique: int) -> list[int]:
    """Cache sizes from ``"250,500,1%,10%"``: objects, or percentages of ``unique`` objects
    (rounded, at least 1); sorted, without repeats. Raises ``ConfigurationError``."""
    sizes = set()
    for item in spec.split(","):
        text = item.strip()
        try:
            if text.endswith("%"):
                pct = float(text[:-1])
                if not pct > 0:
                    raise ValueError
                size = max(1, round(unique * pct / 100))
            else:
                size = int(text)
                if size < 1:
                    raise ValueError
        except ValueError:
            raise ConfigurationError(
                f"--sizes: {text!r} is not a cache size (an integer >= 1 or a percentage > 0)"
            ) from None
        sizes.add(size)
    return sorted(sizes)


def _parse_zipf(spec: str) -> Trace:
    parts = spec.split(",")
    try:
        if len(parts) != 4:
            raise ValueError
        return zipf(float(parts[0]), int(parts[1]), int(parts[2]), int(parts[3]))
    except ValueError:
        raise ConfigurationError(
            f"--zipf must be ALPHA,OBJECTS,REQUESTS,SEED (e.g. {DEFAULT_ZIPF}), got {spec!r}"
        ) from None


def _parse_policies(spec: str) -> list[str]:
    policies = [p.strip() for p in spec.split(",") if p.strip()]
    unknown = [p for p in policies if p not in POLICY_NAMES]
    if unknown or not policies:
        raise ConfigurationError(
            f"--policies: unknown {', '.join(map(repr, unknown)) or 'empty list'}; "
            f"known: {', '.join(POLICY_NAMES)}"
        )
    return list(dict.fromkeys(policies))


def _progress(total: int) -> Callable[[int, str], None]:
    """A progress bar on stderr (nothing when stderr is not a terminal)."""
    if not sys.stderr.isatty():
        return lambda done, label: None

    def show(done: int, label: str) -> None:
        filled = 30 * done // total
        end = "\n" if done == total else ""
        print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} {label:<24}",
              end=end, file=sys.stderr, flush=True)  # fmt: skip

    return show


def _table(trace: Trace, results: list[SimResult], compiled: bool) -> str:
    lines = [
        f"trace {trace.name}: {len(trace):,} requests, {trace.unique:,} unique objects; "
        f"simulator: {'compiled' if compiled else 'pure Python'}",
        "",
        f"{'size':>10}  {'policy':<14} {'hit ratio':>9} {'misses':>12} {'requests/s':>11}",
    ]
    for r in sorted(results, key=lambda r: r.size):
        rate = f"{r.requests / r.seconds / 1e6:.1f} M" if r.seconds > 0 else "-"
        lines.append(
            f"{r.size:>10,}  {r.policy:<14} {r.hit_ratio:>9.4f} {r.misses:>12,} {rate:>11}"
        )
    return "\n".join(lines)


def _write(path: str, write: Callable[[Any], None]) -> None:
    with open(path, "w", newline="") as f:
        write(f)


def run(args: argparse.Namespace) -> None:
    """Run ``mlcache bench`` with parsed arguments (raises ``CacheError`` on bad input)."""
    policies = _parse_policies(args.policies)
    compiled = COMPILED and not args.pure
    if args.trace is not None:
        trace = read_trace(
            args.trace, args.format, key_column=args.key_column, size_column=args.size_column,
            header=args.header, delimiter=args.delimiter,
        )  # fmt: skip
    else:
        trace = _parse_zipf(args.zipf or DEFAULT_ZIPF)
    if not len(trace):
        raise ConfigurationError(f"{trace.name}: the trace has no requests")
    sizes = parse_sizes(args.sizes, trace.unique)
    nexts = None
    if any(p.startswith("belady") for p in policies):
        nexts = next_accesses(trace.keys, compiled=compiled)
    jobs = [(size, policy) for size in sizes for policy in policies]
    progress = _progress(len(jobs))
    results = []
    for done, (size, policy) in enumerate(jobs, 1):
        results.append(simulate(trace.keys, policy, size, nexts=nexts, compiled=compiled))
        progress(done, f"{policy} @ {size:,}")
    print(_table(trace, results, compiled))
    rows = [{"trace": trace.name, **r.as_dict()} for r in results]
    if args.json:
        _write(args.json, lambda f: json.dump(rows, f, indent=1))
    if args.csv:

        def write_csv(f: Any) -> None:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

        _write(args.csv, write_csv)
    if args.plot:
        from .plot import plot_hit_ratios

        plot_hit_ratios(results, args.plot, f"{trace.name}: {len(trace):,} requests")
