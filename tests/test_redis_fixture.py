"""The private redis-server fixture that later tiers' tests stand on."""

from __future__ import annotations

import socket
import time

import pytest

from mlcache.testing import RedisServer, _ping

pytestmark = pytest.mark.redis


def test_private_server_answers(redis_server):
    assert redis_server.port != 6379
    assert _ping(redis_server.port)


def test_pause_resume_kill_restart(redis_factory):
    server = redis_factory()
    server.pause()
    with socket.create_connection(("127.0.0.1", server.port), timeout=1) as s:
        s.sendall(b"PING\r\n")
        s.settimeout(0.3)
        with pytest.raises(socket.timeout):
            s.recv(16)  # hung: accepts, never answers
    server.resume()
    assert _ping(server.port, timeout=2)
    server.kill()
    assert not _ping(server.port)
    server.start()
    assert _ping(server.port)


def test_start_failure_is_reported(tmp_path, redis_server):
    server = RedisServer(tmp_path, None, "--no-such-option", "1")
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="did not start"):
        server.start(timeout=5)
    assert time.monotonic() - started < 5
