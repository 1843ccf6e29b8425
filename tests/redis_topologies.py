"""Real Redis topologies on free loopback ports, for tests: a 3-master Redis Cluster and a
Sentinel group (primary, replica, one sentinel). Both start in a few seconds and clean up what
they started (``stop()``, or use them as context managers).

    with ClusterGroup(tmp_path).start() as cluster:
        RedisTier(url=cluster.url)              # redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...

    with SentinelGroup(tmp_path).start() as group:
        RedisTier(url=group.url)                # redis+sentinel://127.0.0.1:s/mlcache
        group.kill_primary(); group.wait_promoted(timeout=30)

Built on ``mlcache.testing.RedisServer``; needs ``redis-server`` and ``redis-cli`` (7.0+) on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from mlcache.testing import RedisServer, free_port

__all__ = ["ClusterGroup", "SentinelGroup", "free_ports"]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports."""
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _admin(port: int, timeout: float = 2.0) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=timeout, socket_connect_timeout=timeout)


def _wait(what: str, check, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (redis.RedisError, OSError) as exc:
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:g} s (last error: {last_error!r})")


class _Group:
    servers: list[RedisServer]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ClusterGroup(_Group):
    """``masters`` cluster-enabled redis-servers joined by ``redis-cli --cluster create``, each
    with ``replicas`` replicas (default none). ``.url``: a ``redis+cluster://`` URL naming every
    node; ``.nodes``: the ``RedisServer`` objects."""

    def __init__(
        self, workdir: str | Path, masters: int = 3, node_timeout_ms: int = 2000, replicas: int = 0
    ) -> None:
        self.workdir = Path(workdir)
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[RedisServer] = []
        self.servers = self.nodes

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self, timeout: float = 30.0) -> ClusterGroup:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise FileNotFoundError("redis-cli is not on PATH")
        count = self.masters * (1 + self.replicas)
        ports = free_ports(2 * count)  # data ports, then cluster bus ports
        try:
            for port, bus in zip(ports[:count], ports[count:]):
                self.nodes.append(RedisServer(
                    self.workdir / f"node{port}", port,
                    "--cluster-enabled", "yes",
                    "--cluster-port", str(bus),  # not port+10000: that may be taken or > 65535
                    "--cluster-config-file", f"nodes-{port}.conf",
                    "--cluster-node-timeout", str(self.node_timeout_ms),
                    "--repl-diskless-sync-delay", "0",
                ).start())  # fmt: skip
            create = subprocess.run(
                [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
                 "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                capture_output=True, text=True, timeout=timeout,
            )  # fmt: skip
            if create.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed:\n{create.stdout}\n{create.stderr}")
            for node in self.nodes:
                _wait(f"cluster state ok on {node.port}",
                      lambda n=node: _admin(n.port).cluster("info")["cluster_state"] == "ok",
                      timeout)  # fmt: skip
            if self.replicas:
                _wait("replicas in sync", lambda: all(
                    _admin(n.port).info("replication").get("master_link_status", "up") == "up"
                    for n in self.nodes), timeout)  # fmt: skip
        except BaseException:
            self.stop()
            raise
        return self

    def admin(self, node: int = 0) -> redis.Redis:
        return _admin(self.nodes[node].port)

    def node(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def owner(self, slot: int, among: list[RedisServer] | None = None) -> int:
        """The port of the master serving ``slot``, as the (live) nodes ``among`` agree."""
        among = among or [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]
        owners = set()
        for server in among:
            for start, end, master, *_ in _admin(server.port).execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    owners.add(int(master[1]))
        if len(owners) != 1:
            raise RuntimeError(f"nodes disagree on slot {slot}: {owners}")
        return owners.pop()

    def wait_failover(self, slot: int, old_port: int, timeout: float = 30.0) -> int:
        """Wait until a replica took over ``slot`` from the master on ``old_port`` and every
        live node agrees; returns the new master's port."""

        def moved() -> int | None:
            try:
                port = self.owner(slot)
            except RuntimeError:
                return None
            ok = all(_admin(n.port).cluster("info")["cluster_state"] == "ok"
                     for n in self.nodes if n.proc is not None and n.proc.poll() is None)  # fmt: skip
            return port if port != old_port and ok else None

        return _wait(f"failover of slot {slot}", moved, timeout)  # type: ignore[no-any-return]

    def flushall(self) -> None:
        for node in self.nodes:
            _admin(node.port).flushall()


class SentinelGroup(_Group):
    """A primary, one replica of it and one sentinel watching them as ``service``, failing
    over fast (``down_after_ms``). ``.url``: a ``redis+sentinel://`` URL for the service."""

    def __init__(
        self,
        workdir: str | Path,
        service: str = "mlcache",
        down_after_ms: int = 500,
        failover_timeout_ms: int = 3000,
    ) -> None:
        self.workdir = Path(workdir)
        self.service = service
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.primary: RedisServer | None = None
        self.replica: RedisServer | None = None
        self.sentinel: RedisServer | None = None
        self.servers: list[RedisServer] = []

    @property
    def url(self) -> str:
        assert self.sentinel is not None
        return f"redis+sentinel://127.0.0.1:{self.sentinel.port}/{self.service}"

    def start(self, timeout: float = 30.0) -> SentinelGroup:
        try:
            fast = ("--repl-diskless-sync-delay", "0")  # Redis 7 waits 5 s for more replicas
            self.primary = self._add(RedisServer(self.workdir / "primary", None, *fast))
            self.replica = self._add(RedisServer(
                self.workdir / "replica", None, *fast, "--replicaof", "127.0.0.1", str(self.primary.port)
            ))  # fmt: skip
            _wait("replica in sync", lambda: self._link_up(self.replica), timeout)
            sentinel_dir = self.workdir / "sentinel"
            sentinel_dir.mkdir(parents=True, exist_ok=True)
            config = sentinel_dir / "sentinel.conf"
            config.write_text(
                f"sentinel monitor {self.service} 127.0.0.1 {self.primary.port} 1\n"
                f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.service} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {self.service} 1\n"
            )
            self.sentinel = self._add(RedisServer(sentinel_dir, None, "--sentinel", config=config))
            _wait("sentinel knows the replica", self._replica_known, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _add(self, server: RedisServer) -> RedisServer:
        self.servers.append(server)
        return server.start()

    @staticmethod
    def _link_up(server: RedisServer) -> bool:
        return _admin(server.port).info("replication").get("master_link_status") == "up"

    def _replica_known(self) -> bool:
        assert self.sentinel is not None
        replicas = _admin(self.sentinel.port).sentinel_slaves(self.service)
        return any("s_down" not in r["flags"] and "disconnected" not in r["flags"] for r in replicas)

    def master_address(self) -> tuple[str, int]:
        """Where the sentinel says the primary is."""
        assert self.sentinel is not None
        host, port = _admin(self.sentinel.port).sentinel_get_master_addr_by_name(self.service)
        return (host.decode() if isinstance(host, bytes) else host), int(port)

    def kill_primary(self) -> float:
        """SIGKILL the primary; returns ``time.monotonic()`` right after."""
        assert self.primary is not None
        self.primary.kill()
        return time.monotonic()

    def wait_promoted(self, timeout: float = 30.0) -> RedisServer:
        """Wait until the sentinel names the replica as the primary and it acts as one; the
        servers swap roles (``.primary`` is the promoted server, ``.replica`` the old one)."""
        assert self.primary is not None and self.replica is not None
        replica = self.replica

        def promoted() -> bool:
            return (
                self.master_address()[1] == replica.port
                and _admin(replica.port).info("replication")["role"] == "master"
            )

        _wait("replica promoted", promoted, timeout)
        self.primary, self.replica = replica, self.primary
        return replica
