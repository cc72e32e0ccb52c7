"""The remembered "does this handler take arguments?" answers exactly as NiceGUI's own function does."""

from __future__ import annotations

import functools
from typing import Any

from nicegui import helpers
from nicegui.helpers import functions
from nicegui.testing import User

from components import signatures


class _Handlers:
    def with_event(self, event: Any) -> None: ...
    def without(self) -> None: ...
    def optional(self, event: Any = None) -> None: ...
    async def coroutine(self, event: Any) -> None: ...


def _cases() -> list[Any]:
    handlers, other = _Handlers(), _Handlers()

    def plain(a: Any, b: Any = 1) -> None: ...

    return [handlers.with_event, other.with_event, handlers.without, other.without, handlers.optional,
            handlers.coroutine, _Handlers.with_event, _Handlers.without, plain, lambda: None, lambda event: None,
            lambda *args: None, functools.partial(plain, 1), functools.partial(plain), print, len]


def test_every_kind_of_handler_gets_nicegui_s_answer_twice_over():
    for case in _cases():
        expected = functions.expects_arguments(case)
        assert signatures.expects_arguments(case) is expected, case
        assert signatures.expects_arguments(case) is expected, case  # and again, from the memo


def test_an_unbound_function_and_its_bound_method_are_told_apart():
    handlers = _Handlers()
    assert signatures.expects_arguments(_Handlers.without) is True  # needs self
    assert signatures.expects_arguments(handlers.without) is False  # self is bound


async def test_the_running_app_uses_the_memo(user: User):
    await user.open("/legal/cookies")
    assert helpers.expects_arguments is signatures.expects_arguments
