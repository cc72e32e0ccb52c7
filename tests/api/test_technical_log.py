"""The technical log: one row per request and page view, holding templates and facts, never what people typed."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from nicegui import ui
from nicegui.testing import User
from sqlmodel import select

from rupali import logs, techlog
from rupali.config import Settings, reset_settings
from rupali.db import session_scope
from rupali.models import RequestLog
from tests.utils.factories import make_user
from tests.utils.signin import sign_in

FIREFOX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.5 Mobile/15E148 Safari/604.1")


def _rows() -> list[RequestLog]:
    recorder = techlog.current()
    assert recorder is not None, "the technical log is on by default"
    recorder.flush()
    with session_scope() as session:
        return list(session.exec(select(RequestLog).order_by(RequestLog.id)).all())


def _all_text(rows: list[RequestLog]) -> str:
    return json.dumps([row.model_dump(mode="json") for row in rows])


async def test_a_page_view_is_one_row_with_the_route_template_client_and_person(user: User):
    member = make_user(email="member@example.com")
    await sign_in(user, member.email)
    _rows()  # the sign-in's own requests
    with session_scope() as session:
        for row in session.exec(select(RequestLog)).all():
            session.delete(row)
    response = await user.http_client.get("/account?tab=sessions", headers={"user-agent": FIREFOX})
    assert response.status_code == 200
    [row] = [row for row in _rows() if row.route == "/account"]
    assert (row.kind, row.method, row.status) == ("page", "GET", 200)
    assert row.user_id == member.id
    assert row.request_id == response.headers["x-request-id"]
    assert (row.browser, row.os, row.device) == ("Firefox 130", "Ubuntu", "desktop")
    assert row.ip and row.bytes == len(response.content) and row.duration_ms > 0
    assert row.error_type is None and row.trace_id is None


async def test_routes_with_ids_are_recorded_by_template_and_visitors_without_a_person(user: User):
    image_id = uuid.uuid4()
    await sign_in(user, make_user(email="viewer@example.com").email)
    missing = await user.http_client.get(f"/media/thumbnails/{image_id}?secret=abc")
    assert missing.status_code == 404
    user.http_client.cookies.clear()  # signed out from here on
    await user.http_client.get("/legal/privacy", headers={"user-agent": IPHONE})
    rows = _rows()
    assert str(image_id) not in _all_text(rows)
    [media] = [row for row in rows if row.route.startswith("/media/")]
    assert (media.route, media.status, media.kind) == ("/media/thumbnails/{image_id}", 404, "http")
    legal = next(row for row in rows if row.route == "/legal/privacy")
    assert legal.user_id is None and legal.device == "mobile" and legal.browser.startswith("Mobile Safari")


async def test_no_query_string_token_or_typed_text_lands_in_the_log(user: User, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "tok3n-" + uuid.uuid4().hex
    words = "my private search words"
    await sign_in(user, make_user(email="typist@example.com").email)
    for url in (f"/reset?token={secret}", f"/verify?token={secret}", f"/confirm-email?token={secret}",
                f"/unsubscribe?token={secret}",
                f"/gallery?q={words}", f"/no/such/{secret}", f"/api/v1/generations?cursor={secret}",
                f"/auth/complete?code={secret}"):
        await user.http_client.get(url, follow_redirects=False)
    rows = _rows()
    assert len(rows) >= 7
    stored = _all_text(rows)
    # httpx's own lines come from this test's client (the app quiets httpx: rupali.logs.QUIET).
    logged = "\n".join(record.getMessage() + json.dumps(record.__dict__, default=str)
                       for record in caplog.records if record.name != "httpx")
    for needle in (secret, words, "?"):
        assert needle not in stored
    for needle in (secret, words):
        assert needle not in logged
    assert any(row.route == techlog.UNMATCHED and row.status == 404 for row in rows)


async def test_a_failing_request_records_the_error_type_and_the_reference_it_showed(user: User, caplog):
    @ui.page("/test-log-boom")
    def boom() -> None:
        raise RuntimeError("SECRET detail of the failure")

    await sign_in(user, make_user().email)
    response = await user.http_client.get("/test-log-boom")
    assert response.status_code == 500
    [row] = [row for row in _rows() if row.route == "/test-log-boom"]
    assert row.status == 500 and row.error_type == "RuntimeError"
    assert row.trace_id and f"reference {row.trace_id}" in response.text
    assert "SECRET" not in _all_text([row])
    caplog.clear()  # the failure was the point


async def test_a_failing_action_outside_a_request_is_an_error_row_of_its_own(user: User, caplog):
    @ui.page("/test-log-button")
    def page() -> None:
        ui.button("Break", on_click=lambda: 1 / 0)

    await sign_in(user, make_user().email)
    await user.open("/test-log-button")
    user.find(kind=ui.button, content="Break").click()
    await user.should_see("Something went wrong (reference ", retries=20)
    [row] = [row for row in _rows() if row.kind == "error"]
    assert row.route == "action on /test-log-button" and row.error_type == "ZeroDivisionError" and row.trace_id
    caplog.clear()


@pytest.fixture
def behind_two_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUPALI_TRUSTED_PROXY_HOPS", "1")
    reset_settings()


async def test_the_client_address_comes_from_the_trusted_proxy_only(behind_two_proxies: None, user: User):
    await user.http_client.get("/legal/privacy", headers={"x-forwarded-for": "198.51.100.9, 203.0.113.5"})
    [row] = [row for row in _rows() if row.route.startswith("/legal")]
    assert row.ip == "203.0.113.5"  # the entry the one trusted proxy appended; the client's own claim is ignored


@pytest.fixture
def behind_cloudflare(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUPALI_CDN_PROVIDER", "cloudflare")
    monkeypatch.setenv("RUPALI_TRUSTED_PROXY_HOPS", "1")
    reset_settings()


async def test_behind_cloudflare_the_address_is_cf_connecting_ip(behind_cloudflare: None, user: User):
    await user.http_client.get("/legal/privacy", headers={"cf-connecting-ip": "2001:db8::7",
                                                          "x-forwarded-for": "198.51.100.9, 172.64.0.1"})
    [row] = [row for row in _rows() if row.route.startswith("/legal")]
    assert row.ip == "2001:db8::7"


@pytest.fixture
def technical_log_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUPALI_TECHNICAL_LOG", "false")
    reset_settings()


async def test_switched_off_nothing_is_recorded(technical_log_off: None, user: User):
    response = await user.http_client.get("/legal/privacy")
    assert response.status_code == 200 and "x-request-id" not in response.headers
    assert techlog.current() is None
    with session_scope() as session:
        assert session.exec(select(RequestLog)).first() is None


def test_json_log_lines_carry_the_access_fields(capsys: pytest.CaptureFixture[str]):
    logs.configure(Settings(log_format="json"))
    try:
        logging.getLogger("rupali.access").info("GET %s 200", "/account", extra={
            "route": "/account", "status": 200, "duration_ms": 1.5, "request_id": "ab12"})
        line = capsys.readouterr().out.strip().splitlines()[-1]
    finally:
        logging.getLogger().handlers.clear()
    record = json.loads(line)
    assert record["logger"] == "rupali.access" and record["level"] == "INFO"
    assert (record["route"], record["status"], record["request_id"]) == ("/account", 200, "ab12")
    assert record["message"] == "GET /account 200" and "time" in record


def test_browsers_and_devices_are_described_without_keeping_the_header():
    assert techlog.describe_client(FIREFOX) == techlog.Client("Firefox 130", "Ubuntu", "desktop")
    assert techlog.describe_client(IPHONE).device == "mobile"
    assert techlog.describe_client("Googlebot/2.1 (+http://www.google.com/bot.html)").device == "bot"
    assert techlog.describe_client("") == techlog.Client("", "", "other")
    assert techlog.describe_client("\x00\ud800'\"\\" * 300).browser != ""  # hostile headers parse to something
