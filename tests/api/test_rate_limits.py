"""Abuse limits on the REST API: per person and per resolved client address, 429 with ``Retry-After``, generations
counted apart (only valid ones), and the daily cap until midnight UTC. Time moves with the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from httpx import Response
from nicegui.testing import User
from sqlmodel import select

from rupali import clock
from rupali.config import reset_settings
from rupali.db import session_scope
from rupali.models import ApiKeyScope, Generation
from rupali.services import api_keys
from tests.utils.factories import make_user

BODY = {"prompt": "a lighthouse on a cliff at golden hour", "model": "offline:sketch-v1", "width": 512,
        "height": 512, "count": 1}
TOO_QUICK = "You are making requests too quickly. Try again in "


def _key() -> dict[str, str]:
    with session_scope() as session:
        _, secret = api_keys.create(session, make_user(), "limits", scope=ApiKeyScope.GENERATE)
    return {"Authorization": f"Bearer {secret}"}


def _refused(response: Response, sentence: str) -> int:
    """Assert a 429 with the sentence, naming the wait its whole-seconds Retry-After (1 to 60) gives."""
    assert response.status_code == 429, (response.status_code, response.text[:200])
    wait = response.headers["retry-after"]
    assert wait.isdigit() and 1 <= int(wait) <= 60, wait
    said = "1 second" if wait == "1" else "1 minute" if wait == "60" else f"{wait} seconds"
    assert response.json() == {"detail": f"{sentence}{said}."}
    return int(wait)


def _generations() -> list[Generation]:
    with session_scope() as session:
        return list(session.exec(select(Generation)).all())


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Generous defaults for what a test does not look at; each test narrows the limit it is about."""
    values = {"RUPALI_RATE_LIMIT_API_PER_MINUTE": "1000", "RUPALI_RATE_LIMIT_API_PER_IP_MINUTE": "1000",
              "RUPALI_RATE_LIMIT_GENERATIONS_PER_MINUTE": "1000", "RUPALI_RATE_LIMIT_GENERATIONS_PER_IP_MINUTE": "1000"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    return values


@pytest.fixture
def three_requests_a_person(limits, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUPALI_RATE_LIMIT_API_PER_MINUTE", "3")
    reset_settings()


async def test_a_person_over_the_api_limit_gets_429_with_retry_after_and_others_do_not(three_requests_a_person,
                                                                                       user: User):
    mine, theirs = _key(), _key()
    for _ in range(3):
        assert (await user.http_client.get("/api/v1/generations", headers=mine)).status_code == 200
    wait = _refused(await user.http_client.get("/api/v1/models", headers=mine), TOO_QUICK)
    # Every /v1 route counts, whatever it is, and a refused request uses nothing up.
    _refused(await user.http_client.post("/api/v1/generations", json=BODY, headers=mine), TOO_QUICK)
    assert (await user.http_client.get("/api/v1/generations", headers=theirs)).status_code == 200
    assert (await user.http_client.get("/api/openapi.json")).status_code == 200  # the docs are not the API
    with clock.travel(timedelta(seconds=wait)):
        assert (await user.http_client.get("/api/v1/generations", headers=mine)).status_code == 200
    assert _generations() == []


@pytest.fixture
def three_requests_an_address_behind_a_proxy(limits, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUPALI_RATE_LIMIT_API_PER_IP_MINUTE", "3")
    monkeypatch.setenv("RUPALI_TRUSTED_PROXY_HOPS", "1")
    reset_settings()


async def test_the_address_limit_counts_the_resolved_client_address(three_requests_an_address_behind_a_proxy,
                                                                   user: User):
    first, second = _key(), _key()
    office = {"x-forwarded-for": "203.0.113.7"}
    for headers in (first, second, first):  # two people behind one address share its limit
        assert (await user.http_client.get("/api/v1/generations", headers=headers | office)).status_code == 200
    _refused(await user.http_client.get("/api/v1/generations", headers=second | office), TOO_QUICK)
    # What a client writes left of the proxy's entry changes nothing: the proxy vouches for 203.0.113.7.
    forged = {"x-forwarded-for": "192.0.2.1, 203.0.113.7"}
    _refused(await user.http_client.get("/api/v1/generations", headers=first | forged), TOO_QUICK)
    # The same people from another address, and the proxy's own connection (no header), are counted apart.
    home = {"x-forwarded-for": "198.51.100.9"}
    assert (await user.http_client.get("/api/v1/generations", headers=first | home)).status_code == 200
    assert (await user.http_client.get("/api/v1/generations", headers=second)).status_code == 200


@pytest.fixture
def two_generations_a_person(limits, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUPALI_RATE_LIMIT_GENERATIONS_PER_MINUTE", "2")
    reset_settings()


async def test_only_valid_generation_requests_count_against_the_generation_limit(two_generations_a_person,
                                                                                 user: User):
    mine, theirs = _key(), _key()
    for _ in range(3):  # input to correct is not a generation
        invalid = await user.http_client.post("/api/v1/generations", json=BODY | {"width": 99999}, headers=mine)
        assert invalid.status_code == 422
    for _ in range(2):
        assert (await user.http_client.post("/api/v1/generations", json=BODY, headers=mine)).status_code == 202
    wait = _refused(await user.http_client.post("/api/v1/generations", json=BODY, headers=mine),
                    "You are starting generations too quickly. Try again in ")
    assert len(_generations()) == 2  # nothing recorded or queued for the refused one
    assert (await user.http_client.get("/api/v1/generations", headers=mine)).status_code == 200  # reading may go on
    assert (await user.http_client.post("/api/v1/generations", json=BODY, headers=theirs)).status_code == 202
    with clock.travel(timedelta(seconds=wait)):
        assert (await user.http_client.post("/api/v1/generations", json=BODY, headers=mine)).status_code == 202
    assert len(_generations()) == 4


@pytest.fixture
def two_generations_an_address(limits, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUPALI_RATE_LIMIT_GENERATIONS_PER_IP_MINUTE", "2")
    monkeypatch.setenv("RUPALI_TRUSTED_PROXY_HOPS", "1")
    reset_settings()


async def test_generations_from_one_address_share_its_limit(two_generations_an_address, user: User):
    first, second = _key(), _key()
    office, home = {"x-forwarded-for": "203.0.113.7"}, {"x-forwarded-for": "198.51.100.9"}
    for headers in (first, second):
        assert (await user.http_client.post("/api/v1/generations", json=BODY,
                                            headers=headers | office)).status_code == 202
    _refused(await user.http_client.post("/api/v1/generations", json=BODY, headers=first | office),
             "You are starting generations too quickly. Try again in ")
    assert (await user.http_client.post("/api/v1/generations", json=BODY, headers=first | home)).status_code == 202


@pytest.fixture
def one_generation_a_day(limits, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUPALI_GENERATION_DAILY_CAP", "1")
    reset_settings()


async def test_the_daily_cap_is_a_429_until_midnight_utc(one_generation_a_day, user: User):
    mine, theirs = _key(), _key()
    assert (await user.http_client.post("/api/v1/generations", json=BODY, headers=mine)).status_code == 202
    capped = await user.http_client.post("/api/v1/generations", json=BODY, headers=mine)
    moment = clock.now()
    until_midnight = (datetime.combine(moment.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
                      - moment).total_seconds()
    assert capped.status_code == 429
    assert capped.json()["detail"].startswith("You have started the 1 generation allowed per day. You can start "
                                              "more after midnight UTC, in ")
    assert abs(int(capped.headers["retry-after"]) - until_midnight) <= 2
    assert len(_generations()) == 1
    assert (await user.http_client.post("/api/v1/generations", json=BODY, headers=theirs)).status_code == 202
    with clock.travel(timedelta(seconds=int(capped.headers["retry-after"]))):  # the next UTC day
        assert (await user.http_client.post("/api/v1/generations", json=BODY, headers=mine)).status_code == 202


@pytest.fixture
def room_to_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUPALI_GENERATION_QUEUE_PER_USER", "20")  # so the queue's own limit is not what refuses
    reset_settings()


async def test_the_default_limits_leave_a_burst_alone_and_the_429_is_documented(room_to_queue, user: User):
    headers = _key()
    for _ in range(10):  # a burst like a script's: ten generations and a look at each
        created = await user.http_client.post("/api/v1/generations", json=BODY, headers=headers)
        assert created.status_code == 202
        assert (await user.http_client.get(f"/api/v1/generations/{created.json()['id']}",
                                           headers=headers)).status_code == 200
    _refused(await user.http_client.post("/api/v1/generations", json=BODY, headers=headers),
             "You are starting generations too quickly. Try again in ")
    spec = (await user.http_client.get("/api/openapi.json")).json()
    assert "429" in spec["paths"]["/v1/generations"]["post"]["responses"]
    assert "429" in spec["paths"]["/v1/images"]["get"]["responses"]
    assert "Retry-After" in spec["info"]["description"]
