"""One algorithm, two faces: the sync and async drivers of the Cache's sans-IO core.

The read and write paths are generators that ``yield`` an op whenever they need I/O (a tier
operation or a loader call) and receive its result (or its exception, thrown in). ``run``
performs each op by calling its sync function; ``arun`` awaits its async twin. Nothing else
differs between ``cache.get`` and ``await cache.aget``. (``run`` has a compiled twin, which
``mlcache._impl`` picks when it is built.)
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Generator
from typing import Any, ContextManager, TypeVar

__all__ = ["Op", "Steps", "arun", "load_op", "op", "run"]

T = TypeVar("T")


#: One I/O step: ``(sync, async_, args)``; the sync face calls ``sync(*args)``, the async face
#: awaits ``async_(*args)``. A plain tuple: the paths create one per tier operation.
Op = tuple[Callable[..., Any], Callable[..., Awaitable[Any]], tuple[Any, ...]]

Steps = Generator[Op, Any, T]


def op(sync: Callable[..., Any], async_: Callable[..., Awaitable[Any]], *args: Any) -> Op:
    """The step that calls ``sync(*args)`` or awaits ``async_(*args)``."""
    return (sync, async_, args)


def run(steps: Steps[T]) -> T:
    """Drive ``steps`` to completion with blocking I/O. Every exception of a step (even an
    interruption) is thrown into the steps, which may clean up (end a flight, release a lease)
    before it propagates."""
    try:
        step = next(steps)
        while True:
            try:
                result = step[0](*step[2])
            except BaseException as exc:
                step = steps.throw(exc)
            else:
                step = steps.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def arun(steps: Steps[T]) -> T:
    """Drive ``steps`` to completion on the running event loop (a cancellation is thrown into
    the steps like any other exception)."""
    try:
        step = next(steps)
        while True:
            try:
                result = await step[1](*step[2])
            except BaseException as exc:
                step = steps.throw(exc)
            else:
                step = steps.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def _call_sync(loader: Callable[[], Any], context: Callable[[], ContextManager[Any]]) -> Any:
    with context():
        result = loader()
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()  # no "never awaited" warning for the caller's mistake
        raise TypeError(
            "the loader returned an awaitable: use aget_or_load() (or a sync loader)"
        )
    return result


async def _call_async(loader: Callable[[], Any], context: Callable[[], ContextManager[Any]]) -> Any:
    with context():
        result = loader()
        if inspect.isawaitable(result):
            result = await result
    return result


def load_op(loader: Callable[[], Any], context: Callable[[], ContextManager[Any]]) -> Op:
    """The op that calls ``loader()`` inside ``context()``; the async face also awaits what it
    returns."""
    return (_call_sync, _call_async, (loader, context))
