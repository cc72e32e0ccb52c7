"""Run one request many times at the same moment, each in a thread and a database session of its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlmodel import Session

from rupali.db import session_scope

ACCEPTED = "accepted"


def at_once(count: int, request: Callable[[Session, int], object], refusal: type[Exception]) -> list[str]:
    """Call ``request(session, number)`` ``count`` times at once; each outcome is :data:`ACCEPTED` (committed) or the
    text of the ``refusal`` it raised. The commit waits a moment after the request, as after a page's other work, so
    that a check and its record are far apart unless something makes the requests take turns."""
    barrier = threading.Barrier(count)

    def one(number: int) -> str:
        barrier.wait()
        try:
            with session_scope() as session:
                request(session, number)
                time.sleep(0.05)
        except refusal as exc:
            return str(exc)
        return ACCEPTED

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))
