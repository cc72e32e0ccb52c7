"""HTTP hardening: security headers on every route, body size limits, the client address behind proxies, sign-out
by POST only, and error pages that show a reference instead of an exception."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from nicegui import ui
from nicegui.testing import User

from components.file_drop import FileDrop
from rupali import security_headers
from rupali.client_address import resolve, trusted_networks
from rupali.config import ConfigError, Settings, get_settings
from rupali.db import session_scope
from rupali.gate import AUTH_COOKIE
from rupali.services import ratelimit
from tests.api.test_gate import DUMMY, _routes
from tests.utils.factories import make_user
from tests.utils.signin import sign_in, submit_signin

PRODUCTION = {"RUPALI_ENV": "production", "RUPALI_PUBLIC_URL": "https://images.example.com",
              "RUPALI_OPERATOR_NAME": "Example ApS", "RUPALI_OPERATOR_ADDRESS": "Vesterbro 1",
              "RUPALI_OPERATOR_EMAIL": "dpo@example.dk", "RUPALI_SMTP_HOST": "smtp.example.com"}
REQUIRED = ("content-security-policy", "x-content-type-options", "referrer-policy", "permissions-policy",
            "x-frame-options")


# --- security headers -------------------------------------------------------------------------------------------


def _assert_guarded(response: httpx.Response, where: str) -> None:
    for name in REQUIRED:
        assert name in response.headers, f"{where} answered without {name}"
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, where
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert "strict-transport-security" not in response.headers  # plain http in development: no HSTS
    assert "server" not in response.headers


async def test_every_route_answers_with_the_security_headers(user: User):
    admin = make_user(role="admin")
    await sign_in(user, admin.email)
    import re

    for path, methods in sorted(_routes().items()):
        concrete = re.sub(r"\{[^}]+\}", DUMMY, path)
        for method in methods - {"HEAD", "OPTIONS"}:
            response = await user.http_client.request(method, concrete, follow_redirects=False)
            _assert_guarded(response, f"{method} {path}")
    for extra in ("/no/such/page", "/assets/style.css", "/api/v1/no-such-route"):
        _assert_guarded(await user.http_client.get(extra), extra)
    anonymous = httpx.AsyncClient(transport=user.http_client._transport, base_url="http://test")
    async with anonymous:
        _assert_guarded(await anonymous.get("/gallery", follow_redirects=False), "the gate's redirect")


@pytest.mark.sqlite_only
def test_production_adds_hsts_and_analytics_widen_only_their_own_origin(monkeypatch):
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    production = dict(security_headers.headers_for(Settings()))
    assert production["strict-transport-security"] == "max-age=31536000"
    plain = security_headers.content_security_policy(Settings())
    assert "umami" not in plain
    with_umami = security_headers.content_security_policy(
        Settings(umami_website_id="abc", umami_script_url="https://stats.example.net/script.js"))
    assert "script-src 'self' 'unsafe-inline' 'unsafe-eval' https://stats.example.net" in with_umami
    assert "connect-src 'self' https://stats.example.net" in with_umami


@pytest.mark.sqlite_only
def test_the_real_server_does_not_announce_itself(live_server: str):
    response = httpx.get(live_server + "/", timeout=10)
    assert response.status_code == 200
    assert "server" not in response.headers
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


# --- body limits ------------------------------------------------------------------------------------------------


async def _api_key_headers() -> dict[str, str]:
    from rupali.services import api_keys

    with session_scope() as session:
        _, secret = api_keys.create(session, make_user(), "limits")
    return {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}


async def test_an_oversized_json_body_is_refused_before_it_is_read(user: User):
    headers = await _api_key_headers()
    body = b'{"prompt": "' + b"x" * (2 * 1024 * 1024) + b'", "model": "offline:sketch-v1"}'
    response = await user.http_client.post("/api/v1/generations", content=body, headers=headers)
    assert response.status_code == 413, response.text

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b"x" * 65536

    streamed = await user.http_client.post("/api/v1/generations", content=chunks(), headers=headers)
    assert streamed.status_code == 413, streamed.text
    small = await user.http_client.post("/api/v1/generations", headers=headers,
                                        json={"prompt": "a small body", "model": "offline:sketch-v1"})
    assert small.status_code == 202


async def test_the_upload_route_refuses_more_than_the_upload_limit(user: User):
    await sign_in(user, make_user().email)
    await user.open("/account")
    [picker] = user.find(kind=FileDrop).elements
    url = picker.props["url"]
    too_big = await user.http_client.post(url, files={"file": ("big.png", b"\0" * (11 * 1024 * 1024), "image/png")})
    assert too_big.status_code == 413
    fits = await user.http_client.post(url, files={"file": ("small.png", b"\0" * 1024, "image/png")})
    assert fits.status_code == 200  # accepted by the route; the picture itself is then refused in words
    await user.should_see("This file is not an image.", retries=50)


# --- the client's address behind proxies ---------------------------------------------------------------------------


@pytest.mark.sqlite_only
@pytest.mark.parametrize(("peer", "header", "hops", "trusted", "expected"), [
    ("198.51.100.1", "203.0.113.77", 0, "", "198.51.100.1"),  # no proxy declared: the header means nothing
    ("10.0.0.2", "203.0.113.77, 198.51.100.9", 1, "", "198.51.100.9"),  # Railway: the entry its edge appended
    ("10.0.0.2", "6.6.6.6, 203.0.113.77, 198.51.100.9", 2, "", "203.0.113.77"),  # two proxies
    ("10.0.0.2", "", 1, "", "10.0.0.2"),
    ("10.0.0.2", "6.6.6.6, 198.51.100.9", 0, "10.0.0.0/8", "198.51.100.9"),  # trusted peer, untrusted client
    ("10.0.0.2", "6.6.6.6, 198.51.100.9, 10.0.0.7", 0, "10.0.0.0/8", "198.51.100.9"),
    ("198.51.100.1", "6.6.6.6", 0, "10.0.0.0/8", "198.51.100.1"),  # an untrusted peer's header is ignored
    ("10.0.0.2", "not-an-ip, 198.51.100.9", 0, "10.0.0.0/8", "198.51.100.9"),
])
def test_only_declared_proxies_are_believed(peer, header, hops, trusted, expected):
    assert resolve(peer, header, hops=hops, networks=trusted_networks(trusted)) == expected


@pytest.mark.sqlite_only
def test_trusting_every_hop_is_refused(monkeypatch):
    monkeypatch.setenv("RUPALI_FORWARDED_ALLOW_IPS", "*")
    with pytest.raises(ConfigError, match="RUPALI_FORWARDED_ALLOW_IPS cannot be `\\*`"):
        get_settings()


async def test_a_forged_forwarded_for_does_not_lift_the_ip_lockout(user: User):
    member = make_user(email="locked@example.com")
    settings = get_settings()
    with session_scope() as session:  # this IP has used up its failed sign-ins on other addresses
        for index in range(settings.signin_max_failures * 4):
            ratelimit.record(session, settings, "signin", email=f"other{index}@example.com", ip="127.0.0.1",
                             succeeded=False)
    user.http_client.headers["x-forwarded-for"] = "203.0.113.77"
    await submit_signin(user, member.email)
    await user.should_see("Too many", retries=50)
    assert user.http_client.cookies.get(AUTH_COOKIE) is None


# --- sign-out -----------------------------------------------------------------------------------------------------


async def test_sign_out_is_a_same_site_post(user: User):
    await sign_in(user, make_user().email)
    assert (await user.http_client.get("/auth/signout")).status_code == 405  # an image tag cannot sign anyone out
    foreign = await user.http_client.post("/auth/signout", headers={"origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert (await user.http_client.get("/account", follow_redirects=False)).status_code == 200
    signed_out = await user.http_client.post("/auth/signout", headers={"origin": "http://test"})
    assert signed_out.status_code == 303
    assert (await user.http_client.get("/account", follow_redirects=False)).status_code == 303


# --- error pages ----------------------------------------------------------------------------------------------------


async def test_a_failing_page_shows_a_reference_and_no_exception(user: User, caplog):
    @ui.page("/test-boom")
    def boom() -> None:
        raise RuntimeError("SECRET internal detail \\N{x}")

    await sign_in(user, make_user().email)
    response = await user.http_client.get("/test-boom")
    assert response.status_code == 500
    assert "Something went wrong" in response.text
    assert "SECRET" not in response.text and "RuntimeError" not in response.text
    [reference] = [record.args[0] for record in caplog.records if record.name == "rupali.errors"]
    assert f"quote the reference {reference}" in response.text
    caplog.clear()  # the failure was the point; the fixture fails tests that leave ERROR logs behind


async def test_unknown_pages_and_the_admin_area_look_alike_to_members(user: User):
    await sign_in(user, make_user(email="member@example.com").email)
    await asyncio.sleep(0)
    unknown = await user.http_client.get("/no/such/page")
    admin = await user.http_client.get("/admin")
    assert unknown.status_code == admin.status_code == 404
    for response in (unknown, admin):
        assert response.headers["content-type"].startswith("text/html")
        assert "This page does not exist" in response.text
        assert "HTTPException" not in response.text and "Not Found" not in response.text


async def test_a_failing_button_tells_the_person_with_a_reference(user: User, caplog):
    @ui.page("/test-failing-button")
    def page_with_a_broken_button() -> None:
        def broken() -> None:
            raise ValueError("internal \\x detail")

        ui.button("Break", on_click=broken)

    await sign_in(user, make_user().email)
    await user.open("/test-failing-button")
    user.find(kind=ui.button, content="Break").click()
    await user.should_see("Something went wrong (reference ", retries=20)
    await user.should_not_see("internal")
    assert [record for record in caplog.records if record.name == "rupali.errors"]
    caplog.clear()  # the failure was the point
