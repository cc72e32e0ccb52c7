"""Factories for test data, going through the same services the product uses."""

from __future__ import annotations

import itertools

from rupali.db import session_scope
from rupali.models import Role, User
from rupali.services import users

_counter = itertools.count(1)
PASSWORD = "correct horse battery staple"


def make_user(*, email: str | None = None, full_name: str = "Ada Lovelace", role: Role | None = Role.USER,
              password: str | None = PASSWORD) -> User:
    with session_scope() as session:
        return users.create(session, email=email or f"user{next(_counter)}@example.com", full_name=full_name,
                            password=password, role=role)
