"""Settings: named caches built from a dict, a TOML file, or ``MLCACHE_*`` environment variables.

Shape (TOML; a dict has the same shape)::

    [caches.default]                 # any name; "default" is what get_cache() returns
    ttl = 300                        # and null_ttl, stale_ttl, stale_if_error, beta,
    secret = "..."                   # lock_timeout, on_lock_timeout, lease_ttl
    tiers = [
        "memory://?maxsize=10000&policy=lfu",          # L1
        "file:///var/cache/app?ttl=3600",              # L2 (also disk://)
        "redis://:password@host:6379/0?prefix=app:",   # L3 (also rediss://, unix://)
    ]
    # L3 on Sentinel: "redis+sentinel://:password@s1:26379,s2:26379/service[/db]?prefix=app:"
    # L3 on Cluster:  "redis+cluster://:password@node1:6379,node2:6379?prefix=app:"
    # or a tier as a table: { type = "redis", url = "redis://host", prefix = "app:" }

A file's settings may also sit under ``[tool.mlcache]`` in a ``pyproject.toml``, and a top-level
table without ``caches`` is taken as the default cache's. With no settings at all (or
``configure()`` with no argument), ``MLCACHE_CONFIG`` names a settings file; failing that,
``MLCACHE_TIERS`` (tier URLs separated by commas; those between one URL's hosts stay in it),
``MLCACHE_TTL`` and the other ``MLCACHE_<SETTING>`` variables set the default cache; and
failing those, it is L1 + L2 in the per-user cache directory (a subdirectory per cache name;
applications of one user that keep these defaults share it): it works on a laptop with nothing
installed, and Redis joins by configuration alone.

Every setting is checked when ``configure`` runs: an unknown name or a bad value raises
``ConfigurationError`` naming the setting, the value and what is allowed. Secrets (``secret``,
Redis passwords) never appear in errors, logs or ``describe()``.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .errors import ConfigurationError

__all__ = ["configure", "describe", "get_cache"]

_TTL = "ttl"  # a number of seconds > 0, or none
_SECRET = "secret"
_REMOTE: dict[str, Any] = {
    "codec": str, "secret": _SECRET, "compress_threshold": int, "max_value_size": int,
    "on_error": str, "unsafe_pickle": bool, "retries": int,
}  # fmt: skip
_TIER_FIELDS: dict[str, dict[str, Any]] = {
    "memory": {"maxsize": int, "policy": str, "ttl": _TTL},
    "disk": {"directory": str, "ttl": _TTL, "size_limit": int, "timeout": float, **_REMOTE},
    "redis": {"url": _SECRET, "prefix": str, "ttl": _TTL, "socket_timeout": float,
              "connect_timeout": float, "max_connections": int, **_REMOTE},
}  # fmt: skip
_CACHE_FIELDS: dict[str, Any] = {
    "tiers": list, "ttl": _TTL, "null_ttl": float, "stale_ttl": float, "stale_if_error": float,
    "beta": float, "lock_timeout": float, "on_lock_timeout": str, "lease_ttl": float,
    "max_loads": int, "on_bulkhead": str, "secret": _SECRET,
}  # fmt: skip
_SCHEMES = {"memory": "memory", "file": "disk", "disk": "disk", "redis": "redis", "rediss": "redis",
            "unix": "redis", "redis+sentinel": "redis", "redis+cluster": "redis"}  # fmt: skip

_lock = threading.Lock()
_settings: dict[str, dict[str, Any]] | None = None  # validated, by cache name
_caches: dict[str, Any] = {}  # built from _settings
_users: weakref.WeakSet[Any] = weakref.WeakSet()  # decorated functions bound to one of them


def configure(settings: Mapping[str, Any] | str | os.PathLike[str] | None = None) -> None:
    """Set up the named caches (see the module docstring) and close the ones built before.

    ``settings``: a dict, the path of a TOML file (``pyproject.toml``: its ``[tool.mlcache]``),
    or None for ``MLCACHE_*`` environment variables and the defaults. The caches are built
    now, so that every bad setting fails here (Redis is not contacted until first use).
    """
    global _settings
    validated = _validate(_load(settings))
    built: dict[str, Any] = {}
    try:
        for name, spec in validated.items():
            built[name] = _build(name, spec)
    except BaseException:
        for cache in built.values():
            cache.close()
        raise
    with _lock:
        old = list(_caches.values())
        _caches.clear()
        _caches.update(built)
        _settings = validated
        users = list(_users)
        _users.clear()
    for user in users:
        user.unbind()
    for cache in old:
        cache.close()


def track(user: Any) -> None:
    """Call ``user.unbind()`` when ``configure()`` replaces the caches (a decorated function
    that looked one up by name must not keep using the old one)."""
    with _lock:
        _users.add(user)


def get_cache(name: str | None = None) -> Any:
    """The cache called ``name`` (default: ``"default"``); ``configure()`` runs with no argument
    first if it has not run yet."""
    name = "default" if name is None else name
    if _settings is None:
        configure()
    with _lock:
        cache = _caches.get(name)
    if cache is None:
        known = ", ".join(repr(n) for n in sorted(_caches))
        raise ConfigurationError(f"no cache named {name!r} is configured (configured: {known})")
    return cache


def describe() -> dict[str, Any]:
    """The effective settings, secrets masked (what ``python -m mlcache info`` prints)."""
    if _settings is None:
        configure()
    assert _settings is not None
    return {name: _masked(spec) for name, spec in _settings.items()}


# -- loading ---------------------------------------------------------------------------------


def _load(settings: Mapping[str, Any] | str | os.PathLike[str] | None) -> Mapping[str, Any]:
    if settings is None:
        path = os.environ.get("MLCACHE_CONFIG")
        return _read_toml(Path(path)) if path else _from_environment()
    if isinstance(settings, (str, os.PathLike)):
        return _read_toml(Path(settings))
    if isinstance(settings, Mapping):
        return settings
    raise ConfigurationError(
        f"configure() takes a dict, a path to a TOML file or None, got {type(settings).__name__}"
    )


def _read_toml(path: Path) -> Mapping[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read settings file {str(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"settings file {str(path)!r} is not valid TOML: {exc}") from None
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("mlcache")
        if data is None:
            raise ConfigurationError(f"{str(path)!r} has no [tool.mlcache] table")
    return data


def _from_environment() -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for name in _CACHE_FIELDS:
        raw = os.environ.get(f"MLCACHE_{name.upper()}")
        if raw is None:
            continue
        spec[name] = _split_tiers(raw) if name == "tiers" else raw
    spec.setdefault("tiers", _default_tiers("default"))
    return {"caches": {"default": spec}}


def _split_tiers(raw: str) -> list[str]:
    """Tier URLs separated by commas; a part without ``://`` continues the URL before it (the
    host list of ``redis+sentinel://s1:26379,s2:26379/...`` or ``redis+cluster://n1,n2``)."""
    urls: list[str] = []
    for part in raw.split(","):
        if urls and "://" not in part:
            urls[-1] += "," + part
        else:
            urls.append(part)
    return [url.strip() for url in urls if url.strip()]


def _default_tiers(name: str) -> list[Any]:
    """L1 + L2 in a directory of the cache's own (named caches never share entries, and one's
    ``clear()`` leaves the others alone)."""
    from .tiers.disk import default_directory

    directory = default_directory() / _safe_name(name)
    return ["memory://?maxsize=10000", {"type": "disk", "directory": str(directory)}]


def _safe_name(name: str) -> str:
    """``name`` as one path component (other characters escaped, reversibly)."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else f"%{ord(c):02X}" for c in name) or "%"


# -- validation --------------------------------------------------------------------------------


def _validate(raw: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"settings must be a table, got {type(raw).__name__}")
    if "caches" in raw:
        extra = set(raw) - {"caches"}
        if extra:
            raise ConfigurationError(
                f"unknown setting {sorted(extra)[0]!r}: with 'caches', put each cache's settings "
                "under caches.<name>"
            )
        caches = raw["caches"]
        if not isinstance(caches, Mapping) or not caches:
            raise ConfigurationError("caches must be a table of named caches, e.g. caches.default")
    else:
        caches = {"default": raw}
    return {str(name): _cache_spec(str(name), spec) for name, spec in caches.items()}


def _cache_spec(name: str, raw: Any) -> dict[str, Any]:
    path = f"caches.{name}"
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{path} must be a table, got {type(raw).__name__}")
    spec = _fields(path, raw, _CACHE_FIELDS)
    tiers = spec.get("tiers", _default_tiers(name))
    if not isinstance(tiers, list) or not tiers:
        raise ConfigurationError(f"{path}.tiers must be a non-empty list of tier URLs or tables")
    spec["tiers"] = [_tier_spec(f"{path}.tiers[{i}]", t) for i, t in enumerate(tiers)]
    kinds = [t["type"] for t in spec["tiers"]]
    if "memory" in kinds[1:]:
        raise ConfigurationError(f"{path}.tiers: a memory tier must come first (L1)")
    return spec


def _tier_spec(path: str, raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        raw = _parse_url(path, raw)
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{path} must be a tier URL or a table, got {type(raw).__name__}")
    kind = raw.get("type")
    if kind not in _TIER_FIELDS:
        allowed = ", ".join(repr(k) for k in _TIER_FIELDS)
        raise ConfigurationError(f"{path}.type must be one of {allowed}, got {kind!r}")
    return {"type": kind, **_fields(path, {k: v for k, v in raw.items() if k != "type"}, _TIER_FIELDS[kind])}


def _parse_url(path: str, url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    kind = _SCHEMES.get(parts.scheme)
    if kind is None:
        allowed = ", ".join(f"{s}://" for s in _SCHEMES)
        raise ConfigurationError(f"{path}: unknown tier URL scheme in {_mask(url)!r}; allowed: {allowed}")
    options: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
    if kind == "disk":
        directory = unquote((parts.netloc + parts.path) if parts.scheme == "disk" else parts.path)
        if directory:
            options["directory"] = directory
    elif kind == "redis":
        # redis-py reads the URL itself; our options come out of its query string
        options["url"] = parts._replace(query="").geturl()
    elif parts.netloc or parts.path not in ("", "/"):
        raise ConfigurationError(f"{path}: memory:// takes only ?options, got {url!r}")
    return {"type": kind, **options}


def _fields(path: str, raw: Mapping[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in raw.items():
        kind = fields.get(name)
        if kind is None:
            allowed = ", ".join(sorted(fields))
            raise ConfigurationError(f"unknown setting {path}.{name}; allowed: {allowed}")
        out[name] = _coerce(f"{path}.{name}", value, kind)
    return out


def _coerce(path: str, value: Any, kind: Any) -> Any:
    """``value`` as ``kind``; strings (from URLs and the environment) are converted."""
    shown = "***" if kind is _SECRET else repr(value)
    if kind is _SECRET:
        if isinstance(value, str) and value:
            return value
        raise ConfigurationError(f"{path} must be a non-empty string, got {shown}")
    if kind is list:
        return value
    if kind is _TTL:
        if isinstance(value, str) and value.strip().lower() in ("none", ""):
            return None
        return _coerce(path, value, float)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
            return value.lower() in ("1", "true", "yes")
        raise ConfigurationError(f"{path} must be true or false, got {shown}")
    if kind is str:
        if isinstance(value, str):
            return value
        raise ConfigurationError(f"{path} must be a string, got {shown}")
    if isinstance(value, str):
        try:
            value = kind(value)
        except ValueError:
            raise ConfigurationError(f"{path} must be a{'n integer' if kind is int else ' number'}, "
                                     f"got {shown}") from None  # fmt: skip
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise ConfigurationError(f"{path} must be a{'n integer' if kind is int else ' number'}, got {shown}")
    return value


# -- building ------------------------------------------------------------------------------------


def _build(name: str, spec: dict[str, Any]) -> Any:
    from .cache import Cache

    tiers: list[Any] = []
    try:
        for i, tier in enumerate(spec["tiers"]):
            tiers.append(_build_tier(f"caches.{name}.tiers[{i}]", tier))
        options = {k: v for k, v in spec.items() if k != "tiers"}
        try:
            return Cache(*tiers, **options)
        except ConfigurationError as exc:
            raise ConfigurationError(f"caches.{name}: {exc}") from None
    except BaseException:
        for tier in tiers:  # (the tiers built before the failure hold files and sockets)
            getattr(tier, "close", lambda: None)()
        raise


def _build_tier(path: str, spec: dict[str, Any]) -> Any:
    from ._impl import MemoryTier
    from .tiers.disk import DiskTier
    from .tiers.redis import RedisTier

    makers: dict[str, Callable[..., Any]] = {"memory": MemoryTier, "disk": DiskTier, "redis": RedisTier}
    options = {k: v for k, v in spec.items() if k != "type"}
    try:
        return makers[spec["type"]](**options)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path} ({spec['type']}): {exc}") from None


def _mask(url: str) -> str:
    from .tiers.redis import mask_url

    return mask_url(url)


def _masked(spec: Any) -> Any:
    if isinstance(spec, dict):
        out = {}
        for key, value in spec.items():
            if key == "secret":
                out[key] = "***"
            elif key == "url":
                out[key] = _mask(value)
            else:
                out[key] = _masked(value)
        return out
    if isinstance(spec, list):
        return [_masked(v) for v in spec]
    return spec
