"""Calling user code, sync or async, from the event loop without letting it block the loop.

Sync functions run in a *daemon* thread of their own rather than the loop's default
executor: a step that overruns its deadline is abandoned, and an abandoned executor
thread would make ``asyncio.run`` (and interpreter exit) wait for it forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import Callable
from typing import Any


def describe(fn: Callable[..., Any]) -> str:
    """The name logs use for a user function: its qualified name when it has one."""
    return getattr(fn, "__qualname__", None) or repr(fn)


def in_thread(fn: Callable[..., Any], *args: Any, name: str) -> asyncio.Future[Any]:
    """Start ``fn(*args)`` in a daemon thread; the future resolves on the running loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def target() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the loop, re-raised there
            error: BaseException | None = exc
            result = None
        else:
            error = None
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed between the check and the call
                loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future


async def call(fn: Callable[..., Any], *args: Any, name: str) -> Any:
    """Await ``fn(*args)``: a coroutine function on the loop, anything else in a thread.

    A sync function that returns an awaitable (e.g. a lambda around a coroutine) has
    that awaitable awaited on the loop.
    """
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    result = await in_thread(fn, *args, name=name)
    if inspect.isawaitable(result):
        return await result
    return result
