"""Signing a simulated browser in through the real sign-in page."""

from __future__ import annotations

import asyncio

from nicegui import ui
from nicegui.testing import User

from tests.utils.factories import PASSWORD


async def submit_signin(user: User, email: str, password: str = PASSWORD, *, next_path: str = "") -> None:
    """Open the sign-in page and submit the form (without waiting for the outcome)."""
    await user.open("/signin" + (f"?next={next_path}" if next_path else ""))
    user.find(kind=ui.input, content="E-mail address").type(email)
    user.find(kind=ui.input, content="Password").type(password)
    user.find(kind=ui.button, content="Sign in").click()


async def sign_in(user: User, email: str, password: str = PASSWORD, *, next_path: str = "") -> None:
    """Sign in through the form and wait until the browser has landed on the next page, signed in."""
    await submit_signin(user, email, password, next_path=next_path)
    await wait_for_page(user, lambda path: path.startswith("/auth/complete"))


async def wait_for_page(user: User, matches, timeout: float = 5.0) -> str:
    """Wait until the simulated browser has finished opening a page whose path ``matches``."""
    for _ in range(int(timeout / 0.02)):
        if user.back_history and matches(user.back_history[-1]):
            return user.back_history[-1]
        await asyncio.sleep(0.02)
    raise AssertionError(f"never reached the expected page; history: {user.back_history}")
