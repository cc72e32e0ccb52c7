"""Prometheus metrics, served at ``/metrics`` when ``RUPALI_METRICS_ENABLED`` (behind a bearer token).

Counters and histograms live in one registry of our own (not the client library's global one: the test suite builds
many apps in one process). Requests are labelled by route *template* and status class only, so no path, id or
query ever becomes a label (and the label sets stay small). Gauges that describe state — queue depth, running
generations, outbox backlog, technical-log backlog — are read when Prometheus scrapes, from the running services.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlmodel import func, select

from rupali.config import Settings
from rupali.db import session_scope
from rupali.models import MailStatus, OutboxMessage

CONTENT_TYPE = CONTENT_TYPE_LATEST
OUTBOX_CACHE_SECONDS = 15.0  # the backlog is a COUNT query: scrapes more often than this reuse the last answer

registry = CollectorRegistry(auto_describe=True)

requests = Counter("rupali_http_requests", "HTTP requests served, by method, route template and status class",
                   ["method", "route", "status"], registry=registry)
request_seconds = Histogram("rupali_http_request_duration_seconds", "Time to serve an HTTP request, by route template",
                            ["route"], registry=registry,
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
generations = Counter("rupali_generations", "Finished generations, by provider and outcome",
                      ["provider", "outcome"], registry=registry)
generation_seconds = Histogram("rupali_generation_duration_seconds", "Time from start to finish of a generation",
                               ["provider"], registry=registry,
                               buckets=(0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600))
nsfw = Counter("rupali_nsfw_events", "Images flagged or withheld by the NSFW policy, prompts stopped by the blocklist",
               ["event"], registry=registry)
job_runs = Counter("rupali_scheduled_job_runs", "Scheduled job runs, by job and result", ["job", "status"],
                   registry=registry)


class _StateCollector(Collector):
    """Gauges read at scrape time from whatever sources are installed (the running app installs its own)."""

    def __init__(self) -> None:
        self.queue: Callable[[], tuple[int, int]] | None = None  # (waiting, running)
        self.technical_log: Callable[[], tuple[int, int]] | None = None  # (pending, dropped)
        self.settings: Settings | None = None
        self._outbox: tuple[float, dict[str, int]] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.queue is not None:
            waiting, running = self.queue()
            yield GaugeMetricFamily("rupali_generation_queue_waiting", "Generations waiting for a slot", waiting)
            yield GaugeMetricFamily("rupali_generation_queue_running", "Generations running now", running)
        if self.technical_log is not None:
            pending, dropped = self.technical_log()
            yield GaugeMetricFamily("rupali_technical_log_pending", "Technical-log rows waiting to be written", pending)
            yield GaugeMetricFamily("rupali_technical_log_dropped", "Technical-log rows dropped since start", dropped)
        if self.settings is not None:
            backlog = GaugeMetricFamily("rupali_outbox_messages", "Mail in the outbox by status", labels=["status"])
            for status, count in self._outbox_counts(self.settings).items():
                backlog.add_metric([status], count)
            yield backlog

    def _outbox_counts(self, settings: Settings) -> dict[str, int]:
        moment = time.monotonic()
        if self._outbox is not None and moment - self._outbox[0] < OUTBOX_CACHE_SECONDS:
            return self._outbox[1]
        with session_scope(settings) as session:
            found = dict(session.exec(select(OutboxMessage.status, func.count())  # type: ignore[call-overload]
                                      .group_by(OutboxMessage.status)).all())
        counts = {str(status): int(found.get(status, 0)) for status in MailStatus}
        self._outbox = (moment, counts)
        return counts


state = _StateCollector()
registry.register(state)


def status_class(status: int) -> str:
    """``2xx``, ``3xx``, …: enough to tell errors apart without one series per status code."""
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


def authorized(settings: Settings, authorization: str | None) -> bool:
    """Whether a scrape's ``Authorization`` header carries the configured token (compared in constant time)."""
    if not settings.metrics_enabled or settings.metrics_token is None or not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    expected = settings.metrics_token.get_secret_value()
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode())


def exposition() -> bytes:
    """The registry in Prometheus' text format."""
    return generate_latest(registry)
