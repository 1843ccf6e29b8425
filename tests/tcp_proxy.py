"""A loopback TCP proxy for fault injection: forwards, delays, or swallows traffic."""

from __future__ import annotations

import socket
import threading
import time

from mlcache.testing import free_port


class Proxy:
    """Listens on 127.0.0.1:<port> and forwards to 127.0.0.1:<upstream>. ``mode``: "pass",
    "delay" (each chunk waits ``delay`` seconds in each direction) or "blackhole" (reads and
    drops everything: the peer sees a server that accepts and never answers)."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.mode = "pass"
        self.delay = 0.0
        self._sock = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            except OSError:
                client.close()
                continue
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if self.mode == "blackhole":
                    continue
                if self.mode == "delay":
                    time.sleep(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        self._sock.close()
