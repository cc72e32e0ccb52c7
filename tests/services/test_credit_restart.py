"""A crash between reserve and settle, and the start-up recovery after it: no credit lost, none counted twice.

The "crash" is the state a killed server leaves in the database: reservations committed through the real submit
path with their generations queued or running, and no ending. The recovery is the one the queue runs at start-up
(``generations.recover_after_restart``, which also reconciles the ledger), first on its own, then through a real
:class:`Runtime` that resumes the queued work. The same with the real server killed by ``kill -9`` at the commit of
a settle: tests/services/test_ledger.py::test_kill_9_between_reserve_and_settle_loses_and_doubles_nothing.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlmodel import col, select

from rupali.config import get_settings, reset_settings
from rupali.db import session_scope, transact
from rupali.models import CreditAccount, CreditEntry, Generation, GenerationStatus, User
from rupali.providers import ModelChoice
from rupali.runtime import Runtime
from rupali.services import generation as generations
from rupali.services import ledger
from rupali.services.credits import FreeGeneration
from rupali.services.ledger import LedgerCredits
from tests.utils.credits_mode import OFFLINE, offline_choice, use_credits
from tests.utils.factories import make_user


@pytest.fixture
def billing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credits mode: a sign-up bonus of 20, the offline model at 1 credit an image."""
    use_credits(monkeypatch, bonus=20, queue_per_user=10)


def _submit(person: User, choice: ModelChoice, count: int) -> Generation:
    form = generations.GenerationForm(prompt="a lighthouse in a storm", model=OFFLINE, width=512, height=512,
                                      count=count)
    with session_scope() as session:
        return generations.submit(session, get_settings(), person, choice, form, LedgerCredits(get_settings()))


def _state(user_id: uuid.UUID) -> tuple[int, int]:
    """(balance, sum of the ledger), which must always be equal."""
    with session_scope() as session:
        return session.get(CreditAccount, user_id).balance, ledger.ledger_sum(session, user_id)


def _held(generation_id: uuid.UUID) -> int:
    with session_scope() as session:
        return ledger.held(session, generation_id)


def _endings(generation_id: uuid.UUID) -> list[tuple[str, int]]:
    with session_scope() as session:
        return [(entry.kind, entry.delta) for entry in session.exec(
            select(CreditEntry).where(CreditEntry.generation_id == generation_id,
                                      col(CreditEntry.kind).in_(["settle", "release"]))).all()]


def _generation(generation_id: uuid.UUID) -> Generation:
    with session_scope() as session:
        return session.get(Generation, generation_id)


async def _finished(generation_id: uuid.UUID) -> Generation:
    for _ in range(600):
        generation = _generation(generation_id)
        if generation.finished:
            return generation
        await asyncio.sleep(0.05)
    raise AssertionError("the generation did not finish")


async def test_recovery_releases_the_interrupted_keeps_the_queued_and_settles_them_once(billing):
    person, choice = make_user(), await offline_choice()
    settings, hook = get_settings(), LedgerCredits(get_settings())
    interrupted = _submit(person, choice, 3)  # it was running when the server died
    waiting = _submit(person, choice, 2)  # still queued
    ended_elsewhere = _submit(person, choice, 4)  # cancelled through a hook that is not the ledger
    with session_scope() as session:
        generations.start(session, interrupted.id)
        generations.cancel(session, person.id, ended_elsewhere.id, FreeGeneration())
    assert _state(person.id) == (11, 11)  # 20 - 3 - 2 - 4, all still held

    for attempt in range(2):  # the recovery itself may be interrupted and run again: it changes nothing twice
        resumed = transact(generations.recover_after_restart, settings, hook)
        assert resumed == [(waiting.id, person.id)], attempt
        assert _generation(interrupted.id).status == GenerationStatus.FAILED
        assert _generation(interrupted.id).error == generations.RESTART_MESSAGE
        assert (_held(interrupted.id), _held(ended_elsewhere.id), _held(waiting.id)) == (0, 0, 2)
        assert _endings(interrupted.id) == [("release", 3)] and _endings(ended_elsewhere.id) == [("release", 4)]
        assert _endings(waiting.id) == []
        assert _state(person.id) == (18, 18)

    # The next start of the real app resumes the queued generation; its finish settles the reservation once.
    for start in range(2):
        runtime = Runtime.build(settings)
        await runtime.start()
        try:
            done = await _finished(waiting.id)
        finally:
            await runtime.stop()
        assert (done.status, done.credits) == (GenerationStatus.SUCCEEDED, 2), start
        assert _held(waiting.id) == 0 and _endings(waiting.id) == [("settle", 0)]
        assert _state(person.id) == (18, 18)


async def test_recovery_gives_back_a_reservation_whose_generation_was_deleted(billing):
    """A generation row gone without an ending (removed by hand, or by code that bypassed the hook)."""
    person, choice, settings = make_user(), await offline_choice(), get_settings()
    gone = _submit(person, choice, 4)
    with session_scope() as session:
        session.delete(session.get(Generation, gone.id))
    assert _state(person.id) == (16, 16)
    assert transact(generations.recover_after_restart, settings, LedgerCredits(settings)) == []
    assert _endings(gone.id) == [("release", 4)] and _state(person.id) == (20, 20)


async def test_recovery_with_billing_switched_off_still_gives_the_held_credits_back(billing, monkeypatch):
    """Reserved while billing was on, recovered after the operator switched it off: the free hook ends the jobs and
    the reconciliation returns what they held."""
    person, choice = make_user(), await offline_choice()
    running, queued = _submit(person, choice, 2), _submit(person, choice, 3)
    with session_scope() as session:
        generations.start(session, running.id)
    monkeypatch.setenv("RUPALI_BILLING", "off")
    reset_settings()
    off = get_settings()
    assert transact(generations.recover_after_restart, off, FreeGeneration()) == [(queued.id, person.id)]
    assert _endings(running.id) == [("release", 2)] and _held(queued.id) == 3
    assert _state(person.id) == (17, 17)


async def test_a_handed_back_generation_keeps_its_reservation_and_is_charged_once_when_it_runs_again(billing):
    """A draining instance queues a job that was waiting for its provider again (generation_queue.drain)."""
    person, choice = make_user(), await offline_choice()
    settings, hook = get_settings(), LedgerCredits(get_settings())
    handed = _submit(person, choice, 3)
    with session_scope() as session:
        generations.start(session, handed.id)
    assert transact(generations.hand_back, handed.id) is True
    assert transact(generations.hand_back, handed.id) is False  # only a running job can be handed back
    assert _generation(handed.id).status == GenerationStatus.QUEUED and _held(handed.id) == 3
    assert transact(generations.recover_after_restart, settings, hook) == [(handed.id, person.id)]
    assert _held(handed.id) == 3 and _state(person.id) == (17, 17)

    runtime = Runtime.build(settings)
    await runtime.start()
    try:
        done = await _finished(handed.id)
    finally:
        await runtime.stop()
    assert (done.status, done.credits) == (GenerationStatus.SUCCEEDED, 3)
    assert _held(handed.id) == 0 and _endings(handed.id) == [("settle", 0)] and _state(person.id) == (17, 17)
