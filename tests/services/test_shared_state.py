"""What instances share through Redis: the rate-limit windows, and news of changed sessions and accounts.

Each "instance" here is what one process builds for itself (its own limiter and storage connection, its own
subscription); the two-process version is ``tests/api/test_instances.py``.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.models import User
from rupali.revocations import Revocations
from rupali.services import abuse, sessions
from tests.utils.factories import make_user

API = "Too many requests; wait {wait}."


@pytest.fixture
def three_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUPALI_RATE_LIMIT_API_PER_MINUTE", "3")
    reset_settings()


def instance_limiter() -> abuse._Limiter:
    # What each process builds from the same settings.
    return abuse._Limiter.build(get_settings())


def test_with_redis_two_instances_count_in_the_same_window(shared_redis, three_a_minute):
    first, second = instance_limiter(), instance_limiter()
    person = uuid.uuid4()
    first.admit(first.api, person, "198.51.100.7", API)
    first.admit(first.api, person, "198.51.100.8", API)
    second.admit(second.api, person, "198.51.100.9", API)
    with pytest.raises(abuse.RateLimited) as refused:
        second.admit(second.api, person, "198.51.100.10", API)
    assert 55 <= refused.value.retry_after <= 60
    with pytest.raises(abuse.RateLimited):
        first.admit(first.api, person, "198.51.100.11", API)
    # Addresses reach Redis only as keyed hashes.
    client = redis.Redis.from_url(get_settings().redis_url.get_secret_value())
    keys = b" ".join(client.scan_iter(f"{shared_redis}*"))
    assert keys and b"198.51.100" not in keys and str(person).encode() in keys


def test_without_redis_each_instance_counts_alone(three_a_minute):
    # The contrast that gives the test above its meaning: in-process windows are not shared.
    first, second = instance_limiter(), instance_limiter()
    person = uuid.uuid4()
    for limiter in (first, first, first, second, second, second):
        limiter.admit(limiter.api, person, "", API)


class Instance:
    """A subscription of its own that records what it was told to forget."""

    def __init__(self) -> None:
        self.forgotten: list[uuid.UUID] = []
        self.cleared = 0
        self.arrived = threading.Event()
        self.revocations = Revocations.from_settings(get_settings(), self._forget, self._clear)
        assert self.revocations is not None

    def _forget(self, user_id: uuid.UUID) -> None:
        self.forgotten.append(user_id)
        self.arrived.set()

    def _clear(self) -> None:
        self.cleared += 1

    def __enter__(self) -> Instance:
        self.revocations.start()
        assert self.revocations.subscribed.wait(5)
        return self

    def __exit__(self, *_: object) -> None:
        self.revocations.stop()


def test_a_committed_change_of_sessions_or_account_reaches_every_other_instance(shared_redis):
    user = make_user()
    sender = Revocations.from_settings(get_settings(), sessions.forget, sessions.forget_all)
    sender.start()
    sessions.announce_with(sender.publish)
    try:
        with Instance() as other:
            assert other.cleared == 1  # a new subscription starts from nothing cached
            with session_scope() as session:
                sessions.revoke_all(session, session.get(User, user.id))  # nothing to revoke: no row changes
                assert not other.arrived.wait(0.3)
                session.get(User, user.id).full_name = "Ada King"
            assert other.arrived.wait(5)
            assert other.forgotten == [user.id]
    finally:
        sessions.announce_with(None)
        sender.stop()


def test_a_rolled_back_change_is_not_announced(shared_redis):
    user = make_user()
    sender = Revocations.from_settings(get_settings(), sessions.forget, sessions.forget_all)
    sender.start()
    sessions.announce_with(sender.publish)
    try:
        with Instance() as other:
            with pytest.raises(RuntimeError), session_scope() as session:
                session.get(User, user.id).full_name = "Ada King"
                session.flush()
                raise RuntimeError("the action failed")
            with session_scope() as session:
                session.get(User, user.id).full_name = "Ada Byron"
            assert other.arrived.wait(5)
            time.sleep(0.2)
            assert other.forgotten == [user.id]  # once: for the committed change only
    finally:
        sessions.announce_with(None)
        sender.stop()


def test_messages_that_are_not_user_ids_are_ignored(shared_redis):
    with Instance() as other:
        client = redis.Redis.from_url(get_settings().redis_url.get_secret_value())
        known = uuid.uuid4()
        client.publish(other.revocations.channel, f"DROP\x00TABLE '\\ {known} not-a-uuid")
        assert other.arrived.wait(5)
        assert other.forgotten == [known]


@pytest.fixture
def silent_redis(monkeypatch: pytest.MonkeyPatch, rupali_env: str) -> Iterator[None]:
    """A Redis address that takes connections and never answers (a hung server, not a refused port)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # the kernel completes the connections; nobody ever reads or writes
        monkeypatch.setenv("RUPALI_REDIS_URL", f"redis://127.0.0.1:{listener.getsockname()[1]}/0")
        reset_settings()
        yield


def test_a_redis_that_does_not_answer_never_fails_or_holds_up_a_commit(silent_redis):
    user = make_user()
    sender = Revocations.from_settings(get_settings(), sessions.forget, sessions.forget_all)
    sender.start()
    sessions.announce_with(sender.publish)
    try:
        started = time.monotonic()
        for name in ("Ada King", "Ada Byron", "Ada Lovelace"):
            with session_scope() as session:
                session.get(User, user.id).full_name = name
        assert time.monotonic() - started < 1  # the sender thread waits for Redis, not the commits
        with session_scope() as session:
            assert session.get(User, user.id).full_name == "Ada Lovelace"
    finally:
        sessions.announce_with(None)
        stopping = time.monotonic()
        sender.stop()
        assert time.monotonic() - stopping < 12  # short timeouts, one retry: it gives up, it does not hang


def test_rate_limits_stay_open_and_quick_while_redis_does_not_answer(silent_redis, three_a_minute, caplog):
    limiter = instance_limiter()
    person = uuid.uuid4()
    started = time.monotonic()
    for _ in range(5):  # more than the limit: nothing can be counted, so nobody is refused
        limiter.admit(limiter.api, person, "198.51.100.7", API)
    assert time.monotonic() - started < 5 * 2 * (abuse.REDIS_TIMEOUT * 2 + 0.5)
    assert "rate limits are not enforced while their store does not answer" in caplog.text


def test_a_change_inside_a_savepoint_is_announced_with_the_outer_commit_only(shared_redis):
    user = make_user()
    announced: list[set[uuid.UUID]] = []
    sessions.announce_with(lambda ids: announced.append(set(ids)))
    try:
        with pytest.raises(RuntimeError), session_scope() as session:
            with session.begin_nested():
                session.get(User, user.id).full_name = "Ada King"
            assert announced == []  # the savepoint was released, but nothing is committed yet
            raise RuntimeError("the outer transaction fails")
        assert announced == []
        with session_scope() as session:
            with session.begin_nested():
                session.get(User, user.id).full_name = "Ada Byron"
            assert announced == []
        assert announced == [{user.id}]
    finally:
        sessions.announce_with(None)
