"""Factories for test data, going through the same services the product uses."""

from __future__ import annotations

import itertools

from rupali.clock import now
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.models import Role, User
from rupali.services import accounts, users

_counter = itertools.count(1)
PASSWORD = "correct horse battery staple"


def make_user(*, email: str | None = None, full_name: str = "Ada Lovelace", role: Role | None = Role.USER,
              password: str | None = PASSWORD, onboarded: bool = True) -> User:
    """An account; ``onboarded`` ones have confirmed their age and e-mail address."""
    with session_scope() as session:
        user = users.create(session, email=email or f"user{next(_counter)}@example.com", full_name=full_name,
                            password=password, role=role)
        if onboarded:
            # Through the sign-up consent path, so the policy acceptances and consent log exist as for a real person.
            accounts.record_consent(session, get_settings(), user, accounts.Consent(True, True))
            user.email_verified_at = user.age_confirmed_at = now()
            session.add(user)
        return user
