"""Two ``rupali serve`` processes on one database and one Redis, as behind a load balancer.

A session revoked on one instance ends at the next request on the other, although that one had just resolved it
(and keeps resolutions for a few seconds); the scheduler runs on one of them; rate limits are counted together.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rupali.config import get_settings
from rupali.db import session_scope
from rupali.gate import AUTH_COOKIE
from rupali.models import User
from rupali.services import sessions
from tests.utils.factories import make_user
from tests.utils.serve import serve

SECRET = "a-storage-secret-every-instance-shares-0123456789"


@pytest.fixture
def two_instances(shared_redis: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    extra = {"RUPALI_STORAGE_SECRET": SECRET}
    with serve(tmp_path, "first", extra) as first, serve(tmp_path, "second", extra) as second:
        yield first, second


def signed_in_token(user: User) -> str:
    with session_scope() as session:
        code = sessions.start(session, get_settings(), user, method="password", ip="", user_agent="",
                              visitor_id="v")
        return sessions.complete_handoff(session, code, "v")


def test_a_session_revoked_through_one_instance_ends_at_once_on_the_other(two_instances):
    first, second = two_instances
    user = make_user()
    token = signed_in_token(user)
    # The cookie goes with every request as a header: a client's cookie jar would drop it at sign-out, and the
    # second instance would then be refusing a request without a cookie rather than a revoked session.
    cookie = {"Cookie": f"{AUTH_COOKIE}={token}"}

    def gallery(base: str) -> httpx.Response:
        return httpx.get(f"{base}/gallery", headers=cookie, follow_redirects=False)

    assert gallery(second).status_code == 200  # the second instance has resolved it, and keeps that for seconds
    assert httpx.post(f"{first}/auth/signout", headers=cookie, follow_redirects=False).status_code == 303
    started = time.monotonic()
    while (answer := gallery(second)).status_code == 200:
        assert time.monotonic() - started < 2.5, "the second instance still served the revoked session"
        time.sleep(0.05)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/signin")
    assert time.monotonic() - started < sessions.CACHE_SECONDS.total_seconds() / 2


def test_one_of_the_two_runs_the_scheduled_jobs(two_instances):
    deadline = time.monotonic() + 15
    while True:
        leaders = [httpx.get(f"{base}/healthz").json()["scheduler_leader"] for base in two_instances]
        if sum(leaders) == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted(leaders) == [False, True]
