"""Random secrets and their digests. Only digests are stored; the secret lives in a mail link or a cookie."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from rupali.config import Settings, storage_secret


def new_token() -> str:
    """A URL-safe secret with 256 bits of entropy."""
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """SHA-256 of a high-entropy token (a slow hash adds nothing for 256-bit secrets)."""
    # surrogatepass: any string has a digest (a malformed one simply matches nothing) instead of raising.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def keyed(value: str, settings: Settings) -> str:
    """HMAC-SHA-256 of a low-entropy value (e-mail, IP) keyed by the server secret, so it cannot be reversed."""
    return hmac.new(storage_secret(settings).encode(), value.encode("utf-8", "surrogatepass"),
                    hashlib.sha256).hexdigest()
