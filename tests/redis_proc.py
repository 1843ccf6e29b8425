"""Private redis-server processes for tests (``mlcache.testing.RedisServer``), with the policy
for machines without one: skip with the reason shown, except under ``CI=true`` or
``MLCACHE_REQUIRE_REDIS=1`` where that is a failure.
"""

from __future__ import annotations

import os
import shutil

import pytest

from mlcache.testing import RedisServer

__all__ = ["RedisServer", "require_redis_server"]

REDIS_REQUIRED = os.environ.get("CI", "").lower() == "true" or bool(
    os.environ.get("MLCACHE_REQUIRE_REDIS")
)


def require_redis_server() -> str:
    """Return the redis-server path, or skip (fail under CI) the calling test."""
    path = shutil.which("redis-server")
    if path is None:
        reason = "redis-server is not on PATH"
        if REDIS_REQUIRED:
            pytest.fail(f"{reason} (required: CI=true or MLCACHE_REQUIRE_REDIS=1)")
        pytest.skip(reason)
    return path
