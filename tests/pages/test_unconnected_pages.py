"""Pages nobody connects to (a crawler, a link preview) are let go promptly; a cancelled builder stops quietly."""

from __future__ import annotations

import asyncio
import time

import pytest
from nicegui import Client, app
from nicegui.testing import User

from components import blocking
from rupali.config import reset_settings
from tests.services.test_gallery import add_generation
from tests.utils.factories import make_user
from tests.utils.signin import sign_in


@pytest.fixture
def connect_within_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set before the app is built: list it before ``user``."""
    monkeypatch.setenv("RUPALI_PAGE_CONNECT_SECONDS", "1")
    reset_settings()


@pytest.fixture
def errors(user: User) -> list[Exception]:
    caught: list[Exception] = []
    app.on_exception(caught.append)
    return caught


async def test_a_page_whose_socket_never_connects_is_released(connect_within_a_second, user: User,
                                                               errors: list[Exception]):
    owner = make_user()
    add_generation(owner, "a paper lantern", images=2)
    await sign_in(user, owner.email)
    for path in ("/gallery", "/studio", "/legal/privacy"):
        before = set(Client.instances)
        response = await user.http_client.get(path)  # the HTML only, as a crawler fetches it
        assert response.status_code == 200, path
        waiting = set(Client.instances) - before
        assert len(waiting) == 1, path  # the page, waiting for its browser
        for _ in range(60):
            if not waiting & set(Client.instances):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"{path}: the unconnected page was still kept 3 s later")
    assert errors == []


async def test_a_prefetched_page_is_kept_longer_but_not_for_ever(connect_within_a_second, user: User,
                                                                  errors: list[Exception]):
    before = set(Client.instances)
    response = await user.http_client.get("/legal/terms", headers={"Sec-Purpose": "prefetch"})
    assert response.status_code == 200
    [waiting] = set(Client.instances) - before
    await asyncio.sleep(2)
    assert waiting in Client.instances  # a browser may still show it
    for _ in range(120):
        if waiting not in Client.instances:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the prefetched page was kept past its limit")
    assert errors == []


async def test_a_cancelled_call_raises_cancelled_instead_of_answering_none():
    started, loop = asyncio.Event(), asyncio.get_running_loop()

    def slow() -> str:
        loop.call_soon_threadsafe(started.set)
        time.sleep(0.3)
        return "done"

    task = asyncio.create_task(blocking.io_bound(slow))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await blocking.io_bound(lambda: None) is None  # a service that answers None still may
