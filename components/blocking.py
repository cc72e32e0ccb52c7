"""Blocking work off the event loop, for pages: ``await blocking.io_bound(transact, service, ...)``.

NiceGUI 3's ``run.io_bound`` answers ``None`` when the awaiting task was cancelled (a page whose build outlived
``response_timeout``, a client that went away) or the app is stopping; NiceGUI 4 will raise ``CancelledError``
instead. Here it raises now, so a cancelled builder stops where it is rather than carrying ``None`` on into
``AttributeError`` ("Task exception was never retrieved"), and a service that returns ``None`` stays
distinguishable from a cancelled call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from nicegui import core, run

P = ParamSpec("P")
R = TypeVar("R")


async def io_bound(callback: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``callback(*args, **kwargs)`` in NiceGUI's thread pool; ``CancelledError`` if the caller was cancelled."""
    task = asyncio.current_task()
    result = await run.io_bound(callback, *args, **kwargs)
    if result is None and ((task is not None and task.cancelling()) or core.app.is_stopping):
        raise asyncio.CancelledError
    return result  # type: ignore[return-value]  # None only when the callback itself returned None
