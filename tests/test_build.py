"""The build: which implementation is active, and the pure twins without the extension."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import mlcache
from conftest import COMPILED


def run_python(code: str, **env: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return proc.stdout.strip()


def test_compiled_extension_loaded_when_required():
    """.ci/run sets MLCACHE_REQUIRE_EXTENSIONS=1 for its compiled run: the build must not have
    fallen back to pure Python silently."""
    if os.environ.get("MLCACHE_NO_EXTENSIONS"):
        assert not mlcache.COMPILED
    elif os.environ.get("MLCACHE_REQUIRE_EXTENSIONS"):
        assert mlcache.COMPILED, "the Cython extension was not built or failed to import"
    assert mlcache.COMPILED == (COMPILED is not None and not os.environ.get("MLCACHE_NO_EXTENSIONS"))


@pytest.mark.parametrize("variable", ["MLCACHE_NO_EXTENSIONS", "MLCACHE_PURE_PYTHON"])
def test_environment_forces_pure_twins(variable):
    out = run_python(
        "import mlcache, mlcache.tiers.memory as m;"
        "print(mlcache.COMPILED, mlcache.MemoryTier is m.MemoryTier)",
        **{variable: "1"},
    )
    assert out == "False True"


def test_pure_twins_importable_beside_compiled():
    from mlcache.policies import POLICIES
    from mlcache.tiers.memory import MemoryTier as Pure

    assert Pure.__module__ == "mlcache.tiers.memory"
    assert set(POLICIES) >= {"lru", "lfu", "fifo"}
    if COMPILED is not None:
        assert COMPILED.MemoryTier is not Pure
        assert set(COMPILED.POLICIES) == set(POLICIES)


def test_cli_info_shows_configuration_with_secrets_masked(tmp_path):
    env = {"MLCACHE_TIERS": "memory://?maxsize=5,redis://:hunter2@localhost:6390/0",
           "MLCACHE_SECRET": "a-signing-secret-for-the-test"}  # fmt: skip
    out = run_python("from mlcache.cli import main; main(['info'])", **env)
    assert "implementation:" in out and '"maxsize": 5' in out
    assert "hunter2" not in out and "a-signing-secret" not in out and "***" in out


def test_cli_errors_are_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "mlcache", "no-such-command"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "mlcache", "info"], capture_output=True, text=True,
        env={**os.environ, "MLCACHE_TIERS": "memory://?maxsize=0"},
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "mlcache: error: caches.default.tiers[0] (memory): maxsize must be an integer >= 1, got 0"
    ]


def test_cli_demo_runs(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mlcache", "demo"], capture_output=True, text=True, timeout=300,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "1 load for 32 callers" in proc.stdout
    assert "L1 cleared, from:     disk" in proc.stdout
    assert "wtinylfu" in proc.stdout
