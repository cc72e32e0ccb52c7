"""Local accounts: sign-up with the age gate, e-mail verification, sign-in, password and e-mail changes.

No account enumeration: sign-up, sign-in and reset answer the same way whether or not an address is known, and
a sign-in for an unknown address still spends the time of an Argon2 verification.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session, col, select

from rupali import mail_templates, passwords, tokens
from rupali.clock import now
from rupali.config import Settings, get_settings
from rupali.models import AccountToken, ConsentEvent, ConsentKind, PolicyAcceptance, RequestKind, TokenPurpose, User
from rupali.services import legal, mail, privacy_requests, ratelimit, sessions, users
from rupali.services.users import InvalidAccount

VERIFY_LIFETIME = timedelta(hours=48)
RESET_LIFETIME = timedelta(minutes=60)
EMAIL_CHANGE_LIFETIME = timedelta(hours=24)
ACCEPTED_DOCUMENTS = ("terms", "privacy")

# Verifying against a real hash keeps unknown addresses as slow as known ones.
_TIMING_DUMMY = passwords.hash_password("timing-equaliser-for-unknown-accounts")


class AccountError(Exception):
    """A refusal with a sentence for the person at the keyboard."""


class InvalidToken(AccountError):
    def __init__(self) -> None:
        super().__init__("This link has expired or was already used. Ask for a new one.")


class EmailNotVerified(AccountError):
    def __init__(self) -> None:
        super().__init__("Please confirm your e-mail address first. We have sent you a new link.")


class AccountSuspended(AccountError):
    """The account was suspended by an administrator; the message gives their reason and whom to ask."""

    def __init__(self, settings: Settings, user: User) -> None:
        super().__init__(suspension_notice(settings, user))


def suspension_notice(settings: Settings, user: User) -> str:
    """What a suspended person reads when they try to sign in (by password or single sign-on)."""
    reason = (user.suspension_reason or "").rstrip(". ") or "no reason was recorded"
    return (f"This account is suspended: {reason}. Contact {settings.operator_email} if you think this is a "
            "mistake.")


@dataclass(frozen=True)
class Consent:
    """What the sign-up form (or the welcome page after single sign-on) asks a person to confirm."""

    age_confirmed: bool
    accepted_policies: bool


# --- sign-up -----------------------------------------------------------------------------------------------------

def sign_up(session: Session, settings: Settings, *, email: str, full_name: str, password: str, consent: Consent,
            ip: str) -> None:
    """Create an account and mail the verification link. An address already in use gets a notice instead."""
    if not settings.password_signin:
        raise AccountError("This installation signs people in with single sign-on only.")
    email = users.normalise_email(email)
    full_name = users.clean_name(full_name)
    _check_password(password)
    _check_consent(settings, consent)
    ratelimit.check(session, settings, "signup", email=email, ip=ip)
    ratelimit.record(session, settings, "signup", email=email, ip=ip, succeeded=True)
    existing = users.by_email(session, email)
    if existing is not None:
        mail.enqueue(session, to=existing.email, user_id=existing.id, mail=mail_templates.signup_with_existing_address(
            existing.full_name, _link(settings, "/signin"), _link(settings, "/forgot")))
        return
    user = users.create(session, email=email, full_name=full_name, password=password)
    record_consent(session, settings, user, consent)
    send_verification(session, settings, user)


def record_consent(session: Session, settings: Settings, user: User, consent: Consent) -> None:
    """Record the age confirmation and acceptance of the current Terms and Privacy Policy versions."""
    _check_consent(settings, consent)
    moment = now()
    user.age_confirmed_at = user.age_confirmed_at or moment
    session.add(user)
    versions = {slug: legal.current(session, slug, settings).document.version for slug in ACCEPTED_DOCUMENTS}
    for slug, version in versions.items():
        session.add(PolicyAcceptance(user_id=user.id, document=slug, version=version, accepted_at=moment))
    # The consent log keeps every such choice with its policy version, as the privacy center shows it.
    source = "sign-up" if user.password_hash else "single-sign-on"
    for kind, version in ((ConsentKind.AGE, ""), (ConsentKind.TERMS, versions["terms"]),
                          (ConsentKind.PRIVACY, versions["privacy"])):
        session.add(ConsentEvent(user_id=user.id, kind=kind, granted=True, policy_version=version, source=source,
                                 at=moment))
    session.flush()


def resend_verification(session: Session, settings: Settings, *, email: str, ip: str) -> None:
    """Send a fresh verification link if the address belongs to an unverified account (silently otherwise)."""
    ratelimit.check(session, settings, "resend", email=email, ip=ip)
    ratelimit.record(session, settings, "resend", email=email, ip=ip, succeeded=True)
    user = users.by_email(session, email)
    if user is not None and user.email_verified_at is None:
        send_verification(session, settings, user)


def verify_email(session: Session, token: str) -> User:
    """Consume a verification link."""
    record = _consume(session, token, TokenPurpose.VERIFY_EMAIL)
    user = session.get(User, record.user_id)
    assert user is not None
    user.email_verified_at = user.email_verified_at or now()
    session.add(user)
    return user


# --- sign-in -----------------------------------------------------------------------------------------------------

def authenticate(session: Session, settings: Settings, *, email: str, password: str, ip: str) -> User:
    """Check e-mail and password; the same error for an unknown address and a wrong password."""
    if not settings.password_signin:
        raise AccountError("This installation signs people in with single sign-on only.")
    email = email.strip().lower()
    ratelimit.check(session, settings, "signin", email=email, ip=ip)
    user = users.by_email(session, email) if email else None
    valid = passwords.verify_password(user.password_hash if user else _TIMING_DUMMY, password)
    if user is None or not valid or not user.is_active:
        ratelimit.record(session, settings, "signin", email=email, ip=ip, succeeded=False)
        # The failure must count even though the caller's transaction is about to end in an error.
        session.commit()
        # Only the right password learns why a suspended account is refused: the address alone reveals nothing.
        if user is not None and valid and user.suspended_at is not None:
            raise AccountSuspended(settings, user)
        raise AccountError("Wrong e-mail address or password.")
    ratelimit.record(session, settings, "signin", email=email, ip=ip, succeeded=True)
    if user.password_hash and passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
        session.add(user)
    if user.email_verified_at is None:
        with contextlib.suppress(ratelimit.RateLimited):  # enough links are on their way already
            resend_verification(session, settings, email=email, ip=ip)
        session.commit()
        raise EmailNotVerified()
    return user


# --- password ----------------------------------------------------------------------------------------------------

def request_password_reset(session: Session, settings: Settings, *, email: str, ip: str) -> None:
    """Mail a reset link if the address has an account; answers the same either way."""
    email = email.strip().lower()
    if email:
        users.normalise_email(email)  # a malformed address gets a clear message
    ratelimit.check(session, settings, "reset", email=email, ip=ip)
    ratelimit.record(session, settings, "reset", email=email, ip=ip, succeeded=True)
    user = users.by_email(session, email)
    if user is None or not user.is_active:
        return
    token = _issue(session, user, TokenPurpose.RESET_PASSWORD, RESET_LIFETIME)
    mail.enqueue(session, to=user.email, user_id=user.id, mail=mail_templates.reset_password(
        user.full_name, _link(settings, f"/reset?token={token}"), int(RESET_LIFETIME.total_seconds() // 60)))


def token_is_usable(session: Session, token: str, purpose: TokenPurpose) -> bool:
    """Whether a link can still be used (to show the form or an expiry message before asking for input)."""
    return _find(session, token, purpose) is not None


def reset_password(session: Session, settings: Settings, *, token: str, new_password: str) -> User:
    """Set a new password from a reset link; ends every session of the account."""
    _check_password(new_password)
    record = _consume(session, token, TokenPurpose.RESET_PASSWORD)
    user = session.get(User, record.user_id)
    assert user is not None
    _set_password(session, settings, user, new_password)
    user.email_verified_at = user.email_verified_at or now()  # following the link proved the mailbox
    sessions.revoke_all(session, user)
    return user


def change_password(session: Session, settings: Settings, user: User, *, current: str, new: str,
                    keep_session_id: object) -> None:
    """Change the password (the current one is required); other sessions end."""
    if user.password_hash and not passwords.verify_password(user.password_hash, current):
        raise AccountError("Your current password is not correct.")
    _check_password(new)
    _set_password(session, settings, user, new)
    sessions.revoke_others(session, user, keep_session_id)


# --- e-mail address ----------------------------------------------------------------------------------------------

def request_email_change(session: Session, settings: Settings, user: User, *, new_email: str,
                         password: str) -> None:
    """Mail a confirmation link to the new address; nothing changes until it is followed."""
    if user.password_hash and not passwords.verify_password(user.password_hash, password):
        raise AccountError("Your password is not correct.")
    new_email = users.normalise_email(new_email)
    if new_email == user.email:
        raise AccountError("That is already your e-mail address.")
    if users.by_email(session, new_email) is not None:
        return  # same answer as success: the address's owner is not revealed
    token = _issue(session, user, TokenPurpose.CHANGE_EMAIL, EMAIL_CHANGE_LIFETIME, new_email=new_email)
    mail.enqueue(session, to=new_email, user_id=user.id, mail=mail_templates.confirm_new_email(
        user.full_name, _link(settings, f"/confirm-email?token={token}"),
        int(EMAIL_CHANGE_LIFETIME.total_seconds() // 3600)))


def confirm_email_change(session: Session, token: str) -> User:
    """Switch to the new address from its confirmation link and tell the old address."""
    record = _consume(session, token, TokenPurpose.CHANGE_EMAIL)
    user = session.get(User, record.user_id)
    assert user is not None and record.new_email is not None
    if users.by_email(session, record.new_email) is not None:
        raise AccountError("This address now belongs to another account.")
    old_email = user.email
    user.email, user.email_verified_at, user.updated_at = record.new_email, now(), now()
    session.add(user)
    mail.enqueue(session, to=old_email, user_id=user.id, mail=mail_templates.email_changed(
        user.full_name, record.new_email))
    privacy_requests.log_done(session, get_settings(), kind=RequestKind.RECTIFICATION, user_id=user.id,
                              outcome="E-mail address changed and confirmed from the new address")
    return user


def link_purpose(session: Session, token: str) -> TokenPurpose | None:
    """What an e-mail link is for, if it is still usable (``/verify`` serves two kinds of links)."""
    for purpose in (TokenPurpose.VERIFY_EMAIL, TokenPurpose.CHANGE_EMAIL):
        if _find(session, token, purpose) is not None:
            return purpose
    return None


def rename(session: Session, user: User, full_name: str) -> User:
    """Correct the name (GDPR rectification, logged as a request answered at once)."""
    name = users.clean_name(full_name)
    changed = name != user.full_name
    user.full_name = name
    user.updated_at = now()
    session.add(user)
    if changed:
        privacy_requests.log_done(session, get_settings(), kind=RequestKind.RECTIFICATION, user_id=user.id,
                                  outcome="Name corrected on the account page")
    return user


# --- helpers -----------------------------------------------------------------------------------------------------

def _check_password(password: str) -> None:
    try:
        passwords.check_strength(password)
    except passwords.WeakPassword as exc:
        raise InvalidAccount(str(exc)) from None


def _check_consent(settings: Settings, consent: Consent) -> None:
    if not consent.age_confirmed:
        raise AccountError(f"You must be at least {settings.minimum_age} years old to use Rupali.")
    if not consent.accepted_policies:
        raise AccountError("Please accept the Terms of Service and the Privacy Policy.")


def _set_password(session: Session, settings: Settings, user: User, password: str) -> None:
    user.password_hash = passwords.hash_password(password)
    user.password_changed_at = user.updated_at = now()
    session.add(user)
    mail.enqueue(session, to=user.email, user_id=user.id,
                 mail=mail_templates.password_changed(user.full_name, _link(settings, "/signin")))


def send_verification(session: Session, settings: Settings, user: User) -> None:
    """Mail a fresh single-use verification link (earlier links stop working)."""
    token = _issue(session, user, TokenPurpose.VERIFY_EMAIL, VERIFY_LIFETIME)
    mail.enqueue(session, to=user.email, user_id=user.id, mail=mail_templates.verify_email(
        user.full_name, _link(settings, f"/confirm-email?token={token}"), int(VERIFY_LIFETIME.total_seconds() // 3600)))


def _issue(session: Session, user: User, purpose: TokenPurpose, lifetime: timedelta, *,
           new_email: str | None = None) -> str:
    """A new single-use token; earlier unused ones of the same purpose stop working."""
    for earlier in session.exec(select(AccountToken).where(
            AccountToken.user_id == user.id, AccountToken.purpose == purpose, col(AccountToken.used_at).is_(None))):
        earlier.used_at = now()
        session.add(earlier)
    token = tokens.new_token()
    session.add(AccountToken(user_id=user.id, purpose=purpose, token_hash=tokens.digest(token),
                             new_email=new_email, expires_at=now() + lifetime))
    session.flush()
    return token


def _find(session: Session, token: str, purpose: TokenPurpose) -> AccountToken | None:
    if not token or len(token) > 200:
        return None
    record = session.exec(select(AccountToken).where(
        AccountToken.token_hash == tokens.digest(token), AccountToken.purpose == purpose)).first()
    if record is None or record.used_at is not None or record.expires_at <= now():
        return None
    return record


def _consume(session: Session, token: str, purpose: TokenPurpose) -> AccountToken:
    record = _find(session, token, purpose)
    if record is None:
        raise InvalidToken()
    record.used_at = now()
    session.add(record)
    session.flush()
    return record


def _link(settings: Settings, path: str) -> str:
    return settings.public_url + path
