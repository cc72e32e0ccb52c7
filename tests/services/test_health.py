"""The /healthz report: database and scheduler decide health; queue depth and cached provider checks ride along."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest

from rupali import clock, runtime
from rupali.config import Settings, get_settings, reset_settings
from rupali.db import session_scope
from rupali.providers import ImageProviders
from rupali.runtime import Runtime
from rupali.services import generation as generations
from rupali.services import health
from tests.utils.a1111_server import SDXL, LoopbackA1111, running_server
from tests.utils.factories import make_user


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the probe is closed


@pytest.fixture
def no_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "_current", None)


def _installed(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Runtime:
    """A runtime as the web app builds it, made the current one for this test."""
    built = Runtime.build(settings)
    monkeypatch.setattr(runtime, "_current", built)
    return built


@pytest.fixture
def a1111(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackA1111]:
    with running_server() as server:
        monkeypatch.setenv("RUPALI_A1111_URL", server.url)
        reset_settings()
        yield server


def test_without_a_runtime_the_database_and_scheduler_decide(no_runtime):
    healthy, body = health.report(get_settings(), scheduler_running=True)
    assert healthy and body["status"] == "ok" and body["database"] is True
    assert body["queue"] is None and body["providers"] == {}
    healthy, body = health.report(get_settings(), scheduler_running=False)
    assert not healthy and body["status"] == "unhealthy"


@pytest.mark.sqlite_only
def test_an_unreachable_provider_degrades_the_report_but_not_its_health(monkeypatch, caplog):
    monkeypatch.setenv("RUPALI_A1111_URL", f"http://127.0.0.1:{_closed_port()}")
    reset_settings()
    _installed(monkeypatch, get_settings())
    with caplog.at_level(logging.WARNING, logger="rupali.services.health"):
        healthy, body = health.report(get_settings(), scheduler_running=True)
    assert healthy and body["status"] == "degraded"
    assert body["providers"]["offline"]["reachable"] is True
    assert body["providers"]["a1111"]["reachable"] is False
    assert body["queue"] == {"waiting": 0, "running": 0, "concurrency": get_settings().generation_concurrency}
    # Why goes to the operator's log; the public body names no host and no error.
    assert "image provider a1111 is not reachable" in caplog.text and "Connection refused" in caplog.text
    assert "127.0.0.1" not in str(body) and "refused" not in str(body)


@pytest.mark.sqlite_only
def test_provider_checks_are_cached_for_the_interval(monkeypatch, a1111):
    _installed(monkeypatch, get_settings())
    first = health.report(get_settings(), scheduler_running=True)[1]["providers"]["a1111"]
    assert first["reachable"] is True
    health.report(get_settings(), scheduler_running=True)
    assert len(a1111.requests_to("/sd-models")) == 1  # the second report used the cached verdict

    a1111.stop()
    cached = health.report(get_settings(), scheduler_running=True)[1]
    assert cached["status"] == "ok" and cached["providers"]["a1111"] == first

    with clock.travel(health.PROVIDER_CHECK_INTERVAL + timedelta(seconds=1)):
        healthy, body = health.report(get_settings(), scheduler_running=True)
    assert healthy and body["status"] == "degraded" and body["providers"]["a1111"]["reachable"] is False
    assert body["providers"]["a1111"]["checked_at"] > first["checked_at"]


@pytest.mark.sqlite_only
def test_a_slow_provider_is_given_up_on_after_the_timeout(a1111):
    a1111.delay_next(60, path="/sd-models")  # stopping the server at the end cuts the delay short
    checks = health.ProviderChecks(timeout=0.3)
    status = checks.statuses(ImageProviders.from_settings(get_settings()))["a1111"]
    assert status.reachable is False and "within 0.3 s" in status.detail


@pytest.fixture
async def busy_studio(monkeypatch, a1111) -> AsyncIterator[tuple[Runtime, LoopbackA1111]]:
    """A started runtime running one job at a time on an image server that takes a minute per job."""
    a1111.work_seconds = 60  # cut short when the runtime stops and interrupts the job
    monkeypatch.setenv("RUPALI_GENERATION_CONCURRENCY", "1")
    reset_settings()
    studio = _installed(monkeypatch, get_settings())
    await studio.start()
    yield studio, a1111
    await studio.stop()


async def test_the_queue_depth_counts_waiting_and_running_jobs(busy_studio):
    studio, server = busy_studio
    choice = await studio.providers.find(f"a1111:{SDXL['title']}")
    for person in (make_user(), make_user(), make_user()):
        form = generations.GenerationForm(prompt="a lighthouse at dusk", model=choice.key, width=512, height=512)
        with session_scope() as session:
            generation = generations.submit(session, studio.settings, person, choice, form, studio.credits)
        studio.queue.submit(generation.id, person.id)
    assert await asyncio.to_thread(server.job_started.wait, 20)
    # As /healthz calls it: in a worker thread, beside the event loop that runs the queue.
    healthy, body = await asyncio.to_thread(health.report, studio.settings, scheduler_running=True)
    assert healthy and body["queue"] == {"waiting": 2, "running": 1, "concurrency": 1}
    assert body["status"] == "ok" and body["providers"]["a1111"]["reachable"] is True
