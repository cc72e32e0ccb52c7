"""What happens to generation jobs, told to every instance through PostgreSQL ``LISTEN``/``NOTIFY``.

The shared queue (:mod:`rupali.shared_queue`) keeps each instance's view of the cluster's jobs from a snapshot it
reads every second; these events make the view immediate: a job queued on one instance wakes the dispatchers of all,
a cancel stops the job on whichever instance runs it, progress and the end reach a page open anywhere.

``NOTIFY`` is transactional: an event sent in a transaction is delivered when it commits and never if it rolls back,
so no instance hears of a job that was not recorded. On SQLite (one process, no shared queue) nothing is sent.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlmodel import Session

log = logging.getLogger(__name__)
CHANNEL = "rupali_jobs"
# The kinds of event: a job was queued (or queued again), started, reported progress, was cancelled, or ended.
QUEUED, STARTED, PROGRESS, CANCELLED, ENDED = "queued", "started", "progress", "cancelled", "ended"
_KINDS = frozenset({QUEUED, STARTED, PROGRESS, CANCELLED, ENDED})


@dataclass(frozen=True)
class JobEvent:
    kind: str
    generation_id: uuid.UUID
    progress: float | None = None


def notify(session: Session, kind: str, generation_id: uuid.UUID, progress: float | None = None) -> None:
    """Tell every instance, when ``session``'s transaction commits (PostgreSQL only)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    payload: dict[str, object] = {"e": kind, "id": generation_id.hex}
    if progress is not None:
        payload["p"] = round(progress, 3)
    session.execute(select(func.pg_notify(CHANNEL, json.dumps(payload))))


def parse(payload: str) -> JobEvent | None:
    """An event from its payload; None for anything malformed (the channel is ours, but a bad payload must not
    stop the listener)."""
    try:
        data = json.loads(payload)
        kind, generation_id = data["e"], uuid.UUID(hex=data["id"])
        progress = data.get("p")
        if kind not in _KINDS or (progress is not None and not isinstance(progress, int | float)):
            return None
        return JobEvent(kind, generation_id, None if progress is None else min(1.0, max(0.0, float(progress))))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class JobEventListener:
    """One connection per instance that ``LISTEN``s on the channel, on a thread of its own.

    ``deliver`` is called on that thread for every event; ``reconnected`` after every (re)connection, when events
    may have been missed (the snapshot catches up). A lost connection is retried every second.
    """

    def __init__(self, database_url: str, deliver: Callable[[JobEvent], None],
                 reconnected: Callable[[], None]) -> None:
        url = make_url(database_url)
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._deliver = deliver
        self._reconnected = reconnected
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="job-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        failing = False  # told once per outage, not every second (a pooler without LISTEN would fail forever)
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True, connect_timeout=5) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    if failing:
                        log.warning("job events: listening again")
                        failing = False
                    self._reconnected()
                    while not self._stop.is_set():
                        for notice in connection.notifies(timeout=1.0):
                            if (event := parse(notice.payload)) is not None:
                                self._deliver(event)
            except Exception as exc:
                self.connected.clear()
                if not failing:
                    failing = True
                    log.warning("job events: cannot listen (%s: %s); the queue goes by its snapshot every second "
                                "until it can", type(exc).__name__, str(exc)[:200])
                self._stop.wait(1.0)
        self.connected.clear()
