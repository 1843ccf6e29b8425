"""L3: Redis, shared by every host, over redis-py (hiredis parses replies when installed).

Three topologies, chosen by the URL's scheme:

- ``redis://``, ``rediss://``, ``unix://``: one server (redis-py reads the URL).
- ``redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]``: the primary of
  ``service``, found through the sentinels (``redis.sentinel``). Every new connection asks a
  sentinel where the primary is, so after a failover the tier finds the new one by itself; a
  ``READONLY`` reply (a primary demoted under our feet) closes the connection and is raised as
  a connection error, which the tier's guard retries once on a fresh connection.
- ``redis+cluster://[[user]:password@]host:port[,host:port...]``: Redis Cluster
  (``redis.cluster``); the hosts are where the client learns the slot map, and any one alive
  is enough.

``get_many`` is one MGET and ``set_many`` one pipelined MULTI/EXEC (on Cluster: one round trip
per node, see below). ``clear`` removes only this tier's keys (SCAN by prefix + UNLINK, on every
primary of a cluster), never the whole database. The async face uses ``redis.asyncio`` with
one client per event loop.

Leases (cross-host single-flight, see ``mlcache.cache``): a lease is a key set only if absent;
the holder writes its value with a Lua script that checks the token first (compare-and-set), so
a holder whose lease was taken away writes nothing. Every plain write and delete also removes
the key's lease, which is how a delete during a load stops that load from caching an old value.
Waiters block in ``XREAD`` on a wake-up stream named after the holder's token; the holder (or
whoever removed its lease) adds one entry to it, in the same script as its write. Reading a
stream does not consume it, so that one entry wakes every waiter at once, and a waiter that
starts reading after it was added returns at once (reading from ``0-0``). A waiter thus costs
one script call to take the lease (or learn its holder), one ``XREAD`` per second of waiting,
and one read; a wake-up costs the waker nothing more than its script.

Key layout: data under ``prefix + key``; lease and wake-up streams under ``prefix + "\\0..."``,
which no data key starts with (``physical_key`` hashes such keys). On Cluster the scripts touch
a key's data, lease and wake-up stream together, so the three must live in one slot: the key
goes into a hash tag, ``prefix{key}``, ``prefix\\0lease:{key}``, ``prefix\\0wake:{key}:token``. A key
whose tag would not work (empty, or containing ``}``, which would end the tag early or leave it
empty) is tagged with a short hash of itself instead, ``prefix{h}:key`` (8 hex digits, so the
two forms never name the same thing); the prefix may not contain braces there. Batches on
Cluster: ``get_many`` reads each slot's keys with one MGET, all of a node's in one round trip
(``mget_nonatomic``); ``set_many`` and ``delete_many`` run one script per slot, all of a node's
in one round trip. Each slot's part is atomic (so each entry is: value, lease and wake-up go
together); the batch as a whole is not (no MULTI across slots), and a failing node leaves the
other nodes' parts applied.

Timeouts: each command is one attempt bounded by ``socket_timeout`` (connections by
``connect_timeout``); redis-py's own retries are off in every mode, the tier's guard decides.
On Cluster, a command that fails on a node makes redis-py refresh the slot map before raising
(CLUSTER SLOTS to the other nodes, each bounded the same way, the failed node last), and a
``CLUSTERDOWN`` reply costs redis-py's fixed 0.25 s pause: no retry multiplies either.

Needs Redis 6.0 or newer (tested on 7.0): nothing relies on 7's ``SET ... GET`` with ``NX``.

Without a secret the tier stores msgpack (which cannot run code on load) under an unkeyed
digest: it detects corruption, not forgery. Anyone who can write to Redis can plant entries
that read back as values (never as code: pickle needs a secret, or an explicit
``unsafe_pickle=True``). With a secret, signed pickle: entries written without it read as
misses. Processes that share a prefix must share these settings, or they read each other's
entries as misses.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import weakref
from typing import Any, ClassVar, NamedTuple
from urllib.parse import unquote, urlsplit

from .._checks import check_positive_int, check_ttl
from ..errors import ConfigurationError
from ..resilience import Retry, _connection_error, _is_timeout
from .base import RemoteTier

__all__ = ["RedisTier", "mask_url"]

_GLOB_SPECIAL = b"*?[]\\"
# A password in the query string (``unix:///run/redis.sock?password=...``), masked too.
_PASSWORD_PARAM = re.compile(r"([?&][^=&#]*(?:pass|secret|token)[^=&#]*=)[^&#]*", re.IGNORECASE)
_WAIT_SLICE = 1.0  # longest single XREAD; bounds how long a hung server can hold a waiter
_DONE_TTL_MS = 10_000  # how long a wake-up stream outlives its flight
_SENTINEL, _CLUSTER, _STANDALONE = "sentinel", "cluster", "standalone"
_SCHEMES = {"redis+sentinel": _SENTINEL, "redis+cluster": _CLUSTER}
_DEFAULT_PORTS = {_SENTINEL: 26379, _CLUSTER: 6379}

# KEYS: data and lease of each entry. ARGV: done ttl, then per entry value, px ('' = none) and
# wake-up prefix. Write each entry and take its lease away (waking that lease's waiters).
_WRITE = """
for i = 1, #KEYS, 2 do
  local j = 2 + (i - 1) / 2 * 3
  local holder = redis.call('GET', KEYS[i + 1])
  if ARGV[j + 1] == '' then redis.call('SET', KEYS[i], ARGV[j])
  else redis.call('SET', KEYS[i], ARGV[j], 'PX', ARGV[j + 1]) end
  if holder then
    redis.call('DEL', KEYS[i + 1])
    redis.call('XADD', ARGV[j + 2] .. holder, '*', 'w', '1')
    redis.call('PEXPIRE', ARGV[j + 2] .. holder, ARGV[1])
  end
end
return #KEYS / 2
"""
# KEYS: data and lease of each entry. ARGV: done ttl, then each entry's wake-up prefix. Delete,
# taking the leases away too; returns how many data keys existed.
_DELETE = """
local n = 0
for i = 1, #KEYS, 2 do
  n = n + redis.call('DEL', KEYS[i])
  local holder = redis.call('GET', KEYS[i + 1])
  if holder then
    local done = ARGV[1 + (i + 1) / 2] .. holder
    redis.call('DEL', KEYS[i + 1])
    redis.call('XADD', done, '*', 'w', '1')
    redis.call('PEXPIRE', done, ARGV[1])
  end
end
return n
"""
# KEYS: data, lease, wake-up stream. ARGV: value, px, token, done ttl. Write only while holding
# the lease; then release it and wake the waiters, all of them with one entry.
_WRITE_UNDER_LEASE = """
if redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end
if ARGV[2] == '' then redis.call('SET', KEYS[1], ARGV[1])
else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
redis.call('DEL', KEYS[2])
redis.call('XADD', KEYS[3], '*', 'w', '1')
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return 1
"""
# KEYS: lease. ARGV: token, px. Take the lease if it is free (nil), else return its holder
# (SET NX GET would do, but needs Redis 7).
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder then return holder end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
# KEYS: lease. ARGV: token, px. Extend a lease still held (a long load keeps it).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# KEYS: lease, wake-up stream. ARGV: token, done ttl. Release a lease still held; wake waiters.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('XADD', KEYS[2], '*', 'w', '1')
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""


def _import_redis() -> Any:
    try:
        import redis
        import redis.asyncio
        import redis.asyncio.cluster
        import redis.asyncio.sentinel
        import redis.backoff
        import redis.cluster
        import redis.retry
        import redis.sentinel
    except ImportError as exc:
        raise ConfigurationError(
            "RedisTier needs the redis package: pip install 'mlcache[redis]'"
        ) from exc
    return redis


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for reprs, logs and errors); works for
    URLs with several hosts (``redis+sentinel://``, ``redis+cluster://``) too."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = len(rest)
    for stop in "/?#":
        at = rest.find(stop)
        if at != -1:
            end = min(end, at)
    netloc, tail = rest[:end], _PASSWORD_PARAM.sub(r"\1***", rest[end:])
    userinfo, at, hosts = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return f"{scheme}://{netloc}{tail}"
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hosts}{tail}"


class _Target(NamedTuple):
    """Where a ``redis+sentinel://`` or ``redis+cluster://`` URL points."""

    mode: str
    hosts: list[tuple[str, int]]
    service: str | None
    db: int
    username: str | None
    password: str | None


def _parse_url(url: str) -> _Target | None:
    """The target of a sentinel or cluster URL; None for the URLs redis-py reads itself."""
    if not isinstance(url, str):
        raise ConfigurationError(f"url must be a str, got {type(url).__name__}")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    mode = _SCHEMES.get(scheme)

    def bad(reason: str) -> ConfigurationError:
        return ConfigurationError(f"bad Redis URL {mask_url(url)!r}: {reason}")

    if mode is None:
        db = urlsplit(url).path.strip("/") if scheme in ("redis", "rediss") else ""
        if db and not db.isdigit():  # (redis-py would quietly use database 0)
            raise bad(f"the database must be a number, got {unquote(db)!r}")
        return None

    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise bad("options go to RedisTier(...) as arguments (or in the settings' URL query)")
    userinfo, _, netloc = parts.netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    hosts = []
    for item in netloc.split(","):
        host, port = _host_port(item.strip(), _DEFAULT_PORTS[mode], bad)
        hosts.append((host, port))
    path = [unquote(p) for p in parts.path.split("/")[1:] if p != ""]
    service, db = None, 0
    if mode == _SENTINEL:
        if not path or len(path) > 2:
            raise bad("name the service: redis+sentinel://host:port[,host:port...]/service[/db]")
        service = path[0]
        if len(path) == 2:
            if not path[1].isdigit():
                raise bad(f"the database must be a number, got {path[1]!r}")
            db = int(path[1])
    elif path not in ([], ["0"]):
        raise bad("Redis Cluster has only database 0: redis+cluster://host:port[,host:port...]")
    return _Target(mode, hosts, service, db, username, password)


def _host_port(item: str, default: int, bad: Any) -> tuple[str, int]:
    if item.startswith("["):  # [IPv6]:port
        host, _, rest = item[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else rest
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise bad(f"a host is missing in {item!r}")
    if not port_text:
        return host, default
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise bad(f"bad port in {item!r}")
    return host, int(port_text)


def _glob_escape(prefix: bytes) -> bytes:
    return b"".join(b"\\" + bytes([c]) if c in _GLOB_SPECIAL else bytes([c]) for c in prefix)


def _block_ms(timeout: float) -> int:
    """``timeout`` seconds as the BLOCK of one wait slice: 1 ms at least (0 is forever)."""
    return max(1, int(min(timeout, _WAIT_SLICE) * 1000))


def _px(ttl: float | None) -> int | str:
    return "" if ttl is None else max(1, int(ttl * 1000))


def _hash_tag(key: bytes) -> bytes:
    """``key`` as a Redis Cluster hash tag: ``{key}``; or, for a key that would end the tag
    early or leave it empty, ``{h}:key`` with ``h`` 8 hex digits of its hash. Injective: the
    first form has one ``}``, at the end; the second has two, or ends with ``:``."""
    if key and b"}" not in key:
        return b"{" + key + b"}"
    return b"{" + hashlib.blake2b(key, digest_size=4).hexdigest().encode() + b"}:" + key


class _Scripts:
    """The tier's Lua scripts, registered on one client (sync, or one event loop's)."""

    def __init__(self, client: Any) -> None:
        self.write = client.register_script(_WRITE)
        self.delete = client.register_script(_DELETE)
        self.write_under_lease = client.register_script(_WRITE_UNDER_LEASE)
        self.release = client.register_script(_RELEASE)
        self.renew = client.register_script(_RENEW)
        self.acquire = client.register_script(_ACQUIRE)


class RedisTier(RemoteTier):
    """L3 on Redis: ``url`` is ``redis://``, ``rediss://``, ``unix://`` (one server),
    ``redis+sentinel://host:port[,...]/service[/db]`` (the primary that the sentinels name) or
    ``redis+cluster://host:port[,...]`` (Redis Cluster); keys under ``prefix``.
    ``socket_timeout`` (default 50 ms) bounds every command and ``connect_timeout`` (100 ms)
    every connection attempt, each tried once (the guard retries a refused or reset connection
    once); ``max_connections`` bounds each pool (per node on Cluster). ``ttl`` caps lifetimes
    here. Codec, signing and fault options as in ``RemoteTier``."""

    name: ClassVar[str] = "redis"
    level: ClassVar[int] = 3
    supports_leases: ClassVar[bool] = True

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        prefix: str = "mlcache:",
        ttl: float | None = None,
        *,
        socket_timeout: float = 0.05,
        connect_timeout: float = 0.1,
        max_connections: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(ttl=ttl, **options)
        socket_timeout = check_ttl("socket_timeout", socket_timeout, allow_none=False)
        connect_timeout = check_ttl("connect_timeout", connect_timeout, allow_none=False)
        if max_connections is not None:
            check_positive_int("max_connections", max_connections)
        self._redis = _import_redis()
        # The guard retries "a refused or reset connection": for redis-py that is its own
        # ConnectionError (not a builtin one), which is also what a READONLY reply from a
        # demoted primary becomes under Sentinel. Never a timeout, nor bad credentials.
        self.retry = Retry(self.retry.retries, self.retry.backoff, self._retryable)
        if not isinstance(prefix, str) or not prefix or prefix[-1].isalnum():
            # clear() deletes everything under the prefix: "" would be the whole database,
            # and "app" would take "app2:..." along.
            raise ConfigurationError(
                f"prefix must be a non-empty str ending in a separator such as ':', got {prefix!r}"
            )
        self.url = url
        self._target = _parse_url(url)
        self.mode = _STANDALONE if self._target is None else self._target.mode
        self._cluster = self.mode == _CLUSTER
        if self._cluster and ("{" in prefix or "}" in prefix):
            raise ConfigurationError(
                f"prefix {prefix!r} may not contain '{{' or '}}' on Redis Cluster: mlcache puts "
                "each key in a hash tag"
            )
        self.prefix = prefix
        self._prefix = prefix.encode()
        self._lease_prefix = self._prefix + b"\x00lease:"
        self._done_prefix = self._prefix + b"\x00wake:"
        self._bus = self._prefix + b"\x00bus"  # the invalidation stream (mlcache.invalidation)
        # One attempt per command, bounded by the timeouts: redis-py's own retries (10 by
        # default in redis-py 8) would multiply them; the tier's guard decides on retries.
        self._options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": connect_timeout,
            "max_connections": max_connections,
            "decode_responses": False,
            "retry": self._no_retry(),
            "retry_on_timeout": False,
        }
        # Blocking waits use their own connections, with room for one XREAD slice and for the
        # server's reply to it arriving late on a busy host.
        self._blocking_options = {
            **self._options, "socket_timeout": _WAIT_SLICE + max(socket_timeout, 0.25)
        }
        self._lock = threading.Lock()
        self._sentinel: Any = None
        self._sync: tuple[Any, _Scripts] | None = None  # (client, its scripts)
        self._sync_blocking: dict[str, Any] = {}  # blocking clients: "lease" waits, the "bus"
        if not self._cluster:  # (redis-py's cluster client reads the slot map when built)
            self._sync_pair()
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, Any, Any, Any]] = (
            weakref.WeakKeyDictionary()
        )

    def _unsigned_codec(self) -> str:
        return "msgpack"

    def _retryable(self, error: BaseException) -> bool:
        if _connection_error(error):
            return True
        exceptions = self._redis.exceptions
        return (
            isinstance(error, exceptions.ConnectionError)
            and not _is_timeout(error)
            and not isinstance(error, (exceptions.AuthenticationError, exceptions.AuthorizationError,
                                       exceptions.MaxConnectionsError))
        )  # fmt: skip

    def _no_retry(self) -> Any:
        return self._redis.retry.Retry(self._redis.backoff.NoBackoff(), 0)

    # -- clients -------------------------------------------------------------------------------

    def _make_client(self, options: dict[str, Any], aio: bool = False, sentinel: Any = None) -> Any:
        """A client for ``options`` (sync, or asyncio for the running loop). Sentinel mode:
        ``sentinel`` is the ``Sentinel`` object to ask (one per face)."""
        redis = self._redis
        target = self._target
        if target is None:
            factory = redis.asyncio.Redis if aio else redis.Redis
            try:
                return factory.from_url(self.url, **options)
            except ValueError as exc:
                reason = str(exc)
                password = urlsplit(self.url).password
                if password:
                    reason = reason.replace(password, "***")
                raise ConfigurationError(f"bad Redis URL {mask_url(self.url)!r}: {reason}") from None
        credentials = {"username": target.username, "password": target.password}
        if target.mode == _SENTINEL:
            assert sentinel is not None
            return sentinel.master_for(
                target.service,
                redis_class=redis.asyncio.Redis if aio else redis.Redis,
                db=target.db,
                **credentials,
                **options,
            )
        # Cluster: redis-py applies its own retry object to the cluster-level loop and none
        # to the nodes' connections; ours says "one attempt" (redis-py 8 makes 10 more,
        # each after a slot-map refresh). MOVED/ASK redirections are followed regardless.
        node_options = {k: v for k, v in options.items() if k not in ("retry", "retry_on_timeout")}
        if node_options.get("max_connections") is None:
            node_options.pop("max_connections")
        module = redis.asyncio.cluster if aio else redis.cluster
        return module.RedisCluster(
            startup_nodes=[module.ClusterNode(host, port) for host, port in target.hosts],
            retry=options["retry"],
            **credentials,
            **node_options,
        )

    def _make_sentinel(self, aio: bool) -> Any:
        assert self._target is not None
        module = self._redis.asyncio.sentinel if aio else self._redis.sentinel
        sentinel_options = {
            k: self._options[k]
            for k in ("socket_timeout", "socket_connect_timeout", "retry")
        }
        return module.Sentinel(self._target.hosts, sentinel_kwargs=sentinel_options)

    def _sync_pair(self) -> tuple[Any, _Scripts]:
        """The sync client and its scripts (built on first use on Cluster, and after close)."""
        pair = self._sync
        if pair is None:
            with self._lock:
                pair = self._sync
                if pair is None:
                    client = self._make_client(self._options, sentinel=self._sync_sentinel())
                    pair = self._sync = (client, _Scripts(client))
        return pair

    def _client(self) -> Any:
        return self._sync_pair()[0]

    def _sync_scripts(self) -> _Scripts:
        return self._sync_pair()[1]

    def _blocking(self, purpose: str = "lease") -> Any:
        """The sync client for blocking commands: lease waits and the bus each have one (so
        that ``bus_interrupt`` leaves lease waiters alone)."""
        client = self._sync_blocking.get(purpose)
        if client is None:
            with self._lock:
                client = self._sync_blocking.get(purpose)
                if client is None:
                    client = self._make_client(self._blocking_options, sentinel=self._sync_sentinel())
                    self._sync_blocking[purpose] = client
        return client

    def _sync_sentinel(self) -> Any:
        """(under the lock, Sentinel mode) The sentinels, as the sync clients ask them."""
        if self.mode != _SENTINEL:
            return None
        if self._sentinel is None:
            self._sentinel = self._make_sentinel(aio=False)
        return self._sentinel

    def _aclients(self) -> tuple[Any, Any, Any]:
        """(client, scripts, blocking client) for the running event loop."""
        loop = asyncio.get_running_loop()
        clients = self._async.get(loop)
        if clients is None:
            # The clients of loops that were closed (each asyncio.run() is a new loop) can no
            # longer be closed politely; forgetting them lets their sockets be collected.
            for old in [other for other in self._async if other.is_closed()]:
                del self._async[old]
            sentinel = self._make_sentinel(aio=True) if self.mode == _SENTINEL else None
            client = self._make_client(self._options, aio=True, sentinel=sentinel)
            blocking = self._make_client(self._blocking_options, aio=True, sentinel=sentinel)
            clients = self._async[loop] = (client, _Scripts(client), blocking, sentinel)
        return clients[0], clients[1], clients[2]

    # -- key layout ----------------------------------------------------------------------------

    def _name(self, key: bytes) -> bytes:
        """``key`` as it appears in every name of it (on Cluster: in its hash tag)."""
        return _hash_tag(key) if self._cluster else key

    def _data(self, key: bytes) -> bytes:
        return self._prefix + self._name(key)

    def _lease(self, key: bytes) -> bytes:
        return self._lease_prefix + self._name(key)

    def _done(self, key: bytes, token: bytes = b"") -> bytes:
        """The wake-up stream of ``token``'s flight of ``key`` (without the token: its prefix)."""
        return self._done_prefix + self._name(key) + b":" + token

    def _slot(self, key: bytes) -> int:
        return self._redis.cluster.key_slot(self._data(key))  # type: ignore[no-any-return]

    def _write_call(self, items: list[tuple[bytes, bytes, float | None]]) -> tuple[list[bytes], list[Any]]:
        """KEYS and ARGV of the write script for ``items``."""
        keys: list[bytes] = []
        args: list[Any] = [_DONE_TTL_MS]
        for key, data, ttl in items:
            keys += (self._data(key), self._lease(key))
            args += (data, _px(ttl), self._done(key))
        return keys, args

    def _delete_call(self, keys: list[bytes]) -> tuple[list[bytes], list[Any]]:
        """KEYS and ARGV of the delete script for ``keys``."""
        names: list[bytes] = []
        args: list[Any] = [_DONE_TTL_MS]
        for key in keys:
            names += (self._data(key), self._lease(key))
            args.append(self._done(key))
        return names, args

    def _by_slot(self, entries: list[Any], key: Any = lambda e: e) -> list[list[Any]]:
        """``entries`` grouped by the cluster slot of their key."""
        groups: dict[int, list[Any]] = {}
        for entry in entries:
            groups.setdefault(self._slot(key(entry)), []).append(entry)
        return list(groups.values())

    def _queue_script(self, pipe: Any, script: str, keys: list[bytes], args: list[Any]) -> None:
        # redis-py's cluster pipeline refuses EVALSHA (it cannot load scripts on the nodes);
        # EVAL sends the text, which Redis caches by its hash, once.
        pipe.execute_command("EVAL", script, len(keys), *keys, *args)

    def _queue_fills(self, pipe: Any, items: list[tuple[bytes, bytes, float | None]]) -> Any:
        for key, data, ttl in items:
            pipe.set(self._data(key), data, nx=True, px=None if ttl is None else _px(ttl))
        return pipe

    # -- sync ----------------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        return self._client().get(self._data(key))  # type: ignore[no-any-return]

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        if self._cluster:
            return self._client().mget_nonatomic([self._data(k) for k in keys]) if keys else []  # type: ignore[no-any-return]
        return self._client().mget([self._prefix + k for k in keys])  # type: ignore[no-any-return]

    def set(self, key: bytes, data: bytes, ttl: float | None) -> None:
        keys, args = self._write_call([(key, data, ttl)])
        self._sync_scripts().write(keys=keys, args=args)

    def set_many(self, items: list[tuple[bytes, bytes, float | None]]) -> None:
        if self._cluster:  # one script per slot, one round trip per node: atomic per slot
            pipe = self._client().pipeline(transaction=False)
            for group in self._by_slot(items, key=lambda item: item[0]):
                self._queue_script(pipe, _WRITE, *self._write_call(group))
            pipe.execute()
            return
        client, scripts = self._sync_pair()
        pipe = client.pipeline(transaction=True)  # MULTI/EXEC: never half-applied
        for item in items:
            keys, args = self._write_call([item])
            scripts.write(keys=keys, args=args, client=pipe)
        pipe.execute()

    def fill(self, key: bytes, data: bytes, ttl: float | None, since: float) -> bool:
        return self.fill_many([(key, data, ttl)], since) > 0

    def fill_many(self, items: list[tuple[bytes, bytes, float | None]], since: float) -> int:
        # SET NX: never over a value. Redis keeps no tombstones (``since`` is not used): a
        # tier above Redis is unusual, and L3 is only ever copied *from*.
        pipe = self._queue_fills(self._client().pipeline(transaction=False), items)
        return sum(bool(ok) for ok in pipe.execute())

    def delete(self, key: bytes) -> bool:
        keys, args = self._delete_call([key])
        return bool(self._sync_scripts().delete(keys=keys, args=args))

    def delete_many(self, keys: list[bytes]) -> int:
        if not keys:
            return 0
        if self._cluster:
            pipe = self._client().pipeline(transaction=False)
            for group in self._by_slot(keys):
                self._queue_script(pipe, _DELETE, *self._delete_call(group))
            return sum(pipe.execute())
        client, scripts = self._sync_pair()
        pipe = client.pipeline(transaction=False)
        for key in keys:
            names, args = self._delete_call([key])
            scripts.delete(keys=names, args=args, client=pipe)
        return sum(pipe.execute())

    def clear(self) -> None:
        client = self._client()
        batch: list[bytes] = []
        for key in client.scan_iter(match=_glob_escape(self._prefix) + b"*", count=1000, **self._everywhere()):
            batch.append(key)
            if len(batch) >= 1000:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)

    def _everywhere(self) -> dict[str, Any]:
        """Options that make a keyless command run on every primary of a cluster."""
        return {"target_nodes": self._redis.cluster.RedisCluster.PRIMARIES} if self._cluster else {}

    def close(self) -> None:
        with self._lock:
            clients = list(self._sync_blocking.values())
            self._sync_blocking.clear()
            if self._sync is not None:
                clients.append(self._sync[0])
                if self._cluster:  # (a closed cluster client forgets its nodes: build anew)
                    self._sync = None
            sentinel = self._sentinel
        for client in clients:
            client.close()
        if sentinel is not None:
            for server in sentinel.sentinels:
                server.close()

    # -- the invalidation bus (a stream; see mlcache.invalidation) ----------------------------

    def bus_publish(self, fields: dict[bytes, bytes], maxlen: int) -> bytes:
        """Append a message; the stream keeps about the last ``maxlen``. Returns its id."""
        return self._client().xadd(self._bus, fields, maxlen=maxlen, approximate=True)  # type: ignore[no-any-return]

    def bus_read(self, after: bytes, block: float, count: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Messages after id ``after``, waiting up to ``block`` seconds (one slice at most)."""
        reply = self._blocking("bus").xread({self._bus: after}, count=count, block=max(1, int(min(block, _WAIT_SLICE) * 1000)))
        return reply[0][1] if reply else []

    def bus_has(self, entry: bytes) -> bool:
        """Whether the stream still holds message ``entry`` (else: trimmed, or data lost)."""
        return bool(self._client().xrange(self._bus, entry, entry, count=1))

    def bus_last(self) -> bytes:
        """The id of the latest message (``0-0`` when there is none)."""
        last = self._client().xrevrange(self._bus, count=1)
        return last[0][0] if last else b"0-0"

    def bus_interrupt(self) -> None:
        """End a ``bus_read`` blocked in another thread now (it raises a connection error):
        its connections are closed and the next blocking call opens new ones."""
        with self._lock:
            client = self._sync_blocking.pop("bus", None)
        if client is not None:
            client.close()

    def lease_acquire(self, key: bytes, token: bytes, ttl: float) -> bytes | None:
        """Take the key's lease for ``ttl`` seconds: None if taken, else the holder's token."""
        return self._sync_scripts().acquire(keys=[self._lease(key)], args=[token, _px(ttl)])  # type: ignore[no-any-return]

    def lease_wait(self, key: bytes, holder: bytes, timeout: float) -> bool:
        """Wait (at most ``timeout``, capped at one slice) for ``holder``'s flight to end."""
        return bool(self._blocking().xread({self._done(key, holder): b"0-0"}, count=1, block=_block_ms(timeout)))

    def lease_release(self, key: bytes, token: bytes) -> None:
        self._sync_scripts().release(keys=[self._lease(key), self._done(key, token)], args=[token, _DONE_TTL_MS])

    def lease_renew(self, key: bytes, token: bytes, ttl: float) -> bool:
        return bool(self._sync_scripts().renew(keys=[self._lease(key)], args=[token, _px(ttl)]))

    def set_under_lease(self, key: bytes, data: bytes, ttl: float | None, token: bytes) -> bool:
        """Write ``data`` only if ``token`` still holds the key's lease; release it."""
        keys = [self._data(key), self._lease(key), self._done(key, token)]
        return bool(self._sync_scripts().write_under_lease(keys=keys, args=[data, _px(ttl), token, _DONE_TTL_MS]))

    # -- async ---------------------------------------------------------------------------------

    async def aget(self, key: bytes) -> bytes | None:
        return await self._aclients()[0].get(self._data(key))  # type: ignore[no-any-return]

    async def aget_many(self, keys: list[bytes]) -> list[bytes | None]:
        client = self._aclients()[0]
        if self._cluster:
            return await client.mget_nonatomic([self._data(k) for k in keys]) if keys else []  # type: ignore[no-any-return]
        return await client.mget([self._prefix + k for k in keys])  # type: ignore[no-any-return]

    async def aset(self, key: bytes, data: bytes, ttl: float | None) -> None:
        scripts = self._aclients()[1]
        keys, args = self._write_call([(key, data, ttl)])
        await scripts.write(keys=keys, args=args)

    async def aset_many(self, items: list[tuple[bytes, bytes, float | None]]) -> None:
        client, scripts, _ = self._aclients()
        if self._cluster:
            pipe = client.pipeline(transaction=False)
            for group in self._by_slot(items, key=lambda item: item[0]):
                self._queue_script(pipe, _WRITE, *self._write_call(group))
            await pipe.execute()
            return
        pipe = client.pipeline(transaction=True)
        for item in items:
            keys, args = self._write_call([item])
            await scripts.write(keys=keys, args=args, client=pipe)
        await pipe.execute()

    async def afill(self, key: bytes, data: bytes, ttl: float | None, since: float) -> bool:
        return await self.afill_many([(key, data, ttl)], since) > 0

    async def afill_many(self, items: list[tuple[bytes, bytes, float | None]], since: float) -> int:
        pipe = self._queue_fills(self._aclients()[0].pipeline(transaction=False), items)
        return sum(bool(ok) for ok in await pipe.execute())

    async def adelete(self, key: bytes) -> bool:
        scripts = self._aclients()[1]
        keys, args = self._delete_call([key])
        return bool(await scripts.delete(keys=keys, args=args))

    async def adelete_many(self, keys: list[bytes]) -> int:
        if not keys:
            return 0
        client, scripts, _ = self._aclients()
        if self._cluster:
            pipe = client.pipeline(transaction=False)
            for group in self._by_slot(keys):
                self._queue_script(pipe, _DELETE, *self._delete_call(group))
            return sum(await pipe.execute())
        pipe = client.pipeline(transaction=False)
        for key in keys:
            names, args = self._delete_call([key])
            await scripts.delete(keys=names, args=args, client=pipe)
        return sum(await pipe.execute())

    async def aclear(self) -> None:
        client = self._aclients()[0]
        batch: list[bytes] = []
        async for key in client.scan_iter(match=_glob_escape(self._prefix) + b"*", count=1000, **self._everywhere()):
            batch.append(key)
            if len(batch) >= 1000:
                await client.unlink(*batch)
                batch.clear()
        if batch:
            await client.unlink(*batch)

    async def aclose(self) -> None:
        clients = self._async.pop(asyncio.get_running_loop(), None)
        if clients is not None:
            client, _, blocking, sentinel = clients
            await client.aclose()
            await blocking.aclose()
            if sentinel is not None:
                for server in sentinel.sentinels:
                    await server.aclose()
        self.close()

    async def alease_acquire(self, key: bytes, token: bytes, ttl: float) -> bytes | None:
        scripts = self._aclients()[1]
        return await scripts.acquire(keys=[self._lease(key)], args=[token, _px(ttl)])  # type: ignore[no-any-return]

    async def alease_wait(self, key: bytes, holder: bytes, timeout: float) -> bool:
        blocking = self._aclients()[2]
        return bool(await blocking.xread({self._done(key, holder): b"0-0"}, count=1, block=_block_ms(timeout)))

    async def alease_release(self, key: bytes, token: bytes) -> None:
        scripts = self._aclients()[1]
        await scripts.release(keys=[self._lease(key), self._done(key, token)], args=[token, _DONE_TTL_MS])

    async def aset_under_lease(self, key: bytes, data: bytes, ttl: float | None, token: bytes) -> bool:
        scripts = self._aclients()[1]
        keys = [self._data(key), self._lease(key), self._done(key, token)]
        return bool(await scripts.write_under_lease(keys=keys, args=[data, _px(ttl), token, _DONE_TTL_MS]))

    def _describe(self) -> dict[str, Any]:
        return {"url": mask_url(self.url), "prefix": self.prefix, "ttl": self.ttl}
