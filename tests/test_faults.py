"""Degrade, don't fail: 8 threads of mixed get_or_load/set while a tier fails for real.

Each scenario runs ``fault_worker.py`` for 6 s: healthy for 1 s, the fault for 2 s, then
recovery. It checks that no exception reached a caller (fail-safe), that no caller got a value
never written for its key, that the p99 call latency during the fault stays within the tier's
timeout plus a margin, that the tier's circuit breaker opened and closed again, and that the
cache went back to using the tier. The measured figures are printed (``-s``) for the notes.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tcp_proxy import Proxy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

WORKER = Path(__file__).with_name("fault_worker.py")
FAULT_AT, RECOVER_AT, DURATION = 1.0, 3.0, 6.0
MARGIN = 0.25  # seconds over the tier's timeout (a loaded 2-core machine, 8 threads)


class Report:
    def __init__(self, out: dict, tier: str) -> None:
        self.calls, self.samples, self.errors = out["calls"], out["samples"], out["errors"]
        self.tier = tier

    def status(self, status: str) -> int:
        return sum(1 for _, _, s in self.calls if s == status)

    def p99(self, start: float, end: float) -> float:
        latencies = sorted(lat for t, lat, _ in self.calls if start <= t < end)
        return latencies[int(0.99 * (len(latencies) - 1))] if latencies else 0.0

    def states(self, start: float, end: float = 1e9) -> set[str]:
        return {s[self.tier]["breaker"] for t, s in self.samples if start <= t < end}

    def used(self, start: float) -> int:
        """Sets + hits on the tier after ``start``."""
        after = [s[self.tier] for t, s in self.samples if t >= start]
        if len(after) < 2:
            return 0
        return (after[-1]["sets"] + after[-1]["hits"]) - (after[0]["sets"] + after[0]["hits"])

    def recovered_at(self) -> float | None:
        """When the breaker was last seen closing after the fault."""
        closed = [t for t, s in self.samples if t >= RECOVER_AT and s[self.tier]["breaker"] == "closed"]
        return closed[0] - RECOVER_AT if closed else None

    def summary(self) -> str:
        return (f"{self.tier}: calls={len(self.calls)} errors={self.status('error')} "
                f"wrong={self.status('wrong')} p99 during fault={self.p99(FAULT_AT, RECOVER_AT) * 1000:.0f} ms "
                f"recovered {self.recovered_at()} s after the fault ended")  # fmt: skip


def run(spec: dict, tier: str, inject, recover, preexec=None) -> Report:
    spec = {"duration": DURATION, "threads": 8, "keys": 200, **spec}
    proc = subprocess.Popen([sys.executable, str(WORKER), json.dumps(spec)], stdout=subprocess.PIPE,
                            text=True, preexec_fn=preexec)  # fmt: skip
    try:
        assert json.loads(proc.stdout.readline()) == {"ready": True}
        start = time.monotonic()
        time.sleep(max(0.0, start + FAULT_AT - time.monotonic()))
        inject()
        time.sleep(max(0.0, start + RECOVER_AT - time.monotonic()))
        recover()
        out = json.loads(proc.stdout.readline())
    finally:
        proc.wait(30)
    report = Report(out, tier)
    print("\n" + report.summary())
    return report


def assert_degraded_gracefully(report: Report, timeout: float) -> None:
    assert report.status("error") == 0, report.errors
    assert report.status("wrong") == 0
    assert report.p99(FAULT_AT, RECOVER_AT) <= timeout + MARGIN
    assert "open" in report.states(FAULT_AT, RECOVER_AT + 0.5)
    assert report.states(DURATION - 1.0) == {"closed"}
    assert report.used(RECOVER_AT + 1.5) > 0  # back to using the tier


@pytest.fixture
def workdir():
    path = Path(tempfile.mkdtemp(prefix="mlcache-faults-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_redis_hung_by_sigstop(redis_factory, workdir):
    server = redis_factory()
    report = run({"disk": str(workdir / "l2"), "redis": server.url}, "redis", server.pause, server.resume)
    assert_degraded_gracefully(report, 0.05)


def test_redis_killed_and_restarted_empty(redis_factory, workdir):
    server = redis_factory()
    report = run({"disk": str(workdir / "l2"), "redis": server.url}, "redis", server.kill, server.start)
    assert_degraded_gracefully(report, 0.05)


@pytest.mark.parametrize("mode", ["blackhole", "delay"])
def test_redis_behind_a_proxy_that_swallows_or_delays_traffic(redis_factory, workdir, mode):
    server = redis_factory()
    proxy = Proxy(server.port)
    try:
        def inject():
            proxy.delay = 0.2  # four times the timeout
            proxy.mode = mode

        report = run({"disk": str(workdir / "l2"), "redis": proxy.url}, "redis", inject,
                     lambda: setattr(proxy, "mode", "pass"))  # fmt: skip
    finally:
        proxy.close()
    assert_degraded_gracefully(report, 0.05)


def test_redis_slow_but_within_its_timeout_keeps_being_used(redis_factory, workdir):
    server = redis_factory()
    proxy = Proxy(server.port)
    try:
        def inject():
            proxy.delay = 0.005
            proxy.mode = "delay"

        report = run({"disk": str(workdir / "l2"), "redis": proxy.url, "timeout": 0.1}, "redis",
                     inject, lambda: setattr(proxy, "mode", "pass"))  # fmt: skip
    finally:
        proxy.close()
    assert report.status("error") == 0 and report.status("wrong") == 0
    assert report.states(0) == {"closed"}  # slow is not failed


def _without_dac_override() -> None:
    """(preexec) Root ignores file modes; drop the capabilities that let it, so that a
    read-only directory is read-only for the worker too (Linux: prctl PR_CAPBSET_DROP)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_l2_directory_read_only_at_start_then_writable(workdir, redis_factory):
    """A process that starts while its L2 directory is read-only: L2 fails (breaker open) and
    the cache runs on L1 + L3; once the directory is writable, L2 opens and is used."""
    l2 = workdir / "l2"
    from mlcache import Cache, DiskTier

    Cache(DiskTier(l2)).close()  # the directory as an earlier run left it (key, database)
    server = redis_factory()
    for path in [l2, *l2.iterdir()]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))

    def recover():
        for path in [l2, *l2.iterdir()]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)

    preexec = _without_dac_override if os.geteuid() == 0 else None
    try:
        report = run({"disk": str(l2), "redis": server.url}, "disk", lambda: None, recover,
                     preexec=preexec)  # fmt: skip
    finally:
        recover()
    assert report.status("error") == 0 and report.status("wrong") == 0
    assert report.p99(0, RECOVER_AT) <= 0.1 + MARGIN
    assert "open" in report.states(0, RECOVER_AT)
    assert report.states(DURATION - 1.0) == {"closed"}
    assert report.used(RECOVER_AT + 1.5) > 0


def test_l2_database_corrupted(workdir, redis_factory):
    server = redis_factory()
    l2 = workdir / "l2"

    def inject():  # the database and its log; (SQLite's shared-memory index is not data)
        for name in ("cache.db", "cache.db-wal"):
            path = l2 / name
            if path.exists():
                with open(path, "r+b") as f:
                    f.write(os.urandom(path.stat().st_size))

    report = run({"disk": str(l2), "redis": server.url}, "disk", inject, lambda: None)
    assert report.status("error") == 0 and report.status("wrong") == 0
    assert report.p99(FAULT_AT, RECOVER_AT) <= 0.1 + MARGIN
    assert report.states(DURATION - 1.0) == {"closed"}
    assert report.used(RECOVER_AT) > 0  # healed: a fresh database in use
    assert list(l2.glob("cache.db.corrupt-*"))


def test_fail_fast_raises_tier_error_promptly(redis_factory):
    from mlcache import Cache, MemoryTier, RedisTier, TierError

    server = redis_factory()
    cache = Cache(MemoryTier(10), RedisTier(server.url, socket_timeout=0.05, on_error="raise"))
    cache.set("k", 1)
    server.pause()
    try:
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(TierError, match="redis"):
                cache.get_or_load(f"new-{time.monotonic_ns()}", lambda: 1)
            assert time.monotonic() - started <= 0.05 + MARGIN
    finally:
        server.resume()
        cache.close()


def test_stampede_guard_survives_redis_being_down(redis_factory, workdir):
    """With L3 down, single-flight falls back to the disk lease, then to the flight."""
    import threading

    from mlcache import Cache, DiskTier, MemoryTier, RedisTier

    server = redis_factory()
    cache = Cache(MemoryTier(10), DiskTier(workdir / "l2"), RedisTier(server.url, socket_timeout=0.05))
    server.kill()
    calls = []

    def load():
        calls.append(1)
        time.sleep(0.05)
        return "v"

    threads = [threading.Thread(target=lambda: cache.get_or_load("cold", load)) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(calls) == 1
    cache.close()
    server.start()
