"""Password hashing with Argon2id (argon2-cffi), rehashed when the parameters change."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from rupali.text import is_valid_unicode

_hasher = PasswordHasher()  # argon2-cffi's defaults follow RFC 9106's recommended Argon2id profile

MIN_LENGTH = 10
MAX_LENGTH = 1024  # hashing cost grows with length; refuse absurd inputs before they reach Argon2


class WeakPassword(ValueError):
    """The password does not meet the minimum rules."""


def check_strength(password: str) -> None:
    """Raise :class:`WeakPassword` with a user-facing sentence when the password is unacceptable."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"Use at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"Use at most {MAX_LENGTH} characters.")
    if password.strip() == "":
        raise WeakPassword("A password cannot be only spaces.")
    if not is_valid_unicode(password) or "\0" in password:
        raise WeakPassword("The password contains characters that are not valid text. Please retype it.")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant-time check; ``False`` for a missing or corrupt hash."""
    if not stored_hash or len(password) > MAX_LENGTH or not is_valid_unicode(password):
        return False  # a password that could never have been set cannot match
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)
