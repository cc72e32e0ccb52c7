"""Prometheus metrics at /metrics: off by default, behind a bearer token, labelled by route template."""

from __future__ import annotations

import uuid

import pytest
from nicegui.testing import User
from prometheus_client.parser import text_string_to_metric_families

from rupali import jobs
from rupali.config import Settings, reset_settings
from tests.utils.factories import make_user
from tests.utils.signin import sign_in

TOKEN = "metrics-token-" + "x" * 24


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


async def test_metrics_are_off_by_default(user: User):
    response = await user.http_client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 404


def test_switching_metrics_on_needs_a_long_token():
    with pytest.raises(ValueError, match="RUPALI_METRICS_TOKEN"):
        Settings(metrics_enabled=True)
    with pytest.raises(ValueError, match="24 characters"):
        Settings(metrics_enabled=True, metrics_token="short")
    assert Settings(metrics_enabled=True, metrics_token=TOKEN).metrics_enabled


@pytest.fixture
def metrics_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUPALI_METRICS_ENABLED", "true")
    monkeypatch.setenv("RUPALI_METRICS_TOKEN", TOKEN)
    reset_settings()


async def test_a_scrape_without_the_token_is_refused(metrics_on: None, user: User):
    for headers in ({}, {"authorization": "Bearer wrong-token-wrong-token-wrong"}, {"authorization": TOKEN},
                    {"authorization": f"Basic {TOKEN}"}, {"authorization": "Bearer \x00\\'\""}):
        response = await user.http_client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "rupali_" not in response.text


async def test_requests_queue_outbox_and_jobs_are_counted_by_template(metrics_on: None, user: User):
    image_id = uuid.uuid4()
    await sign_in(user, make_user(email="counted@example.com").email)
    await user.http_client.get(f"/media/thumbnails/{image_id}?q=words")
    await user.http_client.get("/account")
    jobs.run("heartbeat")
    response = await user.http_client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert str(image_id) not in response.text and "words" not in response.text
    samples = _samples(response.text)
    thumbnail = (("method", "GET"), ("route", "/media/thumbnails/{image_id}"), ("status", "4xx"))
    assert samples[("rupali_http_requests_total", thumbnail)] >= 1
    assert samples[("rupali_http_requests_total", (("method", "GET"), ("route", "/account"), ("status", "2xx")))] >= 1
    assert samples[("rupali_http_request_duration_seconds_count", (("route", "/account"),))] >= 1
    assert samples[("rupali_generation_queue_waiting", ())] == 0
    assert samples[("rupali_generation_queue_running", ())] == 0
    assert ("rupali_outbox_messages", (("status", "queued"),)) in samples
    assert samples[("rupali_scheduled_job_runs_total", (("job", "heartbeat"), ("status", "succeeded")))] >= 1
    assert ("rupali_technical_log_pending", ()) in samples
