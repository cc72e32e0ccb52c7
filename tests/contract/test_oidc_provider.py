"""The loopback OIDC provider speaks the contract: proven with plain httpx and Authlib's own verification.

The app is not involved here; ``tests/utils/oidc_provider.py`` must be trustworthy before app tests lean on it.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.integrations.starlette_client import OAuth
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry, extract_compact

from tests.utils.oidc_provider import LoopbackOIDCProvider, OIDCProviderError, running_provider, s256

pytestmark = pytest.mark.sqlite_only

REDIRECT_URI = "http://test/auth/oidc/callback"


@pytest.fixture
def provider() -> Iterator[LoopbackOIDCProvider]:
    with running_provider(redirect_uris=[REDIRECT_URI]) as running:
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, follow_redirects=False, timeout=10) as client:
        yield client


def authorize_params(provider: LoopbackOIDCProvider, **overrides: str | None) -> tuple[dict[str, str], str]:
    """Authorize query parameters (``None`` drops one) and the matching PKCE verifier."""
    verifier = secrets.token_urlsafe(48)
    params: dict[str, str | None] = {
        "response_type": "code", "client_id": provider.client_id, "redirect_uri": REDIRECT_URI,
        "scope": "openid profile email", "state": secrets.token_urlsafe(16), "nonce": secrets.token_urlsafe(16),
        "code_challenge": s256(verifier), "code_challenge_method": "S256", **overrides,
    }
    return {name: value for name, value in params.items() if value is not None}, verifier


def get_code(provider: LoopbackOIDCProvider, params: dict[str, str]) -> str:
    callback = provider.follow_authorize(f"{provider.authorization_endpoint}?{urlencode(params)}")
    query = parse_qs(urlsplit(callback).query)
    assert query["state"] == [params["state"]]
    return query["code"][0]


def token_request(http: httpx.Client, provider: LoopbackOIDCProvider, code: str, verifier: str,
                  *, secret: str | None = None, basic: bool = True) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier}
    secret = provider.client_secret if secret is None else secret
    if basic:
        return http.post(provider.token_endpoint, data=form, auth=(provider.client_id, secret))
    return http.post(provider.token_endpoint, data={**form, "client_id": provider.client_id, "client_secret": secret})


def sign_in(http: httpx.Client, provider: LoopbackOIDCProvider) -> tuple[dict[str, Any], str]:
    """A whole code flow; returns the token response and the nonce sent."""
    params, verifier = authorize_params(provider)
    response = token_request(http, provider, get_code(provider, params), verifier)
    assert response.status_code == 200, response.text
    return response.json(), params["nonce"]


def verify_id_token(http: httpx.Client, provider: LoopbackOIDCProvider, token: dict[str, Any],
                    nonce: str) -> CodeIDToken:
    """What Authlib's ``parse_id_token`` does: JWKS from the discovery document, RS256, then CodeIDToken checks."""
    metadata = http.get(provider.metadata_url).json()
    key_set = KeySet.import_key_set(http.get(metadata["jwks_uri"]).json())
    decoded = jwt.decode(token["id_token"], key_set,
                         registry=JWSRegistry(algorithms=metadata["id_token_signing_alg_values_supported"],
                                              strict_check_header=False))
    claims = CodeIDToken(decoded.claims, decoded.header, {"iss": {"values": [metadata["issuer"]]}},
                         {"nonce": nonce, "client_id": provider.client_id, "access_token": token["access_token"]})
    claims.validate(leeway=120)
    return claims


def unverified_claims(id_token: str) -> dict[str, Any]:
    payload = id_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# -- discovery and keys --------------------------------------------------------------------------------------------

def test_discovery_document(provider: LoopbackOIDCProvider, http: httpx.Client) -> None:
    assert provider.issuer.startswith("http://127.0.0.1:") and provider.base_url == provider.issuer
    response = http.get(provider.metadata_url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    doc = response.json()
    assert doc["issuer"] == provider.issuer
    for name, path in [("authorization_endpoint", "/authorize"), ("token_endpoint", "/token"),
                       ("userinfo_endpoint", "/userinfo"), ("jwks_uri", "/jwks")]:
        assert doc[name] == provider.issuer + path
    assert doc["response_types_supported"] == ["code"]
    assert doc["subject_types_supported"] == ["public"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["scopes_supported"] == ["openid", "profile", "email"]
    assert doc["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post"]
    assert {"sub", "email", "email_verified", "name", "nonce"} <= set(doc["claims_supported"])


def test_jwks_publishes_the_public_key_only(provider: LoopbackOIDCProvider, http: httpx.Client) -> None:
    keys = http.get(provider.metadata["jwks_uri"]).json()["keys"]
    assert len(keys) == 1
    (key,) = keys
    assert key["kty"] == "RSA" and key["kid"] == provider.kid and key["alg"] == "RS256" and key["use"] == "sig"
    assert {"n", "e"} <= set(key) and not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


# -- the code flow -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("basic", [True, False], ids=["client_secret_basic", "client_secret_post"])
def test_code_flow_with_pkce(provider: LoopbackOIDCProvider, http: httpx.Client, basic: bool) -> None:
    provider.user = {"sub": "user-42", "email": "grace@example.com", "email_verified": True, "name": "Grace Hopper"}
    params, verifier = authorize_params(provider)
    callback = provider.follow_authorize(f"{provider.authorization_endpoint}?{urlencode(params)}")
    assert callback.startswith(REDIRECT_URI + "?")
    assert provider.authorize_requests == [params]
    code = parse_qs(urlsplit(callback).query)["code"][0]

    response = token_request(http, provider, code, verifier, basic=basic)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    token = response.json()
    assert token["token_type"] == "Bearer" and token["expires_in"] == 300 and token["scope"] == params["scope"]
    assert provider.token_requests[-1]["form"]["code_verifier"] == verifier
    assert (provider.token_requests[-1]["authorization"] is not None) == basic

    claims = verify_id_token(http, provider, token, params["nonce"])
    assert claims.header["kid"] == provider.kid and claims.header["alg"] == "RS256"
    assert claims["iss"] == provider.issuer and claims["aud"] == provider.client_id
    assert claims["nonce"] == params["nonce"]
    assert (claims["sub"], claims["email"], claims["email_verified"], claims["name"]) == (
        "user-42", "grace@example.com", True, "Grace Hopper")
    now = time.time()
    assert claims["iat"] <= now + 1 and claims["exp"] - claims["iat"] == 300 and claims["auth_time"] <= now + 1

    info = http.get(provider.userinfo_endpoint, headers={"Authorization": f"Bearer {token['access_token']}"})
    assert info.status_code == 200
    assert info.json() == {"sub": "user-42", "email": "grace@example.com", "email_verified": True,
                           "name": "Grace Hopper"}


def test_unverified_email_is_just_a_claim(provider: LoopbackOIDCProvider, http: httpx.Client) -> None:
    provider.user["email_verified"] = False
    token, nonce = sign_in(http, provider)
    assert verify_id_token(http, provider, token, nonce)["email_verified"] is False


def test_userinfo_rejects_unknown_or_missing_token(provider: LoopbackOIDCProvider, http: httpx.Client) -> None:
    unknown = http.get(provider.userinfo_endpoint, headers={"Authorization": "Bearer nope"})
    assert unknown.status_code == 401 and unknown.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    response = http.get(provider.userinfo_endpoint)
    assert response.status_code == 401 and response.json() == {"error": "invalid_token"}
    assert response.headers["www-authenticate"] == "Bearer"
    token, _ = sign_in(http, provider)
    # the access token in a query parameter or as Basic credentials is not accepted: the Bearer header only
    assert http.get(provider.userinfo_endpoint, params={"access_token": token["access_token"]}).status_code == 401
    basic = http.get(provider.userinfo_endpoint, auth=(token["access_token"], ""))
    assert basic.status_code == 401 and basic.headers["www-authenticate"] == "Bearer"


# -- UserInfo: claims mode, scopes and misbehaviour -----------------------------------------------------------------

def userinfo(http: httpx.Client, provider: LoopbackOIDCProvider, token: dict[str, Any], *,
             method: str = "GET") -> httpx.Response:
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    return http.request(method, provider.userinfo_endpoint, headers=bearer)


def sign_in_with_scope(http: httpx.Client, provider: LoopbackOIDCProvider, scope: str) -> dict[str, Any]:
    params, verifier = authorize_params(provider, scope=scope)
    response = token_request(http, provider, get_code(provider, params), verifier)
    assert response.status_code == 200, response.text
    return response.json()


def test_claims_default_to_the_id_token(provider: LoopbackOIDCProvider) -> None:
    assert provider.claims == "id_token"
    with running_provider(claims="userinfo") as other:
        assert other.claims == "userinfo"


def test_claims_userinfo_puts_only_sub_in_the_id_token(provider: LoopbackOIDCProvider, http: httpx.Client) -> None:
    provider.claims = "userinfo"
    provider.user = {"sub": "user-7", "email": "grace@example.com", "email_verified": True, "name": "Grace Hopper"}
    token, nonce = sign_in(http, provider)
    claims = verify_id_token(http, provider, token, nonce)  # still a complete, valid ID token
    assert set(claims) == {"sub", "iss", "aud", "iat", "exp", "auth_time", "nonce", "at_hash"}
    assert claims["sub"] == "user-7"
    response = userinfo(http, provider, token)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == {"sub": "user-7", "email": "grace@example.com", "email_verified": True,
                               "name": "Grace Hopper"}
    assert userinfo(http, provider, token, method="POST").json() == response.json()
    assert provider.userinfo_requests == [{"authorization": f"Bearer {token['access_token']}"}] * 2


def test_claims_setting_is_taken_at_authorize_time(provider: LoopbackOIDCProvider, http: httpx.Client) -> None:
    params, verifier = authorize_params(provider)
    code = get_code(provider, params)
    provider.claims = "userinfo"
    token = token_request(http, provider, code, verifier).json()
    assert unverified_claims(token["id_token"])["email"] == provider.user["email"]


@pytest.mark.parametrize(("scope", "released"), [
    ("openid profile email", {"sub", "email", "email_verified", "name"}),
    ("openid email", {"sub", "email", "email_verified"}),
    ("openid profile", {"sub", "name"}),
    ("openid", {"sub"}),
])
def test_userinfo_releases_only_the_claims_of_granted_scopes(provider: LoopbackOIDCProvider, http: httpx.Client,
                                                             scope: str, released: set[str]) -> None:
    provider.claims = "userinfo"
    provider.user = {**provider.user, "groups": ["admins"], "locale": None}  # no scope releases groups
    answer = userinfo(http, provider, sign_in_with_scope(http, provider, scope)).json()
    assert set(answer) == released
    assert {name: provider.user[name] for name in released} == answer


def test_userinfo_omits_absent_claims_rather_than_sending_null(provider: LoopbackOIDCProvider,
                                                               http: httpx.Client) -> None:
    provider.user = {"sub": "user-8", "email": "linus@example.com", "name": None}
    token, _ = sign_in(http, provider)
    assert userinfo(http, provider, token).json() == {"sub": "user-8", "email": "linus@example.com"}


def test_userinfo_sub_answers_for_someone_else(provider: LoopbackOIDCProvider, http: httpx.Client) -> None:
    provider.claims = "userinfo"
    provider.userinfo_sub = "someone-else"
    token, nonce = sign_in(http, provider)
    assert verify_id_token(http, provider, token, nonce)["sub"] == provider.user["sub"]
    answer = userinfo(http, provider, token).json()
    assert answer == {**provider.user, "sub": "someone-else"}


def test_userinfo_user_differs_from_the_id_token(provider: LoopbackOIDCProvider, http: httpx.Client) -> None:
    provider.userinfo_user = {"sub": "ignored", "email": "other@example.com", "email_verified": True}
    token, nonce = sign_in(http, provider)
    assert verify_id_token(http, provider, token, nonce)["email"] == provider.user["email"]
    assert userinfo(http, provider, token).json() == {"sub": provider.user["sub"], "email": "other@example.com",
                                                      "email_verified": True}


@pytest.mark.parametrize(("failure", "status"), [("server_error", 500), ("invalid_token", 401), ("not_json", 200),
                                                 ("not_object", 200)])
def test_userinfo_failures(provider: LoopbackOIDCProvider, http: httpx.Client, failure: Any, status: int) -> None:
    token, _ = sign_in(http, provider)
    provider.userinfo_failure = failure
    response = userinfo(http, provider, token)
    assert response.status_code == status
    if failure == "invalid_token":
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    if failure == "not_json":
        assert response.headers["content-type"].startswith("text/html")
        with pytest.raises(ValueError):
            response.json()
    if failure == "not_object":
        assert response.json() == [{"sub": provider.user["sub"], **provider.user}]
    provider.userinfo_failure = None
    assert userinfo(http, provider, token).status_code == 200


def test_userinfo_hang_up(provider: LoopbackOIDCProvider, http: httpx.Client) -> None:
    token, _ = sign_in(http, provider)
    provider.userinfo_failure = "hang_up"
    with pytest.raises(httpx.RemoteProtocolError):
        userinfo(http, provider, token)
    assert len(provider.userinfo_requests) == 1


def test_userinfo_failures_still_require_a_token(provider: LoopbackOIDCProvider, http: httpx.Client) -> None:
    provider.userinfo_failure = "not_object"
    assert http.get(provider.userinfo_endpoint).status_code == 401


def test_userinfo_endpoint_can_be_left_unpublished(provider: LoopbackOIDCProvider, http: httpx.Client) -> None:
    provider.userinfo_published = False
    assert "userinfo_endpoint" not in http.get(provider.metadata_url).json()


def test_unknown_claims_or_failure_is_refused(provider: LoopbackOIDCProvider) -> None:
    with pytest.raises(ValueError, match="unknown claims"):
        provider.claims = "both"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="unknown userinfo_failure"):
        provider.userinfo_failure = "slow"  # type: ignore[assignment]


def test_state_is_echoed_and_existing_query_kept(http: httpx.Client) -> None:
    redirect = "http://test/cb?tenant=7"
    with running_provider(redirect_uris=[redirect]) as provider:
        params, _ = authorize_params(provider, redirect_uri=redirect, state="s p/a+ce")
        query = parse_qs(urlsplit(provider.follow_authorize(
            f"{provider.authorization_endpoint}?{urlencode(params)}")).query)
    assert query["tenant"] == ["7"] and query["state"] == ["s p/a+ce"]


# -- the token endpoint refuses --------------------------------------------------------------------------------------

def test_codes_are_single_use(provider: LoopbackOIDCProvider, http: httpx.Client) -> None:
    params, verifier = authorize_params(provider)
    code = get_code(provider, params)
    assert token_request(http, provider, code, verifier).status_code == 200
    again = token_request(http, provider, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_wrong_code_verifier_is_invalid_grant(provider: LoopbackOIDCProvider, http: httpx.Client) -> None:
    params, verifier = authorize_params(provider)
    code = get_code(provider, params)
    response = token_request(http, provider, code, secrets.token_urlsafe(48))
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    # the failed attempt spent the code
    assert token_request(http, provider, code, verifier).json()["error"] == "invalid_grant"


def test_redirect_uri_must_match_the_authorize_request(provider: LoopbackOIDCProvider, http: httpx.Client) -> None:
    params, verifier = authorize_params(provider)
    form = {"grant_type": "authorization_code", "code": get_code(provider, params),
            "redirect_uri": "http://test/elsewhere", "code_verifier": verifier}
    response = http.post(provider.token_endpoint, data=form, auth=(provider.client_id, provider.client_secret))
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("basic", [True, False], ids=["client_secret_basic", "client_secret_post"])
def test_wrong_client_secret_is_401(provider: LoopbackOIDCProvider, http: httpx.Client, basic: bool) -> None:
    params, verifier = authorize_params(provider)
    response = token_request(http, provider, get_code(provider, params), verifier, secret="wrong", basic=basic)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_unsupported_grant_type(provider: LoopbackOIDCProvider, http: httpx.Client) -> None:
    response = http.post(provider.token_endpoint, data={"grant_type": "password"},
                         auth=(provider.client_id, provider.client_secret))
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"


# -- the authorize endpoint refuses ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("overrides", "error"), [
    ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
    ({"code_challenge_method": None}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"redirect_uri": "http://evil.example/callback"}, "invalid_request"),
    ({"client_id": "someone-else"}, "invalid_client"),
    ({"state": None}, "invalid_request"),
    ({"nonce": None}, "invalid_request"),
    ({"scope": "profile email"}, "invalid_scope"),
    ({"response_type": "token"}, "unsupported_response_type"),
], ids=["no-pkce", "no-method", "plain", "unregistered-redirect", "unknown-client", "no-state", "no-nonce",
        "no-openid", "implicit"])
def test_authorize_rejects(provider: LoopbackOIDCProvider, http: httpx.Client, overrides: dict[str, str | None],
                           error: str) -> None:
    params, _ = authorize_params(provider, **overrides)
    response = http.get(provider.authorization_endpoint, params=params)
    assert response.status_code == 400 and "location" not in response.headers
    assert response.json()["error"] == error
    assert provider.authorize_requests == [params]
    with pytest.raises(OIDCProviderError, match="400"):
        provider.follow_authorize(str(response.request.url))


# -- misbehaviour modes -------------------------------------------------------------------------------------------

def test_mode_wrong_nonce(provider: LoopbackOIDCProvider, http: httpx.Client) -> None:
    provider.mode = "wrong_nonce"
    token, nonce = sign_in(http, provider)
    assert unverified_claims(token["id_token"])["nonce"] != nonce
    with pytest.raises(InvalidClaimError, match="nonce"):
        verify_id_token(http, provider, token, nonce)


def test_mode_bad_signature(provider: LoopbackOIDCProvider, http: httpx.Client) -> None:
    provider.mode = "bad_signature"
    token, nonce = sign_in(http, provider)
    header = extract_compact(token["id_token"].encode()).headers()  # same kid as the published key
    assert header["kid"] == provider.kid
    with pytest.raises(BadSignatureError):
        verify_id_token(http, provider, token, nonce)


def test_mode_expired(provider: LoopbackOIDCProvider, http: httpx.Client) -> None:
    provider.mode = "expired"
    token, nonce = sign_in(http, provider)
    claims = unverified_claims(token["id_token"])
    assert claims["exp"] < time.time() - 3000 and claims["iat"] < claims["exp"]
    with pytest.raises(ExpiredTokenError):
        verify_id_token(http, provider, token, nonce)


def test_mode_wrong_audience(provider: LoopbackOIDCProvider, http: httpx.Client) -> None:
    provider.mode = "wrong_audience"
    token, nonce = sign_in(http, provider)
    assert unverified_claims(token["id_token"])["aud"] not in (provider.client_id, [provider.client_id])
    # Authlib's CodeIDToken has no aud check of its own: a foreign aud is refused because azp is then required
    with pytest.raises(MissingClaimError, match="azp"):
        verify_id_token(http, provider, token, nonce)


def test_unknown_mode_is_refused(provider: LoopbackOIDCProvider) -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        provider.mode = "sloppy"  # type: ignore[assignment]


# -- Authlib's starlette client, the one the app uses, against the provider ------------------------------------------

def starlette_client(provider: LoopbackOIDCProvider) -> Any:
    oauth = OAuth()
    return oauth.register("loopback", client_id=provider.client_id, client_secret=provider.client_secret,
                          server_metadata_url=provider.metadata_url,
                          client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256",
                                         "trust_env": False})


async def authlib_sign_in(provider: LoopbackOIDCProvider) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    client = starlette_client(provider)
    start = await client.create_authorization_url(REDIRECT_URI)
    callback = provider.follow_authorize(start["url"])
    query = parse_qs(urlsplit(callback).query)
    assert query["state"] == [start["state"]]
    token = await client.fetch_access_token(redirect_uri=REDIRECT_URI, code=query["code"][0],
                                            code_verifier=start["code_verifier"])
    return client, start, token


async def test_authlib_starlette_client_signs_in(provider: LoopbackOIDCProvider) -> None:
    client, start, token = await authlib_sign_in(provider)
    sent = provider.authorize_requests[-1]
    assert sent["code_challenge_method"] == "S256" and sent["nonce"] == start["nonce"]
    user = await client.parse_id_token(token, nonce=start["nonce"])
    assert user["sub"] == provider.user["sub"] and user["email"] == provider.user["email"]
    info = await client.userinfo(token=token)
    assert info["email_verified"] is True


async def test_authlib_starlette_client_with_claims_from_userinfo(provider: LoopbackOIDCProvider) -> None:
    provider.claims = "userinfo"
    client, start, token = await authlib_sign_in(provider)
    user = await client.parse_id_token(token, nonce=start["nonce"])
    assert user["sub"] == provider.user["sub"] and "email" not in user and "name" not in user
    info = await client.userinfo(token=token)
    assert dict(info) == provider.user


@pytest.mark.parametrize(("mode", "error"), [("wrong_nonce", InvalidClaimError), ("bad_signature", BadSignatureError),
                                             ("expired", ExpiredTokenError), ("wrong_audience", MissingClaimError)])
async def test_authlib_starlette_client_refuses_misbehaviour(provider: LoopbackOIDCProvider, mode: str,
                                                             error: type[JoseError]) -> None:
    provider.mode = mode  # type: ignore[assignment]
    client, start, token = await authlib_sign_in(provider)
    with pytest.raises(error):
        await client.parse_id_token(token, nonce=start["nonce"])


# -- lifecycle ----------------------------------------------------------------------------------------------------

def test_stop_leaves_no_thread_and_closes_the_port() -> None:
    before = set(threading.enumerate())
    provider = LoopbackOIDCProvider()
    with provider:
        url = provider.metadata_url
        assert provider.running
        assert httpx.get(url, trust_env=False).status_code == 200
    assert not provider.running
    assert set(threading.enumerate()) <= before
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, trust_env=False, timeout=2)
    provider.stop()  # idempotent


def test_unknown_path_is_404(provider: LoopbackOIDCProvider, http: httpx.Client) -> None:
    assert http.get(provider.issuer + "/nowhere").status_code == 404
    assert http.get(provider.token_endpoint).status_code == 405
