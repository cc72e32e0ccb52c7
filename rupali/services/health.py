"""The health report served at ``/healthz`` for Railway's health check and monitoring.

Healthy (HTTP 200) means what it always meant: the database answers and the scheduler runs. Railway restarts an
unhealthy app, and a restart cures neither a long queue nor an image service that is down, so those are reported
beside it without deciding it: the queue's depth, and whether each enabled image provider answers. An unreachable
provider makes the status ``degraded``, still with HTTP 200.

Asking a provider goes over the network, so the answers are cached: each provider is asked at most once per
:data:`PROVIDER_CHECK_INTERVAL`, and a check gives up after :data:`PROVIDER_CHECK_TIMEOUT`. Requests arriving while
a check runs wait for it at most that long. ``/healthz`` is public, so the body says only whether a provider answered
and when it was asked; what went wrong (hosts, error text) goes to the log, and ``rupali doctor`` shows it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rupali import __version__, runtime
from rupali.clock import now
from rupali.config import Settings
from rupali.db import database_reachable
from rupali.generation_queue import GenerationQueue
from rupali.providers import ImageProviders

log = logging.getLogger(__name__)

PROVIDER_CHECK_INTERVAL = timedelta(seconds=60)  # how old a provider's verdict may be before it is asked again
PROVIDER_CHECK_TIMEOUT = 3.0  # seconds one round of provider checks may take; /healthz never waits longer


@dataclass(frozen=True)
class ProviderStatus:
    reachable: bool
    detail: str  # for the log and the operator, never for the public body
    checked_at: datetime


class ProviderChecks:
    """Provider reachability, asked at most once per ``interval``; concurrent callers share one check."""

    def __init__(self, interval: timedelta = PROVIDER_CHECK_INTERVAL, timeout: float = PROVIDER_CHECK_TIMEOUT) -> None:
        self.interval = interval
        self.timeout = timeout
        self._lock = threading.Lock()
        self._providers: ImageProviders | None = None  # whose verdicts these are (a new runtime starts afresh)
        self._statuses: dict[str, ProviderStatus] = {}
        self._checked_at: datetime | None = None

    def statuses(self, providers: ImageProviders) -> dict[str, ProviderStatus]:
        """The verdicts for ``providers``, asking again first when they are stale.

        Call it from a worker thread, as ``/healthz`` does: the check runs an event loop of its own."""
        if self._stale(providers) and self._lock.acquire(timeout=self.timeout + 1):
            try:
                if self._stale(providers):  # another request may have checked while this one waited
                    self._check(providers)
            finally:
                self._lock.release()
        # Waited in vain for a check of other providers: say nothing rather than show another runtime's verdicts.
        return dict(self._statuses) if self._providers is providers else {}

    def _stale(self, providers: ImageProviders) -> bool:
        checked = self._checked_at
        return self._providers is not providers or checked is None or not checked <= now() < checked + self.interval

    def _check(self, providers: ImageProviders) -> None:
        results = providers.reachability_now(self.timeout)
        checked_at = now()
        before = self._statuses if self._providers is providers else {}
        for name, (reachable, detail) in results.items():
            previous = before.get(name)
            if not reachable and (previous is None or previous.reachable):
                log.warning("image provider %s is not reachable: %s", name, detail)
            elif reachable and previous is not None and not previous.reachable:
                log.info("image provider %s is reachable again: %s", name, detail)
        self._statuses = {name: ProviderStatus(reachable, detail, checked_at)
                          for name, (reachable, detail) in results.items()}
        self._providers, self._checked_at = providers, checked_at


_provider_checks = ProviderChecks()


def queue_depth(queue: GenerationQueue, settings: Settings) -> dict[str, int] | None:
    """Jobs waiting and running in ``queue``, and how many may run at once."""
    for _ in range(3):
        try:
            return {"waiting": queue.waiting_count, "running": queue.running_count,
                    "concurrency": settings.generation_concurrency}
        except RuntimeError:  # the event loop added someone's queue while this thread counted: count again
            continue
    return None


def report(settings: Settings, *, scheduler_running: bool, scheduler_leading: bool = False
           ) -> tuple[bool, dict[str, Any]]:
    """Return ``(healthy, body)``; healthy means the database answers and the scheduler runs.

    ``scheduler_leading`` says whether this instance is the one running the scheduled jobs (one per database).

    Blocking (database, provider checks): ``/healthz`` calls it in a worker thread."""
    database = database_reachable(settings)
    healthy = database and scheduler_running
    try:
        services: runtime.Runtime | None = runtime.current()
    except RuntimeError:  # no web app in this process (a script, a test): nothing queued, no providers to ask
        services = None
    queue = queue_depth(services.queue, settings) if services is not None else None
    providers = _provider_checks.statuses(services.providers) if services is not None else {}
    degraded = any(not status.reachable for status in providers.values())
    return healthy, {
        "status": "unhealthy" if not healthy else "degraded" if degraded else "ok",
        "database": database,
        "scheduler": scheduler_running,
        "scheduler_leader": scheduler_leading,
        "version": __version__,
        "queue": queue,
        "providers": {name: {"reachable": status.reachable,
                             "checked_at": status.checked_at.isoformat(timespec="seconds")}
                      for name, status in providers.items()},
    }
