"""The cache decorator: ``@cache.cached(...)`` and ``@mlcache.cached(...)``.

A decorated function answers an L1 hit on its *hit path* (compiled: ``mlcache._speedups.
HitPath``; pure twin: ``HitPath`` below) without building its key string: when every parameter
is an ordinary positional one and a call passes them all as exact ints or strs, L1 holds the
entry under ``(namespace, arguments)`` (the Cache maps the string key to that L1 key on every
write and invalidation; see ``Cache._l1_key``). Everything else (other arguments, misses,
lower tiers, single-flight, early refresh) goes through ``Decorated.miss``, i.e.
``cache.get_or_load`` with the key string from ``mlcache.keys``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .entry import MISSING, NULL
from .keys import KeyBuilder

if TYPE_CHECKING:
    from .cache import Cache

__all__ = ["BoundHitPath", "Decorated", "HitPath", "bound_attribute", "cached", "decorate"]

_XFETCH_HORIZON = 30.0  # hits this many (beta-scaled) load times from expiry take the full path


class Decorated:
    """Everything about one decorated function except its hit path: its keys, its cache
    (resolved on the first call when given by name, so ``configure()`` may come after import),
    the miss path, and the ``invalidate``/``refresh`` helpers."""

    def __init__(
        self,
        func: Callable[..., Any],
        cache: Cache | str | None,
        *,
        ttl: float | None,
        null_ttl: float | None,
        stale_ttl: float | None,
        stale_if_error: float | None,
        key: Callable[..., Any] | None,
        typed: bool,
        namespace: str | None,
        version: Any,
    ) -> None:
        self.func = func
        self.keys = KeyBuilder(func, namespace=namespace, version=version, typed=typed, key=key)
        self.options = {"ttl": ttl, "null_ttl": null_ttl, "stale_ttl": stale_ttl,
                        "stale_if_error": stale_if_error}  # fmt: skip
        self._cache_ref = cache
        self._cache: Cache | None = None
        self.hit_paths: list[Any] = []  # told the L1 tier once the cache is known

    @property
    def cache(self) -> Cache:
        if self._cache is None:
            from .settings import get_cache, track

            cache = self._cache_ref
            if cache is not None and not isinstance(cache, str):
                resolved = cache
            else:
                resolved = get_cache(cache)
                track(self)  # configure() again: unbind, so the next call finds the new cache
            tier, horizon = None, 0.0
            if self.keys.plain_arity and hasattr(resolved._memory, "get_call"):
                tier = resolved._memory
                horizon = resolved.beta * _XFETCH_HORIZON
                resolved._register_plain(self.keys.namespace, self.keys.plain_arity)
            for hit in self.hit_paths:
                hit._bind(tier, self.keys.namespace, self.keys.plain_arity, horizon)
            self._cache = resolved
        return self._cache

    def unbind(self) -> None:
        """Forget the cache (and the hit paths' L1): the next call resolves it again."""
        self._cache = None
        for hit in self.hit_paths:
            hit._bind(None, "", 0, 0.0)

    def _call_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Callable[[], Any]]:
        key = self.keys(args, kwargs)  # (first: a bad argument raises before anything else)
        return key, functools.partial(self.func, *args, **kwargs)

    def miss(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        cache = self.cache
        key, loader = self._call_args(args, kwargs)
        return cache.get_or_load(key, loader, **self.options)

    async def amiss(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        cache = self.cache
        key, loader = self._call_args(args, kwargs)
        return await cache.aget_or_load(key, loader, **self.options)

    def key(self, *args: Any, **kwargs: Any) -> str:
        """The cache key of the call ``f(*args, **kwargs)``."""
        return self.keys(args, kwargs)

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Drop the entry of the call ``f(*args, **kwargs)`` from every tier; True if one was
        there."""
        return self.cache.delete(self.keys(args, kwargs))

    async def ainvalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Async ``invalidate``."""
        return await self.cache.adelete(self.keys(args, kwargs))

    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function now and write its result through every tier; return it."""
        if inspect.iscoroutinefunction(self.func):
            raise TypeError(f"{self.keys.namespace} is async: use arefresh()")
        key, loader = self._call_args(args, kwargs)
        value = loader()
        self.cache.set(key, value, self._ttl_for(value))
        return value

    async def arefresh(self, *args: Any, **kwargs: Any) -> Any:
        """Async ``refresh`` (the function may be sync or async)."""
        key, loader = self._call_args(args, kwargs)
        value = loader()
        if inspect.isawaitable(value):
            value = await value
        await self.cache.aset(key, value, self._ttl_for(value))
        return value

    def _ttl_for(self, value: Any) -> float | None:
        cache = self.cache
        if value is None:
            return self.options["null_ttl"] or cache.null_ttl
        return self.options["ttl"] or cache.ttl


class HitPath:
    """The callable a sync decorated function becomes (pure twin of the compiled one): L1 hits
    by plain arguments without a key string, everything else via ``Decorated.miss``."""

    def __init__(self, decorated: Decorated) -> None:
        self._decorated = decorated
        self._miss = decorated.miss
        self._tier: Any = None
        self._ns = ""
        self._arity = 0
        self._horizon = 0.0
        decorated.hit_paths.append(self)

    def _bind(self, tier: Any, ns: str, arity: int, horizon: float) -> None:
        self._tier, self._ns, self._arity, self._horizon = tier, ns, arity, horizon

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        tier = self._tier
        if tier is not None and not kwargs:
            if self._arity == 1 and len(args) == 1:  # the common case, inline
                arg = args[0]
                if type(arg) is int or type(arg) is str:
                    value = tier.get_call(self._ns, arg, MISSING, self._horizon)
                    if value is not MISSING:
                        return None if value is NULL else value
            else:
                value = _plain_hit(tier, self._ns, self._arity, self._horizon, args)
                if value is not MISSING:
                    return value
        return self._miss(args, kwargs)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return BoundHitPath(self, instance)

    @property
    def cache(self) -> Cache:
        return self._decorated.cache


class BoundHitPath:
    """A decorated method bound to an instance (``self`` is not part of the key)."""

    def __init__(self, hit: HitPath, instance: Any) -> None:
        self._hit, self._instance = hit, instance

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        hit = self._hit
        if not kwargs and hit._tier is not None:
            value = _plain_hit(hit._tier, hit._ns, hit._arity, hit._horizon, args)
            if value is not MISSING:
                return value
        return hit._miss((self._instance, *args), kwargs)

    def __getattr__(self, name: str) -> Any:
        return bound_attribute(self._hit, self._instance, name)


def bound_attribute(hit: Any, instance: Any, name: str) -> Any:
    """An attribute of a decorated method, through an instance: the per-call helpers take the
    instance as their first argument (``obj.method.invalidate(5)``), the rest are the
    function's."""
    attribute = getattr(hit, name)
    return functools.partial(attribute, instance) if name in _CALL_HELPERS else attribute


_CALL_HELPERS = frozenset({"invalidate", "ainvalidate", "refresh", "arefresh", "key"})


def _plain_hit(tier: Any, ns: str, arity: int, horizon: float, args: tuple[Any, ...]) -> Any:
    """L1's value for a call whose arguments are all exact ints and strs, else MISSING."""
    if len(args) != arity:
        return MISSING
    if arity == 1:
        arg = args[0]
        if type(arg) is not int and type(arg) is not str:
            return MISSING
    else:
        for a in args:
            if type(a) is not int and type(a) is not str:
                return MISSING
        arg = args
    value = tier.get_call(ns, arg, MISSING, horizon)
    return None if value is NULL else value


def decorate(
    func: Callable[..., Any], cache: Cache | str | None, hit_path: type, **options: Any
) -> Any:
    """``func`` cached in ``cache`` (a Cache, or a configured cache's name, None: the default),
    with ``hit_path`` (compiled or pure) for sync functions. Handles classmethod/staticmethod
    objects and async functions."""
    if isinstance(func, (classmethod, staticmethod)):
        return type(func)(decorate(func.__func__, cache, hit_path, **options))
    if not callable(func):
        raise TypeError(f"cached() decorates functions, got {type(func).__name__}")
    decorated = Decorated(func, cache, **options)
    if inspect.iscoroutinefunction(func):
        wrapper: Any = _async_wrapper(func, decorated)
    else:
        wrapper = hit_path(decorated)
        functools.update_wrapper(wrapper, func)
    wrapper.uncached = func
    for name in _CALL_HELPERS:
        setattr(wrapper, name, getattr(decorated, name))
    return wrapper


def _async_wrapper(func: Callable[..., Any], decorated: Decorated) -> Any:
    hit = HitPath(decorated)  # keeps the L1 binding; never called itself

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not kwargs and hit._tier is not None:
            plain = args[1:] if decorated.keys.skip_self else args
            value = _plain_hit(hit._tier, hit._ns, hit._arity, hit._horizon, plain)
            if value is not MISSING:
                return value
        return await decorated.amiss(args, kwargs)

    # A function cannot have a property: ``cache`` is the Cache itself when it was given as
    # one, else a stand-in that looks the configured cache up when first used.
    ref = decorated._cache_ref
    wrapper.cache = ref if ref is not None and not isinstance(ref, str) else _LazyCache(decorated)  # type: ignore[attr-defined]
    return wrapper


class _LazyCache:
    """``cache`` of an async function decorated with a cache name: that Cache, looked up when
    first used (so ``configure()`` may run after the decorator)."""

    def __init__(self, decorated: Decorated) -> None:
        self._decorated = decorated

    def __getattr__(self, name: str) -> Any:
        return getattr(self._decorated.cache, name)


def cached(
    cache: Cache | str | None = None,
    *,
    ttl: float | None = None,
    null_ttl: float | None = None,
    stale_ttl: float | None = None,
    stale_if_error: float | None = None,
    key: Callable[..., Any] | None = None,
    typed: bool = False,
    namespace: str | None = None,
    version: Any = None,
) -> Callable[[Callable[..., Any]], Any]:
    """Cache a function's results in ``cache`` (a Cache; a configured cache's name; None: the
    default cache, see ``mlcache.configure``), keyed by its arguments (see ``mlcache.keys``).

    ``ttl``/``null_ttl``/``stale_ttl``/``stale_if_error`` override the cache's; ``key``
    computes a call's key from its arguments instead; ``typed`` keys subclasses apart;
    ``namespace`` replaces the module-and-name part of keys and ``version`` is appended to it
    (bump it to drop every entry of the function at once). Works on functions, ``async def``
    functions, methods (``self`` is not part of the key), classmethods and staticmethods.

    The result has ``invalidate(*args, **kwargs)``, ``refresh(*args, **kwargs)`` (and their
    async twins ``ainvalidate``/``arefresh``), ``key(*args, **kwargs)``, ``uncached`` (the
    original function) and ``cache``.
    """
    from ._impl import HitPath as hit_path

    options = {"ttl": ttl, "null_ttl": null_ttl, "stale_ttl": stale_ttl,
               "stale_if_error": stale_if_error, "key": key, "typed": typed,
               "namespace": namespace, "version": version}  # fmt: skip
    if callable(cache) and not hasattr(cache, "get_or_load") and not isinstance(cache, str):
        return decorate(cache, None, hit_path, **options)  # bare @cached

    def decorator(func: Callable[..., Any]) -> Any:
        return decorate(func, cache, hit_path, **options)

    return decorator
