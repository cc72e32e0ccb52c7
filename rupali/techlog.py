"""The technical log: one row per HTTP request and page view, buffered in memory and written in batches.

Requests only append a small dict to a queue (no I/O on the request path); a thread writes what has gathered every
``FLUSH_SECONDS`` in one multi-row INSERT. What a row may hold is decided here, once:

- the route *template* (``/gallery/{image_id}``), never the path as sent and never a query string, which can carry
  tokens or people's words;
- the client address as :mod:`rupali.client_address` resolved it (trusted proxies only), browser, operating system
  and device class parsed from the User-Agent (the raw header is not kept);
- the signed-in person's id, a request id (also sent back as ``X-Request-ID``), and for failures the exception's
  type and its reference (:mod:`rupali.errors`), never its message.

The rows are declared in the personal-data inventory (:class:`~rupali.models.RequestLog`): kept for the technical-log
retention period, exported to their person, deleted on erasure. When the database cannot take a batch the rows are
dropped and counted rather than piling up in memory.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import insert
from user_agents import parse as parse_user_agent

from rupali.clock import now
from rupali.config import Settings
from rupali.db import get_engine
from rupali.models import RequestLog

log = logging.getLogger(__name__)

FLUSH_SECONDS = 2.0
BATCH_ROWS = 1000
MAX_BUFFERED = 50_000  # about 20 MB of dicts: beyond this the database is not keeping up and rows are dropped
UNMATCHED = "(unmatched)"


@dataclass
class RequestErrors:
    """Filled in by :func:`rupali.errors.reference_for` while a request is being served: the failure to record."""

    error_type: str | None = None
    trace_id: str | None = None


current_request: contextvars.ContextVar[RequestErrors | None] = contextvars.ContextVar(
    "rupali_request_errors", default=None)


@dataclass(frozen=True)
class Client:
    """What the technical log keeps of a User-Agent header."""

    browser: str
    os: str
    device: str


@lru_cache(maxsize=2048)
def describe_client(user_agent: str) -> Client:
    """Browser and OS family with major version, and a device class; cached, parsing is the costly part."""
    if not user_agent:
        return Client("", "", "other")
    parsed = parse_user_agent(user_agent[:512])
    browser = " ".join(part for part in (parsed.browser.family, _major(parsed.browser.version_string)) if part)
    system = " ".join(part for part in (parsed.os.family, _major(parsed.os.version_string)) if part)
    if parsed.is_bot:
        device = "bot"
    elif parsed.is_tablet:
        device = "tablet"
    elif parsed.is_mobile:
        device = "mobile"
    elif parsed.is_pc:
        device = "desktop"
    else:
        device = "other"
    return Client(browser[:60], system[:60], device)


@dataclass
class TechnicalLog:
    """The buffer and its writer thread. ``add`` is safe from any thread and never blocks on the database."""

    settings: Settings
    flush_seconds: float = FLUSH_SECONDS
    written: int = 0
    dropped: int = 0
    _buffer: deque[dict[str, Any]] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _state: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def add(self, row: dict[str, Any]) -> None:
        if len(self._buffer) >= MAX_BUFFERED:
            self.dropped += 1
            return
        self._buffer.append(row)  # deque.append is atomic: no lock on the request path

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def flush(self) -> int:
        """Write everything buffered so far; returns the number of rows written."""
        written = 0
        with self._lock:  # one writer at a time (the thread, shutdown, tests)
            while self._buffer:
                batch = []
                while self._buffer and len(batch) < BATCH_ROWS:
                    batch.append(self._buffer.popleft())
                try:
                    with get_engine(self.settings).begin() as connection:
                        connection.execute(insert(RequestLog), batch)
                except Exception as exc:  # the log must never take the app down with it
                    self.dropped += len(batch)
                    log.warning("technical log: %d rows dropped, the database refused them: %s",
                                len(batch), type(exc).__name__)
                    break
                written += len(batch)
        self.written += written
        return written

    def start(self) -> None:
        with self._state:  # start and stop may race at shutdown: a stopped log never starts its thread again
            if self._thread is None and not self._stop.is_set():
                thread = threading.Thread(target=self._run, name="technical-log", daemon=True)
                thread.start()
                self._thread = thread

    def stop(self) -> None:
        """Stop the thread and write what is left."""
        with self._state:
            self._stop.set()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()


_current: TechnicalLog | None = None


def install(technical_log: TechnicalLog | None) -> None:
    """Make ``technical_log`` the one requests and errors are recorded to (None: record nothing)."""
    global _current
    _current = technical_log


def current() -> TechnicalLog | None:
    return _current


def record_error(error_type: str, trace_id: str, where: str) -> None:
    """Note a failure: on the request being served, or as an ``error`` row of its own outside any request."""
    request = current_request.get()
    if request is not None:
        if request.trace_id is None:
            request.error_type, request.trace_id = error_type[:120], trace_id[:16]
        return
    if _current is not None:
        _current.add({"at": now(), "kind": "error", "method": "", "route": (where or "(background)")[:200],
                      "status": 0, "duration_ms": 0.0, "bytes": 0, "ip": "", "browser": "", "os": "",
                      "device": "", "user_id": None, "request_id": "", "error_type": error_type[:120],
                      "trace_id": trace_id[:16]})


def _major(version: str) -> str:
    return version.split(".", 1)[0] if version else ""
