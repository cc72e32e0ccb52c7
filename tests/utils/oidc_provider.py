"""A real OpenID Connect provider on loopback, for testing sign-in against HTTP rather than mocks.

It stands in for Clerk's OAuth application, Google or Keycloak: discovery, JWKS, an auto-approving
authorization endpoint (code flow, PKCE S256 only, state and nonce required), a token endpoint
(``client_secret_basic`` or ``client_secret_post``) issuing RS256 ID tokens, and UserInfo.

    with running_provider(redirect_uris=["http://test/auth/oidc/callback"]) as provider:
        provider.user = {"sub": "u-1", "email": "ada@example.com", "email_verified": True, "name": "Ada"}
        provider.mode = "wrong_nonce"  # or "bad_signature", "expired", "wrong_audience"
        provider.claims = "userinfo"  # the ID token carries only ``sub``; profile and e-mail come from UserInfo
        provider.userinfo_sub = "someone-else"  # UserInfo answers for another subject
        provider.userinfo_failure = "server_error"  # or "invalid_token", "not_json", "not_object", "hang_up"
        provider.userinfo_published = False  # the discovery document names no userinfo_endpoint
        ...
        callback_url = provider.follow_authorize(authorize_url_the_app_redirected_to)

UserInfo is as strict as OpenID Connect Core 5.3 allows: a Bearer access token in the Authorization header (401 with
``WWW-Authenticate`` otherwise), ``sub`` always, otherwise only the claims of the granted scopes (5.4), and absent
claims omitted rather than sent as null (5.3.2). In the default ``claims = "id_token"`` the ID token carries all of
``user`` as well, as Clerk and Google do; ``claims = "userinfo"`` is what many certified providers do by default.

Every call is recorded in ``authorize_requests`` / ``token_requests`` / ``userinfo_requests``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, get_args
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from tests.utils.loopback import JoiningHTTPServer, LoopbackHandler, LoopbackHTTPServer

Mode = Literal["ok", "wrong_nonce", "bad_signature", "expired", "wrong_audience"]
MODES: tuple[str, ...] = get_args(Mode)
Claims = Literal["id_token", "userinfo"]  # where the user's claims besides ``sub`` are released
CLAIMS: tuple[str, ...] = get_args(Claims)
UserinfoFailure = Literal["server_error", "invalid_token", "not_json", "not_object", "hang_up"]
USERINFO_FAILURES: tuple[str, ...] = get_args(UserinfoFailure)

DEFAULT_CLIENT_ID = "rupali-test-client"
DEFAULT_REDIRECT_URIS = ("http://test/auth/oidc/callback",)
CODE_LIFETIME = 60
TOKEN_LIFETIME = 300
SCOPES_SUPPORTED = ["openid", "profile", "email"]
CLAIMS_SUPPORTED = ["iss", "sub", "aud", "iat", "exp", "auth_time", "nonce", "at_hash", "email", "email_verified",
                    "name"]
# The claims each scope releases (OIDC Core 5.4); a claim in no granted scope is not released.
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": ("name", "family_name", "given_name", "middle_name", "nickname", "preferred_username", "profile",
                "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at"),
    "email": ("email", "email_verified"),
    "address": ("address",),
    "phone": ("phone_number", "phone_number_verified"),
}
_PKCE_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def default_user() -> dict[str, Any]:
    """The user the provider signs in unless a test sets ``provider.user``."""
    return {"sub": "oidc-user-1", "email": "ada@example.com", "email_verified": True, "name": "Ada Lovelace"}


def s256(verifier: str) -> str:
    """The PKCE S256 code challenge for a code verifier (RFC 7636 section 4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")


def _half_hash(value: str) -> str:
    """``at_hash`` for RS256: base64url of the left half of SHA-256 (OIDC Core 3.1.3.6)."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


class OIDCProviderError(RuntimeError):
    """The loopback provider did not answer as a test expected."""


@dataclass
class _Grant:
    """An authorization code and what it is bound to."""

    client_id: str
    redirect_uri: str
    nonce: str
    code_challenge: str
    scope: str
    user: dict[str, Any]
    claims: Claims  # the setting at authorize time: a test changing it later does not affect this sign-in
    auth_time: int
    expires_at: float


@dataclass
class _AccessToken:
    user: dict[str, Any]
    scope: str
    expires_at: float


@dataclass
class _State:
    codes: dict[str, _Grant] = field(default_factory=dict)
    tokens: dict[str, _AccessToken] = field(default_factory=dict)


class _Reply(Exception):  # control flow, not an error
    """Raised inside a handler to send a JSON (or redirect, or ``raw``) response."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None, *,
                 raw: bytes | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body  # JSON, normally an object (a list only to play a broken provider)
        self.raw = raw  # sent as is, with the Content-Type in ``headers``
        self.headers = headers or {}


class _HangUp(Exception):  # control flow, not an error
    """Raised inside a handler to close the connection without any response."""


def _error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, {"error": error, "error_description": description}, headers)


class _Server(JoiningHTTPServer):
    owner: LoopbackOIDCProvider


class _Handler(LoopbackHandler):
    server: _Server

    def _dispatch(self, method: str) -> None:
        provider = self.server.owner
        parts = urlsplit(self.path)
        routes = {
            ("GET", "/.well-known/openid-configuration"): lambda: provider.metadata,
            ("GET", "/jwks"): lambda: provider.jwks,
            ("GET", "/authorize"): lambda: provider._authorize(dict(parse_qsl(parts.query, keep_blank_values=True))),
            ("POST", "/token"): lambda: provider._token(self._form(), self.headers.get("Authorization")),
            ("GET", "/userinfo"): lambda: provider._userinfo(self.headers.get("Authorization")),
            ("POST", "/userinfo"): lambda: provider._userinfo(self.headers.get("Authorization")),
        }
        route = routes.get((method, parts.path))
        try:
            if route is None:
                known = {path for _, path in routes}
                raise (_Reply(405, {"error": "method_not_allowed"}) if parts.path in known
                       else _Reply(404, {"error": "not_found"}))
            self._send(_Reply(200, route()))
        except _Reply as reply:
            self._send(reply)
        except _HangUp:
            self.close_connection = True
        except Exception as exc:  # a bug in the provider: say so rather than drop the connection
            self._send(_Reply(500, {"error": "server_error", "error_description": repr(exc)}))

    def _form(self) -> dict[str, str]:
        raw = self.read_body()
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise _error(400, "invalid_request", "the token request must be application/x-www-form-urlencoded")
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
        names = [name for name, _ in pairs]
        if len(names) != len(set(names)):
            raise _error(400, "invalid_request", "a parameter was repeated")
        return dict(pairs)

    def _send(self, reply: _Reply) -> None:
        if reply.raw is not None:
            body = reply.raw
        else:
            body = b"" if reply.body is None else json.dumps(reply.body).encode("utf-8")
        self.send_response(reply.status)
        if reply.body is not None and reply.raw is None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Pragma", "no-cache")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class LoopbackOIDCProvider(LoopbackHTTPServer):
    """An OpenID Connect provider served over real HTTP on 127.0.0.1 from a background thread."""

    handler_class = _Handler
    server_class = _Server
    error_class = OIDCProviderError
    thread_name = "loopback-oidc"
    noun = "provider"
    _mode: Mode
    _claims: Claims
    _userinfo_failure: UserinfoFailure | None
    _server: _Server | None

    def __init__(self, *, client_id: str = DEFAULT_CLIENT_ID, client_secret: str | None = None,
                 redirect_uris: list[str] | tuple[str, ...] = DEFAULT_REDIRECT_URIS,
                 user: dict[str, Any] | None = None, mode: Mode = "ok", claims: Claims = "id_token",
                 host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self.client_id = client_id
        self.client_secret = client_secret if client_secret is not None else secrets.token_urlsafe(32)
        self.redirect_uris: list[str] = list(redirect_uris)
        self.user: dict[str, Any] = user if user is not None else default_user()
        self.mode = mode
        self.claims = claims
        # What UserInfo says about the user when a test wants it to differ from ``user`` (default: ``user``).
        self.userinfo_user: dict[str, Any] | None = None
        self.userinfo_sub: str | None = None  # answer for this subject instead of the signed-in one
        self.userinfo_failure = None
        self.userinfo_published = True  # False: the discovery document leaves out userinfo_endpoint
        self.kid = f"loopback-{secrets.token_hex(4)}"
        self.key = RSAKey.generate_key(2048, parameters={"kid": self.kid, "alg": "RS256", "use": "sig"})
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, Any]] = []
        self.userinfo_requests: list[dict[str, str | None]] = []
        self._lock = threading.Lock()
        self._state = _State()

    # -- addresses and documents -----------------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        return self._origin

    @property
    def base_url(self) -> str:
        return self.issuer

    @property
    def metadata_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.issuer}/authorize"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    @property
    def userinfo_endpoint(self) -> str:
        return f"{self.issuer}/userinfo"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    @property
    def mode(self) -> Mode:
        return self._mode

    @mode.setter
    def mode(self, value: Mode) -> None:
        if value not in MODES:
            raise ValueError(f"unknown mode {value!r}; expected one of {MODES}")
        self._mode = value

    @property
    def claims(self) -> Claims:
        """Where the user's claims besides ``sub`` are released: in the ID token too, or from UserInfo only."""
        return self._claims

    @claims.setter
    def claims(self, value: Claims) -> None:
        if value not in CLAIMS:
            raise ValueError(f"unknown claims {value!r}; expected one of {CLAIMS}")
        self._claims = value

    @property
    def userinfo_failure(self) -> UserinfoFailure | None:
        """How UserInfo fails (``None``: it answers): 500, 401 for a good token, HTML, a JSON list, or no answer."""
        return self._userinfo_failure

    @userinfo_failure.setter
    def userinfo_failure(self, value: UserinfoFailure | None) -> None:
        if value is not None and value not in USERINFO_FAILURES:
            raise ValueError(f"unknown userinfo_failure {value!r}; expected None or one of {USERINFO_FAILURES}")
        self._userinfo_failure = value

    @property
    def metadata(self) -> dict[str, Any]:
        """The discovery document (the UserInfo endpoint is OPTIONAL in it, OIDC Discovery 3)."""
        userinfo = {"userinfo_endpoint": self.userinfo_endpoint} if self.userinfo_published else {}
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.authorization_endpoint,
            "token_endpoint": self.token_endpoint,
            **userinfo,
            "jwks_uri": self.jwks_uri,
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": list(SCOPES_SUPPORTED),
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "claims_supported": list(CLAIMS_SUPPORTED),
        }

    @property
    def jwks(self) -> dict[str, Any]:
        """The published key set: the public half of ``key`` only."""
        return KeySet([self.key]).as_dict(private=False)

    @cached_property
    def rogue_key(self) -> RSAKey:
        """An unpublished key with the published ``kid``: what ``bad_signature`` signs with."""
        return RSAKey.generate_key(2048, parameters={"kid": self.kid, "alg": "RS256", "use": "sig"})

    def sign(self, claims: dict[str, Any], *, key: RSAKey | None = None) -> str:
        """An RS256 JWT with this provider's ``kid`` (signed by ``key``, default the published key)."""
        return jwt.encode({"alg": "RS256", "typ": "JWT", "kid": self.kid}, claims, key or self.key)

    # -- test helpers ----------------------------------------------------------------------------------------------

    def follow_authorize(self, location_url: str) -> str:
        """GET the authorize URL the app redirected to and return the Location of the provider's 302.

        That Location is the app's callback URL carrying ``code`` and ``state``; nothing connects to it.
        """
        if not location_url.startswith(self.authorization_endpoint + "?"):
            raise OIDCProviderError(f"not an authorize URL of this provider: {location_url}")
        with httpx.Client(trust_env=False, follow_redirects=False, timeout=10) as client:
            response = client.get(location_url)
        if response.status_code != 302 or "location" not in response.headers:
            raise OIDCProviderError(f"authorize answered {response.status_code}: {response.text}")
        return response.headers["location"]

    def clear_records(self) -> None:
        """Forget recorded requests (codes and tokens stay valid)."""
        with self._lock:
            self.authorize_requests.clear()
            self.token_requests.clear()
            self.userinfo_requests.clear()

    # -- endpoints -------------------------------------------------------------------------------------------------

    def _authorize(self, params: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            self.authorize_requests.append(dict(params))
        if params.get("client_id") != self.client_id:
            raise _error(400, "invalid_client", "unknown client_id")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in self.redirect_uris:
            raise _error(400, "invalid_request", "redirect_uri is not registered for this client")
        if params.get("response_type") != "code":
            raise _error(400, "unsupported_response_type", "only response_type=code is supported")
        scope = params.get("scope", "")
        if "openid" not in scope.split():
            raise _error(400, "invalid_scope", "scope must contain openid")
        for name in ("state", "nonce", "code_challenge"):
            if not params.get(name):
                raise _error(400, "invalid_request", f"{name} is required")
        if params.get("code_challenge_method") != "S256":
            raise _error(400, "invalid_request", "code_challenge_method must be S256")
        if not _PKCE_RE.match(params["code_challenge"]):
            raise _error(400, "invalid_request", "malformed code_challenge")
        code = secrets.token_urlsafe(32)
        now = time.time()
        grant = _Grant(client_id=self.client_id, redirect_uri=redirect_uri, nonce=params["nonce"],
                       code_challenge=params["code_challenge"], scope=scope, user=dict(self.user),
                       claims=self.claims, auth_time=int(now), expires_at=now + CODE_LIFETIME)
        with self._lock:
            self._state.codes[code] = grant
        separator = "&" if urlsplit(redirect_uri).query else "?"
        location = redirect_uri + separator + urlencode({"code": code, "state": params["state"]})
        raise _Reply(302, None, {"Location": location})

    def _authenticate_client(self, form: dict[str, str], authorization: str | None) -> None:
        basic = authorization is not None and authorization.lower().startswith("basic ")
        if basic and "client_secret" in form:
            raise _error(400, "invalid_request", "use one client authentication method")
        if basic:
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise _error(401, "invalid_client", "malformed Basic credentials",
                             {"WWW-Authenticate": 'Basic realm="token"'}) from None
            raw_id, _, raw_secret = decoded.partition(":")
            client_id, client_secret = unquote(raw_id.replace("+", " ")), unquote(raw_secret.replace("+", " "))
            if form.get("client_id", client_id) != client_id:
                raise _error(400, "invalid_request", "client_id does not match the credentials")
            challenge = {"WWW-Authenticate": 'Basic realm="token"'}
        else:
            client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
            challenge = {}
        if not (secrets.compare_digest(client_id.encode(), self.client_id.encode())
                and secrets.compare_digest(client_secret.encode(), self.client_secret.encode())):
            raise _error(401, "invalid_client", "client authentication failed", challenge)

    def _token(self, form: dict[str, str], authorization: str | None) -> dict[str, Any]:
        with self._lock:
            self.token_requests.append({"form": dict(form), "authorization": authorization})
        self._authenticate_client(form, authorization)
        if form.get("grant_type") != "authorization_code":
            raise _error(400, "unsupported_grant_type", "only authorization_code is supported")
        code = form.get("code")
        if not code:
            raise _error(400, "invalid_request", "code is required")
        with self._lock:
            grant = self._state.codes.pop(code, None)  # single use: whatever happens next, it is spent
        if grant is None or grant.expires_at < time.time():
            raise _error(400, "invalid_grant", "unknown, used or expired code")
        if grant.client_id != self.client_id:
            raise _error(400, "invalid_grant", "code was issued to another client")
        if form.get("redirect_uri") != grant.redirect_uri:
            raise _error(400, "invalid_grant", "redirect_uri does not match the authorize request")
        verifier = form.get("code_verifier", "")
        if not _PKCE_RE.match(verifier) or not secrets.compare_digest(s256(verifier), grant.code_challenge):
            raise _error(400, "invalid_grant", "PKCE verification failed")
        access_token = secrets.token_urlsafe(32)
        with self._lock:
            self._state.tokens[access_token] = _AccessToken(user=grant.user, scope=grant.scope,
                                                            expires_at=time.time() + TOKEN_LIFETIME)
        return {"access_token": access_token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME,
                "id_token": self._id_token(grant, access_token), "scope": grant.scope}

    def _id_token(self, grant: _Grant, access_token: str) -> str:
        now = int(time.time())
        mode = self.mode
        released = grant.user if grant.claims == "id_token" else {"sub": grant.user["sub"]}
        claims: dict[str, Any] = {**released, "iss": self.issuer, "aud": self.client_id, "iat": now,
                                  "exp": now + TOKEN_LIFETIME, "auth_time": grant.auth_time, "nonce": grant.nonce,
                                  "at_hash": _half_hash(access_token)}
        if mode == "wrong_nonce":
            claims["nonce"] = "not-" + grant.nonce
        elif mode == "expired":
            claims.update(iat=now - 7200, exp=now - 3600, auth_time=now - 7200)
        elif mode == "wrong_audience":
            claims["aud"] = "some-other-client"
        return self.sign(claims, key=self.rogue_key if mode == "bad_signature" else self.key)

    def _userinfo(self, authorization: str | None) -> dict[str, Any]:
        with self._lock:
            self.userinfo_requests.append({"authorization": authorization})
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        if authorization is None or not authorization.lower().startswith("bearer "):
            # No credentials at all: a bare challenge without an error code (RFC 6750 section 3.1).
            raise _Reply(401, {"error": "invalid_token"}, {"WWW-Authenticate": "Bearer"})
        with self._lock:
            token = self._state.tokens.get(authorization[7:].strip())
        if token is None or token.expires_at < time.time():
            raise _Reply(401, {"error": "invalid_token"}, challenge)
        failure = self.userinfo_failure
        if failure == "server_error":
            raise _error(500, "server_error", "the user store is unavailable")
        if failure == "invalid_token":  # e.g. the provider revoked the token between the two requests
            raise _Reply(401, {"error": "invalid_token"}, challenge)
        if failure == "hang_up":
            raise _HangUp
        if failure == "not_json":
            raise _Reply(200, None, {"Content-Type": "text/html; charset=utf-8"}, raw=b"<html>Sign in</html>")
        user = self.userinfo_user if self.userinfo_user is not None else token.user
        granted = {claim for scope in token.scope.split() for claim in SCOPE_CLAIMS.get(scope, ())}
        # ``sub`` always; other claims only for a granted scope, and an absent claim omitted rather than null.
        answer = {"sub": self.userinfo_sub if self.userinfo_sub is not None else token.user["sub"]}
        answer |= {name: value for name, value in user.items() if name in granted and value is not None}
        if failure == "not_object":
            raise _Reply(200, [answer])
        return answer


@contextmanager
def running_provider(**kwargs: Any) -> Iterator[LoopbackOIDCProvider]:
    """A started :class:`LoopbackOIDCProvider` (constructor ``kwargs``), stopped on exit."""
    provider = LoopbackOIDCProvider(**kwargs)
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()
