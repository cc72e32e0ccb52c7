"""Turning a verified OpenID Connect identity into a Rupali account.

Authlib has already checked state, nonce, PKCE and the ID token's signature, issuer, audience and expiry by the
time these functions run (see :mod:`rupali.oidc_client`). Here the rules are about accounts: an identity already
linked signs in; otherwise an account with the same address is linked only when the provider says the address
is verified; otherwise a new account is created, which must still confirm age and accept the policies.

The claims come from the ID token and, when it lacks some, from the provider's UserInfo endpoint (OpenID Connect
Core 5.4 lets a provider release ``email`` and ``profile`` claims only there); :func:`identity_from` merges the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from rupali.clock import now
from rupali.config import Settings
from rupali.models import OidcIdentity, User
from rupali.services import accounts, users


@dataclass(frozen=True)
class Identity:
    provider: str  # the issuer
    subject: str
    email: str
    email_verified: bool
    name: str


class OidcRefused(Exception):
    """The identity cannot be used to sign in; the message says why in plain words."""


PROFILE_CLAIMS = ("email", "email_verified", "name")  # what an Identity needs besides ``sub``


def lacks_profile(claims: Mapping[str, Any]) -> bool:
    """Whether the ID token's claims leave out any of :data:`PROFILE_CLAIMS` (so UserInfo should be asked)."""
    return any(claims.get(name) is None for name in PROFILE_CLAIMS)


def identity_from(provider: str, id_claims: Mapping[str, Any], userinfo: Mapping[str, Any] | None = None) -> Identity:
    """The identity described by the verified ID token's claims, completed from UserInfo's.

    ``userinfo`` must already be known to describe the same ``sub`` (OIDC Core 5.3.2). A claim in the ID token wins
    (a null counts as absent). ``email_verified`` counts only from the claim set whose ``email`` is the address
    used: a verification of one address must never vouch for another, and a flag without an address vouches for
    nothing.
    """
    sources = [id_claims] if userinfo is None else [id_claims, userinfo]

    def first(name: str) -> Any:
        return next((source[name] for source in sources if source.get(name) is not None), None)

    email = str(first("email") or "")
    verified = next((source.get("email_verified") is True for source in sources
                     if source.get("email") is not None and _same_address(str(source["email"]), email)
                     and source.get("email_verified") is not None), False)
    return Identity(provider=provider, subject=str(id_claims.get("sub") or ""), email=email, email_verified=verified,
                    name=str(first("name") or ""))


def _same_address(a: str, b: str) -> bool:
    """Equal as the accounts compare addresses (trimmed, case-insensitive), or exactly equal if not addresses."""
    try:
        return users.normalise_email(a) == users.normalise_email(b)
    except users.InvalidAccount:
        return a == b


def account_for(session: Session, settings: Settings, identity: Identity) -> User:
    """The account this identity signs in to, linking or creating one as the rules allow."""
    if not identity.subject:
        raise OidcRefused("The sign-in provider did not say who you are.")
    linked = session.exec(select(OidcIdentity).where(
        OidcIdentity.provider == identity.provider, OidcIdentity.subject == identity.subject)).first()
    if linked is not None:
        user = session.get(User, linked.user_id)
        if user is None or not user.is_active:
            raise OidcRefused(_refusal(settings, user))
        return user
    try:
        email = users.normalise_email(identity.email)
    except users.InvalidAccount:
        raise OidcRefused("The sign-in provider did not share a usable e-mail address.") from None
    existing = users.by_email(session, email)
    if existing is not None:
        if not identity.email_verified:
            raise OidcRefused("Your sign-in provider has not verified this e-mail address, so it cannot be linked "
                              "to the existing account. Sign in with your password instead.")
        if not existing.is_active:
            raise OidcRefused(_refusal(settings, existing))
        _link(session, existing, identity, email)
        existing.email_verified_at = existing.email_verified_at or now()
        session.add(existing)
        return existing
    name = " ".join(identity.name.split())[:200] or email.partition("@")[0]
    user = users.create(session, email=email, full_name=name, password=None)
    if identity.email_verified:
        user.email_verified_at = now()
        session.add(user)
    else:
        # The account is new, so this is its first link: no rate limit to run into.
        accounts.send_verification(session, settings, user)
    _link(session, user, identity, email)
    return user


def _refusal(settings: Settings, user: User | None) -> str:
    """Why an inactive account cannot sign in: an administrator's suspension gives its reason."""
    if user is not None and user.suspended_at is not None:
        return accounts.suspension_notice(settings, user)
    return "This account is disabled."


def _link(session: Session, user: User, identity: Identity, email: str) -> None:
    session.add(OidcIdentity(user_id=user.id, provider=identity.provider, subject=identity.subject, email=email))
    session.flush()
