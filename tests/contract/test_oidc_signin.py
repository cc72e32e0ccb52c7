"""Signing in with OpenID Connect, end to end: the app against the loopback provider over real HTTP.

Every test drives the real flow: ``/auth/oidc/login`` redirects to the provider, the provider's authorize endpoint
answers with the callback URL (``follow_authorize``), and the callback goes back into the app, which redeems the code
at the provider's token endpoint and verifies the ID token against its JWKS. Nothing in the app is mocked.

Tests taking the ``claims`` fixture run twice: with the provider putting e-mail and name in the ID token, and with
the ID token carrying only ``sub`` so the app must fetch them from UserInfo (OpenID Connect Core 5.4).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urljoin, urlsplit

import httpx
import pytest
from nicegui import core, ui
from nicegui.testing import User
from sqlmodel import select

from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.gate import AUTH_COOKIE
from rupali.models import AuthSession, OidcIdentity, OutboxMessage
from rupali.models import User as Account
from rupali.services import ratelimit
from tests.utils.factories import PASSWORD, make_user
from tests.utils.oidc_provider import LoopbackOIDCProvider, running_provider, s256
from tests.utils.signin import wait_for_page

PUBLIC_URL = "http://test"
CALLBACK_PATH = "/auth/oidc/callback"
REDIRECT_URI = PUBLIC_URL + CALLBACK_PATH
PROVIDER_NAME = "Loopback ID"
STALE = "This sign-in link is stale or was opened in another browser. Please start again."
UNVERIFIED = "Your sign-in provider has not verified this e-mail address"
INVALID_TOKEN = "The sign-in could not be verified (the identity token is invalid or expired)."
NO_EMAIL = "The sign-in provider did not share a usable e-mail address."
OTHER_SUBJECT = f"The sign-in could not be verified: {PROVIDER_NAME} described a different account"
NO_USERINFO = f"{PROVIDER_NAME} did not share your account details. Please try again."


@pytest.fixture
def oidc_provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackOIDCProvider]:
    """A running provider the app is configured for (set up before the app is built)."""
    with running_provider(redirect_uris=[REDIRECT_URI]) as provider:
        monkeypatch.setenv("RUPALI_PUBLIC_URL", PUBLIC_URL)
        monkeypatch.setenv("RUPALI_OIDC_METADATA_URL", provider.metadata_url)
        monkeypatch.setenv("RUPALI_OIDC_CLIENT_ID", provider.client_id)
        monkeypatch.setenv("RUPALI_OIDC_CLIENT_SECRET", provider.client_secret)
        monkeypatch.setenv("RUPALI_OIDC_NAME", PROVIDER_NAME)
        reset_settings()
        yield provider


@pytest.fixture(params=["id_token", "userinfo"])
def claims(request: pytest.FixtureRequest, oidc_provider: LoopbackOIDCProvider) -> str:
    """Where the provider releases e-mail and name: in the ID token, or only from UserInfo."""
    oidc_provider.claims = request.param
    return request.param


@pytest.fixture
def user(oidc_provider: LoopbackOIDCProvider, user: User) -> User:
    """NiceGUI's simulated browser, on an app built only after the provider was configured.

    Overriding the plugin's fixture makes the order explicit rather than depending on argument order.
    """
    return user


# --- helpers ---------------------------------------------------------------------------------------------------


async def start_login(client: httpx.AsyncClient, provider: LoopbackOIDCProvider, next_path: str | None = None) -> str:
    """GET /auth/oidc/login and return the provider's authorize URL the app redirected to."""
    url = "/auth/oidc/login" + ("" if next_path is None else f"?next={quote(next_path, safe='')}")
    response = await client.get(url)
    assert response.status_code in (302, 303), (response.status_code, response.text)
    location = response.headers["location"]
    assert location.startswith(provider.authorization_endpoint + "?"), location
    return location


async def authorize(provider: LoopbackOIDCProvider, authorize_url: str) -> str:
    """The provider's side of the browser redirect; returns the callback URL it sends the browser to."""
    callback_url = await asyncio.to_thread(provider.follow_authorize, authorize_url)
    assert callback_url.startswith(REDIRECT_URI + "?"), callback_url
    return callback_url


async def open_callback(client: httpx.AsyncClient, callback_url: str) -> httpx.Response:
    """GET the app's callback (the browser following the provider's redirect)."""
    parts = urlsplit(callback_url)
    response = await client.get(f"{parts.path}?{parts.query}")
    assert response.status_code != 500, response.text
    return response


async def sign_in(client: httpx.AsyncClient, provider: LoopbackOIDCProvider,
                  next_path: str | None = None) -> httpx.Response:
    """A whole sign-in; returns the callback's response."""
    authorize_url = await start_login(client, provider, next_path)
    return await open_callback(client, await authorize(provider, authorize_url))


def with_query(callback_url: str, **changes: str | None) -> str:
    """The callback URL with query parameters replaced (``None`` drops one)."""
    parts = urlsplit(callback_url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    query.update(changes)
    return f"{parts.path}?{urlencode({k: v for k, v in query.items() if v is not None})}"


def accounts() -> list[Account]:
    with session_scope() as session:
        return list(session.exec(select(Account)).all())


def identities() -> list[OidcIdentity]:
    with session_scope() as session:
        return list(session.exec(select(OidcIdentity)).all())


def signed_in_sessions() -> list[AuthSession]:
    with session_scope() as session:
        return [record for record in session.exec(select(AuthSession)).all() if record.token_hash is not None]


def assert_signed_in(response: httpx.Response, client: httpx.AsyncClient) -> None:
    assert response.status_code == 303, (response.status_code, response.text)
    assert response.cookies.get(AUTH_COOKIE), response.headers.get_list("set-cookie")
    assert client.cookies.get(AUTH_COOKIE)


async def assert_refused(user: User, response: httpx.Response, message: str) -> None:
    """303 to /signin, no session cookie, and the sign-in page explains why (once)."""
    assert response.status_code == 303, (response.status_code, response.text)
    assert response.headers["location"] == "/signin"
    assert AUTH_COOKIE not in response.cookies
    assert user.http_client.cookies.get(AUTH_COOKIE) is None
    await user.open("/signin")
    await user.should_see(message)
    await user.should_not_see("Traceback")
    await user.should_see(f"Continue with {PROVIDER_NAME}")


def assert_userinfo_asked(provider: LoopbackOIDCProvider, times: int) -> None:
    """UserInfo was called ``times`` times, each with the access token as a Bearer token."""
    assert len(provider.userinfo_requests) == times, provider.userinfo_requests
    for request in provider.userinfo_requests:
        assert (request["authorization"] or "").startswith("Bearer "), request


def assert_userinfo_use(provider: LoopbackOIDCProvider, claims: str, sign_ins: int) -> None:
    """UserInfo was asked once per sign-in when the ID token lacked the profile, and never when it had it all."""
    assert_userinfo_asked(provider, sign_ins if claims == "userinfo" else 0)


def fresh_browser(*, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    """Another browser (no cookies) on the same in-process app."""
    transport = httpx.ASGITransport(core.app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL)


# --- 1. a new person --------------------------------------------------------------------------------------------


async def test_new_user_is_created_signed_in_and_sent_to_welcome(oidc_provider: LoopbackOIDCProvider, user: User,
                                                                  claims: str):
    client = user.http_client
    authorize_url = await start_login(client, oidc_provider, "/gallery")

    # The authorize request: code flow, PKCE S256, state and nonce, our registered redirect URI.
    params = {name: values[0] for name, values in parse_qs(urlsplit(authorize_url).query).items()}
    assert params["response_type"] == "code"
    assert params["client_id"] == oidc_provider.client_id
    assert params["redirect_uri"] == REDIRECT_URI
    assert "openid" in params["scope"].split() and "email" in params["scope"].split()
    assert params["code_challenge_method"] == "S256"
    assert len(params["state"]) >= 16 and len(params["nonce"]) >= 16
    assert "code_verifier" not in params

    callback_url = await authorize(oidc_provider, authorize_url)
    assert oidc_provider.authorize_requests == [params]
    response = await open_callback(client, callback_url)
    assert_signed_in(response, client)
    assert response.headers["location"] == "/gallery"

    # The code was redeemed with the verifier matching the challenge.
    [token_request] = oidc_provider.token_requests
    assert s256(token_request["form"]["code_verifier"]) == params["code_challenge"]
    assert token_request["form"]["redirect_uri"] == REDIRECT_URI

    [account] = accounts()
    assert account.email == "ada@example.com"
    assert account.full_name == "Ada Lovelace"
    assert account.password_hash is None
    assert account.email_verified_at is not None
    assert account.age_confirmed_at is None
    [identity] = identities()
    assert (identity.user_id, identity.provider, identity.subject) == (account.id, oidc_provider.issuer, "oidc-user-1")
    [record] = signed_in_sessions()
    assert record.user_id == account.id and record.method == "oidc"
    assert_userinfo_use(oidc_provider, claims, sign_ins=1)

    # Not onboarded yet: any gated page leads to /welcome, which asks for age and policies.
    gated = await client.get("/gallery")
    assert gated.status_code == 303 and gated.headers["location"] == "/welcome"
    await user.open("/welcome")
    await user.should_see("Welcome, Ada Lovelace")
    await user.should_see("I am at least 18 years old")


async def test_without_next_the_new_user_lands_on_welcome(oidc_provider: LoopbackOIDCProvider, user: User):
    response = await sign_in(user.http_client, oidc_provider)
    assert_signed_in(response, user.http_client)
    final = await user.http_client.get(response.headers["location"], follow_redirects=True)
    assert final.status_code == 200
    assert final.url.path == "/welcome"


# --- 2. a returning person --------------------------------------------------------------------------------------


async def test_returning_user_signs_in_to_the_same_account(oidc_provider: LoopbackOIDCProvider, user: User,
                                                            claims: str):
    client = user.http_client
    assert_signed_in(await sign_in(client, oidc_provider), client)
    [first] = accounts()
    signout = await client.post("/auth/signout")
    assert signout.status_code == 303
    assert client.cookies.get(AUTH_COOKIE) is None

    response = await sign_in(client, oidc_provider, "/account")
    assert_signed_in(response, client)
    assert [account.id for account in accounts()] == [first.id]
    assert len(identities()) == 1
    assert {record.user_id for record in signed_in_sessions()} == {first.id}
    assert len(signed_in_sessions()) == 2
    assert_userinfo_use(oidc_provider, claims, sign_ins=2)


async def test_linked_identity_wins_over_a_changed_address(oidc_provider: LoopbackOIDCProvider, user: User,
                                                            claims: str):
    client = user.http_client
    assert_signed_in(await sign_in(client, oidc_provider), client)
    [first] = accounts()
    client.cookies.clear()  # another browser, and the person changed their address at the provider
    oidc_provider.user = {**oidc_provider.user, "email": "ada.new@example.com"}

    assert_signed_in(await sign_in(client, oidc_provider), client)
    assert [(account.id, account.email) for account in accounts()] == [(first.id, "ada@example.com")]
    assert len(identities()) == 1
    assert_userinfo_use(oidc_provider, claims, sign_ins=2)


# --- 3. an existing local account with the same address -------------------------------------------------------


async def test_verified_address_links_the_existing_account(oidc_provider: LoopbackOIDCProvider, user: User,
                                                            claims: str):
    existing = make_user(email="ada@example.com", onboarded=True)
    client = user.http_client

    response = await sign_in(client, oidc_provider, "/gallery")
    assert_signed_in(response, client)
    assert response.headers["location"] == "/gallery"
    assert [account.id for account in accounts()] == [existing.id]
    [identity] = identities()
    assert (identity.user_id, identity.subject) == (existing.id, "oidc-user-1")
    assert_userinfo_use(oidc_provider, claims, sign_ins=1)
    await user.open("/gallery")  # onboarded already: no detour through /welcome
    await user.should_see("Your gallery is empty", retries=50)


async def test_verified_address_also_verifies_an_unverified_account(oidc_provider: LoopbackOIDCProvider,
                                                                    user: User, claims: str):
    existing = make_user(email="ada@example.com", onboarded=False)
    assert_signed_in(await sign_in(user.http_client, oidc_provider), user.http_client)
    [account] = accounts()
    assert account.id == existing.id
    assert account.email_verified_at is not None
    assert_userinfo_use(oidc_provider, claims, sign_ins=1)


async def test_unverified_address_does_not_link_the_existing_account(oidc_provider: LoopbackOIDCProvider,
                                                                     user: User, claims: str):
    existing = make_user(email="ada@example.com", onboarded=True)
    oidc_provider.user = {**oidc_provider.user, "email": "ADA@example.com", "email_verified": False}

    response = await sign_in(user.http_client, oidc_provider, "/gallery")
    await assert_refused(user, response, UNVERIFIED)
    assert identities() == []
    assert signed_in_sessions() == []
    assert [account.id for account in accounts()] == [existing.id]
    assert_userinfo_use(oidc_provider, claims, sign_ins=1)
    # The message is shown once, not on every later visit.
    await user.open("/signin")
    await user.should_not_see(UNVERIFIED)


# --- 4. a new person whose address the provider has not verified ----------------------------------------------


async def test_new_unverified_address_gets_a_verification_mail(oidc_provider: LoopbackOIDCProvider, user: User,
                                                                claims: str):
    oidc_provider.user = {"sub": "u-unverified", "email": "grace@example.com", "email_verified": False,
                          "name": "Grace Hopper"}
    response = await sign_in(user.http_client, oidc_provider)
    assert_signed_in(response, user.http_client)

    [account] = accounts()
    assert account.email == "grace@example.com"
    assert account.email_verified_at is None and account.age_confirmed_at is None
    [identity] = identities()
    assert identity.user_id == account.id
    with session_scope() as session:
        messages = session.exec(select(OutboxMessage).where(OutboxMessage.recipient == "grace@example.com")).all()
    assert len(messages) == 1
    assert messages[0].user_id == account.id
    assert f"{PUBLIC_URL}/confirm-email?token=" in messages[0].text_body
    assert_userinfo_use(oidc_provider, claims, sign_ins=1)
    gated = await user.http_client.get("/studio")
    assert gated.status_code == 303 and gated.headers["location"] == "/welcome"


# --- 5. claims from UserInfo ----------------------------------------------------------------------------------------


async def test_userinfo_about_another_subject_is_refused(oidc_provider: LoopbackOIDCProvider, user: User):
    """OIDC Core 5.3.2: UserInfo's ``sub`` must equal the ID token's, or its claims must not be used."""
    make_user(email="ada@example.com", onboarded=True)  # the address UserInfo claims, verified: a takeover target
    oidc_provider.claims = "userinfo"
    oidc_provider.userinfo_sub = "someone-else"
    response = await sign_in(user.http_client, oidc_provider, "/gallery")
    assert_userinfo_asked(oidc_provider, 1)
    await assert_refused(user, response, OTHER_SUBJECT)
    assert len(accounts()) == 1
    assert identities() == []
    assert signed_in_sessions() == []


@pytest.mark.parametrize("failure", ["server_error", "invalid_token", "not_json", "not_object", "hang_up"])
async def test_userinfo_failing_is_refused_with_a_message(oidc_provider: LoopbackOIDCProvider, user: User,
                                                          failure: Any):
    oidc_provider.claims = "userinfo"
    oidc_provider.userinfo_failure = failure
    response = await sign_in(user.http_client, oidc_provider, "/gallery")
    assert_userinfo_asked(oidc_provider, 1)
    await assert_refused(user, response, NO_USERINFO)
    assert accounts() == []
    assert identities() == []
    assert signed_in_sessions() == []

    oidc_provider.userinfo_failure = None  # the next attempt works
    assert_signed_in(await sign_in(user.http_client, oidc_provider), user.http_client)
    assert [account.email for account in accounts()] == ["ada@example.com"]


async def test_without_a_userinfo_endpoint_the_id_token_is_all_there_is(oidc_provider: LoopbackOIDCProvider,
                                                                        user: User):
    """UserInfo is optional in discovery: then the missing e-mail address is what gets explained."""
    oidc_provider.claims = "userinfo"
    oidc_provider.userinfo_published = False
    response = await sign_in(user.http_client, oidc_provider)
    await assert_refused(user, response, NO_EMAIL)
    assert oidc_provider.userinfo_requests == []
    assert accounts() == []


async def test_id_token_claims_win_and_userinfo_completes_them(oidc_provider: LoopbackOIDCProvider, user: User):
    """The ID token lacks only ``email_verified``: UserInfo is asked, and its verification counts because it is
    about the same address (compared as accounts compare addresses); its name does not replace the ID token's."""
    oidc_provider.user = {"sub": "u-partial", "email": "grace@example.com", "name": "Grace Hopper"}
    oidc_provider.userinfo_user = {"sub": "u-partial", "email": "Grace@Example.com", "email_verified": True,
                                   "name": "Somebody Else"}
    assert_signed_in(await sign_in(user.http_client, oidc_provider), user.http_client)
    assert_userinfo_asked(oidc_provider, 1)
    [account] = accounts()
    assert (account.email, account.full_name) == ("grace@example.com", "Grace Hopper")
    assert account.email_verified_at is not None


async def test_a_name_missing_from_the_id_token_comes_from_userinfo(oidc_provider: LoopbackOIDCProvider,
                                                                    user: User):
    oidc_provider.user = {"sub": "u-noname", "email": "grace@example.com", "email_verified": True}
    oidc_provider.userinfo_user = {"sub": "u-noname", "email": "grace@example.com", "email_verified": False,
                                   "name": "Grace Hopper"}
    assert_signed_in(await sign_in(user.http_client, oidc_provider), user.http_client)
    assert_userinfo_asked(oidc_provider, 1)
    [account] = accounts()
    assert account.full_name == "Grace Hopper"
    assert account.email_verified_at is not None  # the ID token's own verification wins over UserInfo's


async def test_userinfo_verifying_another_address_does_not_count(oidc_provider: LoopbackOIDCProvider, user: User):
    """The ID token names an address but not whether it is verified; UserInfo verifies a different address.
    Combining the two would link the account of an address nobody verified."""
    existing = make_user(email="ada@example.com", onboarded=True)
    oidc_provider.user = {"sub": "u-mixed", "email": "ada@example.com", "name": "Ada Lovelace"}
    oidc_provider.userinfo_user = {"sub": "u-mixed", "email": "mallory@example.com", "email_verified": True}
    response = await sign_in(user.http_client, oidc_provider, "/gallery")
    assert_userinfo_asked(oidc_provider, 1)
    await assert_refused(user, response, UNVERIFIED)
    assert identities() == []
    assert [account.id for account in accounts()] == [existing.id]


async def test_a_verification_flag_without_an_address_does_not_count(oidc_provider: LoopbackOIDCProvider,
                                                                     user: User):
    """The ID token says "verified" but names no address; the address comes from UserInfo without a flag."""
    make_user(email="ada@example.com", onboarded=True)
    oidc_provider.user = {"sub": "u-flag", "email_verified": True, "name": "Ada Lovelace"}
    oidc_provider.userinfo_user = {"sub": "u-flag", "email": "ada@example.com"}
    response = await sign_in(user.http_client, oidc_provider)
    assert_userinfo_asked(oidc_provider, 1)
    await assert_refused(user, response, UNVERIFIED)
    assert identities() == []


# --- 6. ID tokens that must be rejected -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["wrong_nonce", "bad_signature", "expired", "wrong_audience"])
async def test_bad_id_token_is_refused(oidc_provider: LoopbackOIDCProvider, user: User, mode: Any):
    oidc_provider.mode = mode
    response = await sign_in(user.http_client, oidc_provider, "/gallery")
    assert len(oidc_provider.token_requests) == 1  # the token really was fetched and then rejected
    await assert_refused(user, response, INVALID_TOKEN)
    assert accounts() == []
    assert identities() == []
    assert signed_in_sessions() == []


# --- 7. tampering ---------------------------------------------------------------------------------------------


async def test_wrong_state_is_refused_before_the_code_is_redeemed(oidc_provider: LoopbackOIDCProvider, user: User):
    callback_url = await authorize(oidc_provider, await start_login(user.http_client, oidc_provider))
    response = await open_callback(user.http_client, with_query(callback_url, state=secrets.token_urlsafe(24)))
    await assert_refused(user, response, STALE)
    assert oidc_provider.token_requests == []
    assert accounts() == []


async def test_callback_without_a_login_in_this_browser_is_refused(oidc_provider: LoopbackOIDCProvider, user: User):
    """A callback URL carried to another browser (or forged): that browser's session holds no state."""
    async with fresh_browser() as other:
        callback_url = await authorize(oidc_provider, await start_login(other, oidc_provider))
    response = await open_callback(user.http_client, callback_url)
    await assert_refused(user, response, STALE)
    assert oidc_provider.token_requests == []
    assert accounts() == []


async def test_replayed_callback_is_refused(oidc_provider: LoopbackOIDCProvider, user: User):
    client = user.http_client
    callback_url = await authorize(oidc_provider, await start_login(client, oidc_provider))
    assert_signed_in(await open_callback(client, callback_url), client)
    await client.post("/auth/signout")

    replay = await open_callback(client, callback_url)
    await assert_refused(user, replay, STALE)
    async with fresh_browser() as other:
        elsewhere = await open_callback(other, callback_url)
        assert elsewhere.status_code == 303 and elsewhere.headers["location"] == "/signin"
        assert AUTH_COOKIE not in elsewhere.cookies
    assert len(oidc_provider.token_requests) == 1
    assert len(signed_in_sessions()) == 1
    assert len(accounts()) == 1


async def test_provider_error_is_refused_with_a_message(oidc_provider: LoopbackOIDCProvider, user: User):
    callback_url = await authorize(oidc_provider, await start_login(user.http_client, oidc_provider))
    denied = with_query(callback_url, code=None, error="access_denied", error_description="The user said no")
    response = await open_callback(user.http_client, denied)
    await assert_refused(user, response, f"Signing in with {PROVIDER_NAME} was cancelled.")
    assert oidc_provider.token_requests == []
    assert accounts() == []


async def test_error_text_of_a_forged_callback_is_not_shown(oidc_provider: LoopbackOIDCProvider, user: User):
    """A forged link must not put its own sentence on the sign-in page: errors count only for a sign-in this
    browser started, and are shown in our own words."""
    forged = "/auth/oidc/callback?" + urlencode({
        "error": "access_denied", "error_description": "Your account is locked. Call +1 555 0100 to unlock it"})
    response = await open_callback(user.http_client, forged)
    assert response.status_code == 303 and response.headers["location"] == "/signin"
    await user.open("/signin")
    await user.should_not_see("Call +1 555 0100")


async def test_unreachable_provider_is_explained(oidc_provider: LoopbackOIDCProvider, user: User):
    oidc_provider.stop()
    response = await user.http_client.get("/auth/oidc/login?next=/gallery")
    await assert_refused(user, response, f"{PROVIDER_NAME} is not reachable right now. Please try again later.")


async def test_provider_failing_during_the_callback_is_explained(oidc_provider: LoopbackOIDCProvider, user: User):
    callback_url = await authorize(oidc_provider, await start_login(user.http_client, oidc_provider))
    oidc_provider.stop()
    response = await open_callback(user.http_client, callback_url)
    await assert_refused(user, response, f"Signing in with {PROVIDER_NAME} failed. Please try again.")
    assert accounts() == []


async def test_recent_verification_mails_do_not_break_a_new_sign_in(oidc_provider: LoopbackOIDCProvider,
                                                                    user: User):
    """The first verification mail of a new account is not subject to the resend limit, which an earlier holder
    of the address may have used up (say their account was deleted last hour)."""
    with session_scope() as session:
        for _ in range(3):
            ratelimit.record(session, get_settings(), "resend", email="grace@example.com", ip="", succeeded=True)
    oidc_provider.user = {"sub": "u-2", "email": "grace@example.com", "email_verified": False, "name": "Grace"}
    async with fresh_browser(raise_app_exceptions=False) as browser:
        callback_url = await authorize(oidc_provider, await start_login(browser, oidc_provider))
        parts = urlsplit(callback_url)
        response = await browser.get(f"{parts.path}?{parts.query}")
    assert response.status_code != 500, "RateLimited escaped oidc.account_for: the callback answered 500"
    assert response.status_code == 303


# --- 8. no off-site redirects ---------------------------------------------------------------------------------


@pytest.mark.parametrize("next_path", ["https://evil.example", "//evil.example", "/\\evil.example",
                                       "\\\\evil.example", "/\t/evil.example", "http:evil.example"])
async def test_next_cannot_leave_the_site(oidc_provider: LoopbackOIDCProvider, user: User, next_path: str):
    client = user.http_client
    response = await sign_in(client, oidc_provider, next_path)
    assert_signed_in(response, client)
    location = response.headers["location"]
    assert location.startswith("/") and not location.startswith("//"), location
    assert urlsplit(urljoin(PUBLIC_URL + "/", location)).netloc == "test"
    final = await client.get(location, follow_redirects=True)
    assert final.url.host == "test" and final.status_code == 200


async def test_signin_page_does_not_pass_an_off_site_next_to_the_login(oidc_provider: LoopbackOIDCProvider,
                                                                        user: User,
                                                                        monkeypatch: pytest.MonkeyPatch):
    targets: list[str] = []
    # Record where the button navigates (the simulated browser cannot follow a redirect to another host).
    monkeypatch.setattr(user.navigate, "to", lambda target, new_tab=False: targets.append(target))
    await user.open("/signin?next=" + quote("https://evil.example", safe=""))
    user.find(f"Continue with {PROVIDER_NAME}").click()
    assert len(targets) == 1 and targets[0].startswith("/auth/oidc/login?next="), targets
    assert "evil" not in targets[0]
    authorize_url = await start_login(user.http_client, oidc_provider, parse_qs(urlsplit(targets[0]).query)["next"][0])
    response = await open_callback(user.http_client, await authorize(oidc_provider, authorize_url))
    assert_signed_in(response, user.http_client)
    assert response.headers["location"] == "/studio"


# --- 9. the sign-in page ----------------------------------------------------------------------------------------


async def test_signin_page_offers_the_configured_provider(oidc_provider: LoopbackOIDCProvider, user: User):
    await user.open("/signin")
    await user.should_see(f"Continue with {PROVIDER_NAME}")
    await user.should_see("E-mail address")  # password sign-in stays available alongside


async def test_a_refusal_is_not_shown_after_a_later_oidc_sign_in(oidc_provider: LoopbackOIDCProvider, user: User):
    """A refusal the person never went to /signin to read must not greet them there after signing in and out."""
    client = user.http_client
    callback_url = await authorize(oidc_provider, await start_login(client, oidc_provider))
    refused = await open_callback(client, with_query(callback_url, state=secrets.token_urlsafe(24)))
    assert refused.status_code == 303 and refused.headers["location"] == "/signin"  # not followed

    assert_signed_in(await sign_in(client, oidc_provider), client)
    assert (await client.post("/auth/signout")).status_code == 303
    await user.open("/signin")
    await user.should_see(f"Continue with {PROVIDER_NAME}")
    await user.should_not_see(STALE)


async def test_a_refusal_is_not_shown_after_a_later_password_sign_in(oidc_provider: LoopbackOIDCProvider,
                                                                     user: User):
    """The same for a password sign-in from a sign-in page opened before the refusal (say, in another tab)."""
    member = make_user(email="grace@example.com", onboarded=True)
    client = user.http_client
    await user.open("/signin")
    user.find(kind=ui.input, content="E-mail address").type(member.email)
    user.find(kind=ui.input, content="Password").type(PASSWORD)

    callback_url = await authorize(oidc_provider, await start_login(client, oidc_provider))
    refused = await open_callback(client, with_query(callback_url, state=secrets.token_urlsafe(24)))
    assert refused.status_code == 303 and refused.headers["location"] == "/signin"  # not followed

    user.find(kind=ui.button, content="Sign in").click()
    await wait_for_page(user, lambda path: path.startswith("/auth/complete"))
    assert client.cookies.get(AUTH_COOKIE)
    assert (await client.post("/auth/signout")).status_code == 303
    await user.open("/signin")
    await user.should_see("E-mail address")
    await user.should_not_see(STALE)
