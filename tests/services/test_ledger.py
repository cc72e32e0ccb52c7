"""The credit ledger on SQLite and PostgreSQL: exact balances, the hook around generations, concurrency, restarts.

Every test ends by checking that each person's ledger sums to their balance (:func:`_exact`).
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select

from rupali import clock, faults
from rupali.clock import now
from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.models import (
    CreditAccount,
    CreditEntry,
    CreditPurchaseEntry,
    EntryKind,
    Generation,
    GenerationStatus,
    JobRun,
    Role,
    User,
)
from rupali.runtime import Runtime
from rupali.services import api_keys, ledger
from rupali.services import generation as generations
from rupali.services.credits import FreeGeneration, InsufficientCredits
from rupali.services.ledger import LedgerCredits, LedgerError
from tests.utils.credits_mode import OFFLINE, offline_choice, use_credits
from tests.utils.factories import make_user


@pytest.fixture
def billing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_credits(monkeypatch, bonus=10, queue_per_user=100)


def _hook() -> LedgerCredits:
    return LedgerCredits(get_settings())


def _form(**changes) -> generations.GenerationForm:
    values = {"prompt": "a red lighthouse at dusk", "model": OFFLINE, "width": 512, "height": 512, "count": 1}
    return generations.GenerationForm(**(values | changes))


async def _choice(runtime: Runtime | None = None):
    return await runtime.providers.find(OFFLINE) if runtime is not None else await offline_choice()


def _submit(user: User, choice, hook, **changes) -> Generation:
    with session_scope() as session:
        return generations.submit(session, get_settings(), user, choice, _form(**changes), hook)


def _balance(user_id: uuid.UUID) -> int:
    with session_scope() as session:
        account = session.get(CreditAccount, user_id)
        return account.balance if account is not None else 0


def _entries(user_id: uuid.UUID) -> list[CreditEntry]:
    with session_scope() as session:
        return list(session.exec(select(CreditEntry).where(CreditEntry.user_id == user_id)
                                 .order_by(col(CreditEntry.created_at))).all())


def _exact(*user_ids: uuid.UUID) -> None:
    """Each person's ledger sums to their balance (and the table-wide totals agree too)."""
    with session_scope() as session:
        for user_id in user_ids:
            assert ledger.ledger_sum(session, user_id) == _balance(user_id), f"ledger of {user_id} is off"
        accounts = session.exec(select(CreditAccount)).all()
        assert sum(account.balance for account in accounts) == sum(
            ledger.ledger_sum(session, account.user_id) for account in accounts)


async def _finished(generation_id: uuid.UUID, timeout: float = 30) -> Generation:
    for _ in range(int(timeout / 0.05)):
        with session_scope() as session:
            generation = session.get(Generation, generation_id)
            if generation.finished:
                return generation
        await asyncio.sleep(0.05)
    raise AssertionError("generation did not finish")


# --- accounts, bonus, allowance, grants -------------------------------------------------------------------------------

def test_the_sign_up_bonus_is_granted_once_even_to_concurrent_first_touches(billing):
    user = make_user()
    barrier = threading.Barrier(8)

    def touch() -> int:
        barrier.wait()
        with session_scope() as session:
            return ledger.open_account(session, get_settings(), user.id)

    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(lambda _: touch(), range(8)))
    assert seen == [10] * 8
    with session_scope() as session:
        assert ledger.balance(session, get_settings(), user.id) == 10
    assert [(entry.kind, entry.delta, entry.balance_after) for entry in _entries(user.id)] == [("bonus", 10, 10)]
    _exact(user.id)


def test_the_daily_allowance_tops_up_once_a_utc_day_without_rollover(billing, monkeypatch):
    monkeypatch.setenv("RUPALI_CREDITS_SIGNUP_BONUS", "0")
    monkeypatch.setenv("RUPALI_CREDITS_DAILY_ALLOWANCE", "5")
    reset_settings()
    settings = get_settings()
    user = make_user()
    # Start just after a UTC midnight so "the next day" is an exact step of the clock.
    midnight = datetime.combine(now().date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    with clock.travel(midnight - now() + timedelta(minutes=1)):
        with session_scope() as session:
            assert ledger.balance(session, settings, user.id) == 5
        with session_scope() as session:
            assert ledger.balance(session, settings, user.id) == 5  # the same day: nothing more
            ledger.reserve(session, settings, user.id, _fake_generation(session, user), 3)
        assert _balance(user.id) == 2
    with clock.travel(midnight - now() + timedelta(days=1, minutes=1)), session_scope() as session:
        assert ledger.balance(session, settings, user.id) == 5  # topped up to 5, not 2 + 5
    # Idle days do not pile up.
    with clock.travel(midnight - now() + timedelta(days=4, minutes=1)), session_scope() as session:
        assert ledger.balance(session, settings, user.id) == 5
    assert [(entry.kind, entry.delta) for entry in _entries(user.id)] == [
        ("daily", 5), ("reserve", -3), ("daily", 3)]
    # An account's own allowance (set by an administrator) applies from the next day.
    with clock.travel(midnight - now() + timedelta(days=5, minutes=1)), session_scope() as session:
        ledger.set_daily_allowance(session, settings, user.id, 20)
        assert ledger.balance(session, settings, user.id) == 5
    with clock.travel(midnight - now() + timedelta(days=6, minutes=1)), session_scope() as session:
        assert ledger.balance(session, settings, user.id) == 20
    _exact(user.id)


def test_grants_and_revocations_need_an_administrator_and_a_reason(billing):
    settings = get_settings()
    admin, member = make_user(role=Role.ADMIN), make_user()
    with session_scope() as session:
        entry = ledger.grant(session, settings, member, 25, reason="Workshop quota", actor=admin, key="form-1")
        again = ledger.grant(session, settings, member, 25, reason="Workshop quota", actor=admin, key="form-1")
        assert again.id == entry.id  # a form sent twice grants once
        assert (entry.kind, entry.delta, entry.balance_after, entry.reference, entry.actor_id) == (
            "grant", 25, 35, "Workshop quota", admin.id)
        with pytest.raises(LedgerError, match="Only an administrator"):
            ledger.grant(session, settings, admin, 5, reason="self-service", actor=member)
        with pytest.raises(LedgerError, match="Give a reason"):
            ledger.grant(session, settings, member, 5, reason="   ", actor=admin)
        with pytest.raises(LedgerError, match="Cannot revoke 50 credits: the balance is 35"):
            ledger.grant(session, settings, member, -50, reason="Too generous", actor=admin)
        revoked = ledger.grant(session, settings, member, -30, reason="Workshop over", actor=admin)
        assert (revoked.delta, revoked.balance_after) == (-30, 5)
    assert _balance(member.id) == 5
    _exact(member.id, admin.id)


# --- the hook around generations -------------------------------------------------------------------------------------

def _fake_generation(session, user: User, count: int = 1) -> Generation:
    generation = Generation(user_id=user.id, provider="offline", model="sketch-v1", model_label="Sketch",
                            prompt="a test", width=512, height=512, steps=20, guidance=7.0, count=count, seed=1)
    session.add(generation)
    session.flush()
    return generation


async def test_reserve_settle_and_release_are_exact_and_idempotent(billing):
    hook, choice, user = _hook(), await _choice(), make_user()
    four = _submit(user, choice, hook, count=4)
    assert four.status == GenerationStatus.QUEUED and four.credits == 4 and _balance(user.id) == 6
    with session_scope() as session:
        assert ledger.held(session, four.id) == 4
        generation = session.get(Generation, four.id)
        hook.settle(session, generation, delivered=3)  # one image withheld: it is not charged
        assert generation.credits == 3
    for _ in range(2):  # settling again, or releasing after the settle, changes nothing
        with session_scope() as session:
            generation = session.get(Generation, four.id)
            hook.settle(session, generation, delivered=4)
            hook.release(session, generation)
            assert generation.credits == 3
    assert _balance(user.id) == 7
    two = _submit(user, choice, hook, count=2)
    with session_scope() as session:
        generations.fail(session, two.id, "provider down", hook)
    with session_scope() as session:
        generation = session.get(Generation, two.id)
        hook.release(session, generation)
        hook.settle(session, generation, delivered=2)
        assert generation.credits == 0 and ledger.held(session, two.id) == 0
    assert _balance(user.id) == 7
    label = choice.info.label
    assert [(entry.kind, entry.delta, entry.balance_after, entry.reference) for entry in _entries(user.id)] == [
        ("bonus", 10, 10, "Sign-up bonus"), ("reserve", -4, 6, f"{label}, 4 images"),
        ("settle", 1, 7, f"{label}, 3 images of 4"), ("reserve", -2, 5, f"{label}, 2 images"),
        ("release", 2, 7, f"{label}, 2 images")]
    _exact(user.id)


async def test_a_blocked_prompt_costs_nothing_and_a_short_balance_is_refused_clearly(billing, monkeypatch):
    monkeypatch.setenv("RUPALI_PROMPT_BLOCKLIST", "gore")
    reset_settings()
    hook, choice, user = _hook(), await _choice(), make_user()
    blocked = _submit(user, choice, hook, prompt="gore everywhere", count=4)
    assert blocked.status == GenerationStatus.BLOCKED and blocked.credits == 0
    assert _entries(user.id) == []  # not even an account was opened for it
    _submit(user, choice, hook, count=4)
    _submit(user, choice, hook, count=4)
    with pytest.raises(InsufficientCredits, match=r"This costs 4 credits and you have 2 left\."):
        _submit(user, choice, hook, count=4)
    with session_scope() as session:  # the refused request left nothing behind
        assert len(session.exec(select(Generation).where(Generation.user_id == user.id)).all()) == 3
    _exact(user.id)


async def test_a_negative_balance_from_a_refund_blocks_new_reservations(billing):
    settings, hook, choice, user = get_settings(), _hook(), await _choice(), make_user()
    with session_scope() as session:
        bought = ledger.post_payment(session, settings, user.id, EntryKind.PURCHASE, 100, reference="order-1",
                                     key="purchase:order-1")
        assert bought is not None and bought.balance_after == 110
        assert ledger.post_payment(session, settings, user.id, EntryKind.PURCHASE, 100, reference="order-1",
                                   key="purchase:order-1") is None  # a webhook delivered twice
    for _ in range(4):
        with session_scope() as session:
            generation = generations.submit(session, settings, user, choice, _form(count=4), hook)
            hook.settle(session, generation, delivered=4)
    with session_scope() as session:
        refund = ledger.post_payment(session, settings, user.id, EntryKind.REFUND, -100, reference="order-1",
                                     key="refund:order-1")
        assert refund is not None and refund.balance_after == -6
    with pytest.raises(InsufficientCredits, match="balance is -6 credits after a refund"):
        _submit(user, choice, hook)
    with session_scope() as session:
        assert session.exec(select(CreditPurchaseEntry.kind)).all() == ["purchase", "refund"]
    _exact(user.id)


def test_a_falling_balance_is_reported_once_per_crossing(billing, monkeypatch):
    monkeypatch.setenv("RUPALI_CREDITS_ALERT_THRESHOLD", "5")
    reset_settings()
    settings, admin, user = get_settings(), make_user(role=Role.ADMIN), make_user()
    seen: list[tuple[uuid.UUID, int]] = []
    ledger.on_low_balance(lambda _session, user_id, balance: seen.append((user_id, balance)))
    try:
        with session_scope() as session:
            for _ in range(3):  # 10 -> 7 -> 4 (crossing) -> 1 (still below: no second alert)
                generation = _fake_generation(session, user, count=3)
                ledger.reserve(session, settings, user.id, generation, 3)
            assert seen == [(user.id, 4)]
            ledger.grant(session, settings, user, 10, reason="top-up", actor=admin)  # 11: re-armed
            ledger.reserve(session, settings, user.id, _fake_generation(session, user, count=8), 8)  # 3: again
        assert seen == [(user.id, 4), (user.id, 3)]
    finally:
        ledger._low_balance_listeners.clear()
    _exact(user.id)


# --- concurrency ----------------------------------------------------------------------------------------------------

async def test_fifty_generations_at_once_with_credits_for_ten_run_exactly_ten(billing):
    user = make_user()
    runtime = Runtime.build(get_settings())
    choice, hook = await _choice(runtime), runtime.credits
    with session_scope() as session:
        assert ledger.open_account(session, get_settings(), user.id) == 10
    barrier = threading.Barrier(50)

    def one(number: int) -> Generation | str:
        barrier.wait()
        try:
            with session_scope() as session:  # a session (and connection) of its own per request
                return generations.submit(session, get_settings(), user, choice, _form(prompt=f"boat {number}"), hook)
        except InsufficientCredits as exc:
            return str(exc)

    with ThreadPoolExecutor(50) as pool:
        outcomes = await asyncio.get_running_loop().run_in_executor(None, lambda: list(pool.map(one, range(50))))
    queued = [outcome for outcome in outcomes if isinstance(outcome, Generation)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, str)]
    assert len(queued) == 10 and len(refused) == 40
    assert set(refused) == {"This costs 1 credit and you have 0 left."}
    assert _balance(user.id) == 0
    _exact(user.id)
    # The ten run (the queue's start-up resumes what is queued) and are settled; nothing goes negative.
    await runtime.start()
    try:
        done = [await _finished(generation.id) for generation in queued]
    finally:
        await runtime.stop()
    assert {generation.status for generation in done} == {GenerationStatus.SUCCEEDED}
    assert sum(generation.credits for generation in done) == 10
    entries = _entries(user.id)
    assert [entry.kind for entry in entries].count("reserve") == 10
    assert [entry.kind for entry in entries].count("settle") == 10
    assert min(entry.balance_after for entry in entries) == 0 and _balance(user.id) == 0
    _exact(user.id)


# --- restarts -------------------------------------------------------------------------------------------------------

async def test_after_a_restart_held_credits_are_released_or_settled_once(billing):
    """A crash between reserve and settle: the running job's credits come back, the queued job is charged."""
    user = make_user()
    choice, hook = await _choice(), _hook()
    interrupted = _submit(user, choice, hook, count=3)
    waiting = _submit(user, choice, hook, count=2)
    # It was running when the server died, a lease ago: the shared queue takes it up at once instead of waiting.
    with clock.travel(-timedelta(seconds=get_settings().job_lease_seconds + 1)), session_scope() as session:
        generations.start(session, interrupted.id)
    assert _balance(user.id) == 5
    # One process (SQLite) fails the interrupted job; the shared queue (PostgreSQL) runs it again, charged once.
    shared = get_settings().shared_queue
    for start in range(2):  # a second restart must not release or charge anything again
        runtime = Runtime.build(get_settings())
        await runtime.start()
        try:
            interrupted_end, succeeded = await _finished(interrupted.id), await _finished(waiting.id)
        finally:
            await runtime.stop()
        if shared:
            assert (interrupted_end.status, interrupted_end.credits) == (GenerationStatus.SUCCEEDED, 3)
        else:
            assert interrupted_end.status == GenerationStatus.FAILED
            assert (interrupted_end.error, interrupted_end.credits) == (generations.RESTART_MESSAGE, 0)
        assert (succeeded.status, succeeded.credits) == (GenerationStatus.SUCCEEDED, 2), start
        assert _balance(user.id) == (5 if shared else 8)
    kinds = sorted((entry.kind, entry.delta) for entry in _entries(user.id))
    ending = ("settle", 0) if shared else ("release", 3)
    assert kinds == sorted([("bonus", 10), ("reserve", -3), ("reserve", -2), ending, ("settle", 0)])
    _exact(user.id)


async def test_reconcile_releases_reservations_ended_outside_the_ledger(billing):
    """A generation cancelled through a free hook (say an account deletion not given the ledger) still gets its
    reservation back, once, as does one whose row is gone."""
    settings, choice, hook, user = get_settings(), await _choice(), _hook(), make_user()
    cancelled = _submit(user, choice, hook, count=3)
    vanished = _submit(user, choice, hook, count=2)
    still_queued = _submit(user, choice, hook, count=1)
    with session_scope() as session:
        generations.cancel(session, user.id, cancelled.id, FreeGeneration())
        session.delete(session.get(Generation, vanished.id))
    assert _balance(user.id) == 4
    with session_scope() as session:
        assert ledger.reconcile(session, settings) == 2
    with session_scope() as session:
        assert ledger.reconcile(session, settings) == 0
        assert ledger.held(session, still_queued.id) == 1
    assert _balance(user.id) == 9
    _exact(user.id)


@pytest.mark.sqlite_only
def test_kill_9_between_reserve_and_settle_loses_and_doubles_nothing(billing, tmp_path: Path):
    """The real server, killed just before and just after the commit that settles a job, then started again."""
    from tests.api.test_crash_consistency import _Server

    person = make_user(email="crash@example.com")
    with session_scope() as session:
        _key, secret = api_keys.create(session, session.get(User, person.id), "crash test")
    env = {name: value for name, value in os.environ.items()
           if name not in {"PYTEST_CURRENT_TEST", "NICEGUI_STORAGE_PATH"}}
    client = httpx.Client(timeout=30)

    def submit(server: _Server) -> uuid.UUID:
        response = client.post(f"{server.base}/api/v1/generations", headers={"Authorization": f"Bearer {secret}"},
                               json={"prompt": "a lighthouse in a storm", "model": OFFLINE, "width": 256,
                                     "height": 256, "count": 2})
        assert response.status_code == 202, response.text
        return uuid.UUID(response.json()["id"])

    def started(starts: int, generation_id: uuid.UUID) -> bool:
        with session_scope() as session:
            sweeps = session.exec(select(JobRun).where(JobRun.job == "sweep_media", JobRun.trigger == "startup",
                                                       col(JobRun.finished_at).is_not(None))).all()
            generation = session.get(Generation, generation_id)
        return len(sweeps) == starts and generation is not None and generation.status != GenerationStatus.RUNNING

    server = _Server(tmp_path, env, faults.BEFORE_COMMIT, client)
    try:
        before_commit = submit(server)  # settle flushed, not committed
        server.wait_paused()
        assert _balance(person.id) == 8  # the reservation is committed, the settle is not
        server.kill()
        server = _Server(tmp_path, env, faults.AFTER_COMMIT, client)
        server.wait(lambda: started(2, before_commit), "finish its start-up work")
        with session_scope() as session:
            assert session.get(Generation, before_commit).status == GenerationStatus.FAILED
        assert _balance(person.id) == 10  # released by the recovery
        after_commit = submit(server)  # settle committed, then killed
        server.wait_paused()
        server.kill()
        server = _Server(tmp_path, env, None, client)
        server.wait(lambda: started(3, after_commit), "finish its start-up work")
    finally:
        server.stop()
        client.close()
    with session_scope() as session:
        assert session.get(Generation, after_commit).status == GenerationStatus.SUCCEEDED
    assert _balance(person.id) == 8
    assert sorted((entry.kind, entry.delta) for entry in _entries(person.id)) == sorted([
        ("bonus", 10), ("reserve", -2), ("release", 2), ("reserve", -2), ("settle", 0)])
    _exact(person.id)


# --- every other way a generation ends --------------------------------------------------------------------------------

async def test_an_account_deletion_gives_back_what_its_generations_held(billing):
    """Scheduled without the running app's hook (as ``rupali users erase`` does): the billing mode's hook is used,
    so the cancelled generations' credits come back in the same transaction, not at the next start-up."""
    from rupali.models import RequestSource
    from rupali.services import deletion

    choice, hook, person = await _choice(), _hook(), make_user()
    queued = [_submit(person, choice, hook, count=3), _submit(person, choice, hook, count=2)]
    assert _balance(person.id) == 5
    with session_scope() as session:
        deletion.schedule_deletion(session, get_settings(), session.get(User, person.id), source=RequestSource.ADMIN)
    with session_scope() as session:
        for generation in queued:
            assert session.get(Generation, generation.id).status == GenerationStatus.CANCELLED
            assert ledger.held(session, generation.id) == 0
        assert ledger.reconcile(session, get_settings()) == 0  # nothing was left for the start-up to find
    assert _balance(person.id) == 10
    _exact(person.id)


async def test_cancelling_then_deleting_a_generation_gives_its_credits_back_once(billing):
    runtime = Runtime.build(get_settings())
    choice, person = await _choice(runtime), make_user()
    generation = _submit(person, choice, runtime.credits, count=4)
    await runtime.queue.cancel(person.id, generation.id)  # never started: the queue is not running
    assert _balance(person.id) == 10
    with session_scope() as session:
        assert generations.delete_generation(session, runtime.storage, session.get(User, person.id), generation.id)
    with session_scope() as session:
        assert ledger.reconcile(session, get_settings()) == 0  # the release stands; deleting adds nothing
    assert [entry.kind for entry in _entries(person.id)] == ["bonus", "reserve", "release"]
    assert _balance(person.id) == 10
    _exact(person.id)


async def test_images_withheld_by_the_content_filter_cost_nothing(billing, monkeypatch):
    monkeypatch.setenv("RUPALI_NSFW_POLICY", "block")
    monkeypatch.setenv("RUPALI_NSFW_THRESHOLD", "0")  # every image scores at least 0: every image is withheld
    reset_settings()
    runtime = Runtime.build(get_settings())
    choice, person = await _choice(runtime), make_user()
    generation = _submit(person, choice, runtime.credits, count=2)
    assert _balance(person.id) == 8
    await runtime.start()
    try:
        done = await _finished(generation.id)
    finally:
        await runtime.stop()
    assert done.status == GenerationStatus.BLOCKED and done.credits == 0
    assert [(entry.kind, entry.delta) for entry in _entries(person.id)] == [
        ("bonus", 10), ("reserve", -2), ("release", 2)]
    _exact(person.id)
