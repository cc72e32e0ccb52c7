"""The queue shared by every instance on PostgreSQL (``rupali.services.job_claims``, ``rupali.shared_queue``).

First the turns one at a time, as several instances would take them (fair claims, the limits across instances,
leases running out, fencing); then two real queues in one process, on one database, with the offline generator:
every job runs once, a cancel on one reaches the job on the other, and a page's view follows a job anywhere.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from rupali import job_events
from rupali.clock import travel
from rupali.config import get_settings, reset_settings
from rupali.db import session_scope, transact
from rupali.models import CreditAccount, Generation, User
from rupali.providers import ModelChoice
from rupali.providers.base import GenerationResult
from rupali.runtime import Runtime
from rupali.services import generation as generations
from rupali.services import job_claims, ledger
from rupali.services.ledger import LedgerCredits
from rupali.shared_queue import SharedGenerationQueue
from tests.utils.credits_mode import OFFLINE, offline_choice, use_credits
from tests.utils.factories import make_user

pytestmark = pytest.mark.postgresql_only


@pytest.fixture
def billing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_credits(monkeypatch, bonus=20, queue_per_user=10)


def _submit(person: User, choice: ModelChoice, count: int = 1, size: int = 512) -> uuid.UUID:
    form = generations.GenerationForm(prompt="a lighthouse in a storm", model=OFFLINE, width=size, height=size,
                                      count=count)
    with session_scope() as session:
        return generations.submit(session, get_settings(), person, choice, form, LedgerCredits(get_settings())).id


def _turn(worker: str, free: int, mine: dict[uuid.UUID, tuple[str, float | None]] | None = None) -> job_claims.Cycle:
    settings = get_settings()
    return transact(job_claims.cycle, settings, LedgerCredits(settings), worker, free=free, mine=mine or {})


def _generation(generation_id: uuid.UUID) -> Generation:
    with session_scope() as session:
        return session.get(Generation, generation_id)


def _balance(person: User) -> int:
    with session_scope() as session:
        account = session.get(CreditAccount, person.id)
        assert account.balance == ledger.ledger_sum(session, person.id)
        return account.balance


def _token(generation_id: uuid.UUID) -> str:
    """The token of the claim that holds the job now."""
    token = _generation(generation_id).worker
    assert token is not None
    return token


def _finish(worker: str, generation_id: uuid.UUID) -> Generation | None:
    settings = get_settings()
    return transact(generations.complete, settings, generation_id, GenerationResult(images=[], model_version=""), [], 0,
                    LedgerCredits(settings), worker=worker)


# --- turns ---------------------------------------------------------------------------------------------------------

async def test_each_person_gets_a_start_before_anyone_gets_a_second(billing, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RUPALI_GENERATION_PER_USER", "4")
    reset_settings()
    flooder, other, choice = make_user(), make_user(), await offline_choice()
    floods = [_submit(flooder, choice) for _ in range(4)]  # all older than the other person's
    others = [_submit(other, choice) for _ in range(2)]
    started = [generation.id for _ in range(6) for generation in _turn("a:1:x", free=1).claimed]
    assert started == [floods[0], others[0], floods[1], others[1], floods[2], floods[3]]


async def test_the_per_person_limit_holds_across_instances(billing):
    flooder, other, choice = make_user(), make_user(), await offline_choice()  # one running job each (the default)
    floods = [_submit(flooder, choice) for _ in range(3)]
    first = _turn("host-a:1:a", free=4).claimed
    second = _turn("host-b:2:b", free=4).claimed  # another instance with room: still one per person
    assert [g.id for g in first] == [floods[0]] and second == []
    mine = _submit(other, choice)
    assert [g.id for g in _turn("host-b:2:b", free=4).claimed] == [mine]


async def test_the_cluster_limit_holds_across_instances(billing, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RUPALI_GENERATION_CLUSTER_LIMIT", "2")
    reset_settings()
    choice = await offline_choice()
    for person in (make_user(), make_user(), make_user()):
        _submit(person, choice)
    assert len(_turn("host-a:1:a", free=1).claimed) == 1
    assert len(_turn("host-b:2:b", free=5).claimed) == 1  # two running in all
    assert _turn("host-c:3:c", free=5).claimed == []
    snapshot = _turn("host-c:3:c", free=5).unfinished
    assert sorted(job.status for job in snapshot.values()) == ["queued", "running", "running"]
    assert [job.position for job in snapshot.values() if job.status == "queued"] == [0]


async def test_a_job_whose_instance_died_runs_again_once_and_ends_once(billing):
    person, choice = make_user(), await offline_choice()
    job = _submit(person, choice, count=2)
    assert _balance(person) == 18  # held
    assert [g.id for g in _turn("host-a:1:a", free=1).claimed] == [job]
    first = _token(job)
    assert first.startswith("host-a:1:a|")
    assert _turn("host-b:2:b", free=1).claimed == []  # its lease holds
    lease = timedelta(seconds=get_settings().job_lease_seconds)
    with travel(lease + timedelta(seconds=1)):  # host-a went silent
        retaken = _turn("host-b:2:b", free=1)
    assert retaken.reaped == 1 and [g.id for g in retaken.claimed] == [job]
    again = _generation(job)
    assert (again.status, job_claims.instance_of(again.worker), again.attempts) == ("running", "host-b:2:b", 2)
    # host-a comes back: its heartbeat says the job is no longer its, and it cannot end it.
    assert _turn("host-a:1:a", free=0, mine={job: (first, 0.5)}).lost == {job}
    assert _finish(first, job) is None
    assert transact(generations.fail, job, "stale", LedgerCredits(get_settings()), worker=first).status == "running"
    assert _balance(person) == 18  # still held for the run that holds it
    # host-b dies too: the second time the job fails with its reason, and the credits go back.
    with travel(2 * lease + timedelta(seconds=2)):
        last = _turn("host-c:3:c", free=1)
    assert last.reaped == 1 and last.claimed == []
    ended = _generation(job)
    assert (ended.status, ended.error) == ("failed", job_claims.LOST_MESSAGE)
    assert _balance(person) == 20


async def test_a_live_heartbeat_keeps_the_job(billing):
    person, choice = make_user(), await offline_choice()
    job = _submit(person, choice)
    _turn("host-a:1:a", free=1)
    token = _token(job)
    lease = get_settings().job_lease_seconds
    for step in range(1, 4):  # renewed every two thirds of a lease: it never runs out
        with travel(timedelta(seconds=step * lease * 2 / 3)):
            assert _turn("host-a:1:a", free=0, mine={job: (token, None)}).lost == set()
            assert _turn("host-b:2:b", free=1).reaped == 0
    assert _finish(token, job) is not None  # still its own to end


async def test_a_job_started_outside_the_queue_gets_a_lease_s_grace(billing):
    """A running job without a lease (started by an instance from before the leases, or by hand) is not taken from
    under whoever runs it at the next turn: it waits a lease from its start, like a leased job."""
    person, choice = make_user(), await offline_choice()
    job = _submit(person, choice)
    transact(generations.start, job)
    assert _generation(job).lease_until is None
    assert _turn("host-b:2:b", free=1).reaped == 0
    lease = timedelta(seconds=get_settings().job_lease_seconds)
    with travel(lease / 2):
        assert _turn("host-b:2:b", free=1).reaped == 0
    with travel(lease + timedelta(seconds=1)):
        retaken = _turn("host-b:2:b", free=1)
    assert retaken.reaped == 1 and [g.id for g in retaken.claimed] == [job]


async def test_a_dead_process_on_this_host_is_taken_up_without_waiting(billing):
    person, choice = make_user(), await offline_choice()
    job = _submit(person, choice)
    host = job_claims.new_worker().rsplit(":", 2)[0]
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()  # a process id that no longer exists
    _turn(f"{host}:{gone.pid}:dead", free=1)
    assert _turn("elsewhere:1:x", free=1).reaped == 0  # another host cannot tell: it waits out the lease
    retaken = _turn(job_claims.new_worker(), free=1)
    assert retaken.reaped == 1 and [g.id for g in retaken.claimed] == [job]
    # A live process on this host (this one, under another worker name) keeps its job.
    alive = f"{host}:{os.getpid()}:other"
    second = _submit(make_user(), choice)
    assert [g.id for g in _turn(alive, free=1).claimed] == [second]
    assert _turn(job_claims.new_worker(), free=0).reaped == 0


async def test_a_cancelled_job_is_lost_to_its_instance(billing):
    person, choice = make_user(), await offline_choice()
    job = _submit(person, choice)
    _turn("host-a:1:a", free=1)
    token = _token(job)
    transact(generations.cancel, person.id, job, LedgerCredits(get_settings()))
    assert _turn("host-a:1:a", free=0, mine={job: (token, None)}).lost == {job}
    assert _finish(token, job) is None
    assert _generation(job).status == "cancelled" and _balance(person) == 20


async def test_an_instance_that_lost_a_job_and_claims_it_again_cannot_end_it_with_its_old_claim(billing):
    person, choice = make_user(), await offline_choice()
    job = _submit(person, choice)
    _turn("host-a:1:a", free=1)
    old = _token(job)
    with travel(timedelta(seconds=get_settings().job_lease_seconds + 1)):  # cut off from the database for a lease
        back = _turn("host-a:1:a", free=1, mine={job: (old, None)})
        assert back.reaped == 1 and back.lost == {job} and back.claimed == []  # not while its old run is going
        again = _turn("host-a:1:a", free=1)  # the old run has stopped
    assert [g.id for g in again.claimed] == [job]
    new = _token(job)
    assert new != old and job_claims.instance_of(new) == job_claims.instance_of(old)
    assert transact(generations.fail, job, "Cancelled.", LedgerCredits(get_settings()),
                    status="cancelled", worker=old).status == "running"  # the old run's ending is refused
    assert _finish(new, job) is not None


async def test_a_cancel_waits_for_a_completion_in_progress_and_leaves_it_completed(billing):
    person, choice = make_user(), await offline_choice()
    job = _submit(person, choice)
    _turn("host-a:1:a", free=1)
    token, settings = _token(job), get_settings()
    completing, cancelled = threading.Event(), []

    def cancel_meanwhile() -> None:
        completing.wait(10)
        cancelled.append(transact(generations.cancel, person.id, job, LedgerCredits(settings)).status)

    thread = threading.Thread(target=cancel_meanwhile)
    thread.start()
    with session_scope() as session:
        done = generations.complete(session, settings, job, GenerationResult(images=[], model_version=""), [], 0,
                                    LedgerCredits(settings), worker=token)
        assert done is not None
        completing.set()
        time.sleep(0.3)  # the cancel is waiting for this row now
    thread.join(10)
    ended = _generation(job)
    assert cancelled == [ended.status] and ended.status == "blocked"  # what the completion recorded, untouched
    assert _balance(person) == 20


# --- two real queues -----------------------------------------------------------------------------------------------

async def _until(condition, seconds: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_two_instances_run_every_job_once_and_follow_each_others_jobs(billing,
                                                                            monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RUPALI_GENERATION_CONCURRENCY", "1")
    reset_settings()
    first, second = Runtime.build(get_settings()), Runtime.build(get_settings())
    assert isinstance(first.queue, SharedGenerationQueue) and isinstance(second.queue, SharedGenerationQueue)
    await first.queue.start()
    await second.queue.start()
    try:
        people = [make_user() for _ in range(3)]
        choice = await offline_choice()
        jobs = [_submit(person, choice) for person in people for _ in range(2)]
        first.queue.submit(jobs[0], people[0].id)  # as the page that submitted it does; the others only hear of it
        await _until(lambda: all(_generation(job).finished for job in jobs), 60)
        with session_scope() as session:
            ended = session.exec(select(Generation).where(col(Generation.id).in_(jobs))).all()
        assert {generation.status for generation in ended} == {"succeeded"}
        assert {generation.attempts for generation in ended} == {1}
        assert {job_claims.instance_of(generation.worker) for generation in ended} <= {first.queue.worker,
                                                                                      second.queue.worker}
        assert all(_balance(person) == 18 for person in people)  # each charged once per job

        # A slow job on one instance: the other sees it run, and a cancel there stops it where it runs.
        big = _submit(people[0], choice, count=4, size=2048)
        await _until(lambda: _generation(big).status == "running")
        holder = job_claims.instance_of(_generation(big).worker)
        runner, viewer = (first, second) if holder == first.queue.worker else (second, first)
        assert holder == runner.queue.worker
        await _until(lambda: (state := viewer.queue.state(big)) is not None and state.status == "running")
        assert big in runner.queue._running and big not in viewer.queue._running
        await viewer.queue.cancel(people[0].id, big)
        await _until(lambda: big not in runner.queue._running, 10)
        assert _generation(big).status == "cancelled" and _balance(people[0]) == 18
        await _until(lambda: viewer.queue.state(big) is None and runner.queue.state(big) is None, 5)
    finally:
        await first.queue.stop()
        await second.queue.stop()


# --- events --------------------------------------------------------------------------------------------------------

def test_events_are_heard_after_the_commit_only_and_again_after_a_lost_connection(rupali_env: str):
    heard: list[job_events.JobEvent] = []
    connections: list[int] = []
    listener = job_events.JobEventListener(rupali_env, heard.append, lambda: connections.append(1))
    listener.start()
    try:
        assert listener.connected.wait(10)
        job = uuid.uuid4()
        with session_scope() as session:
            job_events.notify(session, job_events.PROGRESS, job, 0.25)
            session.rollback()  # never committed: never heard
            job_events.notify(session, job_events.CANCELLED, job)
        _wait_until(lambda: heard)
        assert heard == [job_events.JobEvent(job_events.CANCELLED, job)]
        with session_scope() as session:  # the listener's connection dies: it listens again by itself
            session.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"))
        _wait_until(lambda: len(connections) >= 2)
        with session_scope() as session:
            job_events.notify(session, job_events.ENDED, job)
        _wait_until(lambda: len(heard) == 2)
        assert heard[-1] == job_events.JobEvent(job_events.ENDED, job)
    finally:
        listener.stop()


@pytest.mark.parametrize("payload", [
    "", "null", "[]", '{"e": "ended"}', '{"e": "nope", "id": "' + "a" * 32 + '"}', '{"e": "ended", "id": "zz"}',
    '{"e": "progress", "id": "' + "a" * 32 + '", "p": "half"}', '{"e": "ended", "id": 7}', "\\u0000", '{"e": "\ud800"}',
])
def test_a_malformed_event_is_ignored(payload: str):
    assert job_events.parse(payload) is None


def test_progress_is_clamped():
    event = job_events.parse('{"e": "progress", "id": "' + "b" * 32 + '", "p": 7}')
    assert event is not None and event.progress == 1.0


def _wait_until(condition, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


async def test_a_queue_stopped_at_once_leaves_no_job_running_without_it(billing):
    runtime = Runtime.build(get_settings())
    person, choice = make_user(), await offline_choice()
    jobs = [_submit(person, choice) for _ in range(3)]
    await runtime.queue.start()
    await asyncio.sleep(0.05)  # its first turn may be under way
    await runtime.queue.drain(0)
    await runtime.queue.stop()
    with session_scope() as session:
        statuses = session.exec(select(Generation.status).where(col(Generation.id).in_(jobs))).all()
    assert "running" not in statuses  # each finished, or is queued for the next instance
