"""``mlcache bench`` as a subprocess: output files, the default run and the error paths."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from mlcache.bench.cli import parse_sizes
from mlcache.errors import ConfigurationError

FIELDS = {"policy", "size", "requests", "hits", "misses", "hit_ratio", "seconds"}


def bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlcache", "bench", *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_trace_to_json_csv_and_plot(tmp_path):
    trace = tmp_path / "t.lirs"
    trace.write_text("*\n" + "1\n2\n3\n1\n4\n1\n" * 50)
    out = tmp_path / "out.json"
    args = ["--trace", str(trace), "--format", "lirs", "--sizes", "2,50%", "--json", str(out),
            "--csv", str(tmp_path / "out.csv"), "--policies", "lru,sieve,belady"]  # fmt: skip
    plot = pytest.importorskip("matplotlib") and tmp_path / "out.png"
    proc = bench(*args, "--plot", str(plot))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal
    assert "t.lirs: 300 requests, 4 unique objects" in proc.stdout
    rows = json.loads(out.read_text())
    assert {(r["policy"], r["size"]) for r in rows} == {
        (p, s) for s in (2,) for p in ("lru", "sieve", "belady")
    }  # 50% of 4 unique objects is 2 as well: sizes are deduplicated
    assert all(FIELDS <= set(r) and r["requests"] == 300 for r in rows)
    assert all(r["hits"] + r["misses"] == 300 and r["hit_ratio"] == r["hits"] / 300 for r in rows)
    with open(tmp_path / "out.csv") as f:
        assert [r["policy"] for r in csv.DictReader(f)] == ["lru", "sieve", "belady"]
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_zipf_and_default_run():
    proc = bench("--zipf", "1.0,500,5000,7", "--sizes", "10,100", "--policies", "fifo,s3fifo")
    assert proc.returncode == 0, proc.stderr
    assert "zipf-1-500-5000-7: 5,000 requests" in proc.stdout
    assert proc.stdout.count("s3fifo") == 2
    proc = bench(timeout=300)  # the README's quick default: Zipf, all policies, a few sizes
    assert proc.returncode == 0, proc.stderr
    for policy in ("lru", "wtinylfu", "belady-bypass"):
        assert policy in proc.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "nope"], "unknown format 'nope'"),
        (["--format", "lirs"], "bad.txt:3: key is not a 64-bit integer: 'x'"),
        (["--format", "lirs", "--sizes", "0"], "--sizes: '0' is not a cache size"),
        (["--format", "lirs", "--policies", "lru,opt"], "--policies: unknown 'opt'"),
    ],
)
def test_errors_are_one_line_exit_2(tmp_path, args, message):
    bad = tmp_path / "bad.txt"
    bad.write_text("1\n2\nx\n" if "bad.txt" in message else "1\n2\n")
    proc = bench("--trace", str(bad), *args)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert proc.stderr.startswith("mlcache: error: ")


def test_unreadable_file_and_bad_zipf(tmp_path):
    proc = bench("--trace", str(tmp_path / "missing.gz"), "--format", "plain")
    assert proc.returncode == 2 and "missing.gz: cannot open" in proc.stderr
    proc = bench("--zipf", "1.0,10")
    assert proc.returncode == 2 and "--zipf must be ALPHA,OBJECTS,REQUESTS,SEED" in proc.stderr


def test_parse_sizes():
    assert parse_sizes("250, 1%,10%,250", 10_000) == [100, 250, 1000]
    assert parse_sizes("0.001%", 10) == [1]
    for bad in ("0", "-3", "x", "0%", ""):
        with pytest.raises(ConfigurationError):
            parse_sizes(bad, 100)
