"""Many generations submitted at the same moment against one balance, through the real submit service.

Each request runs in a thread of its own with its own session (and database connection), as concurrent studio
and API requests do. On SQLite and PostgreSQL: the balance covers exactly ten, so exactly ten are queued and the
other forty are refused with :class:`InsufficientCredits`, the balance never goes below zero through usage, and
the ledger sums to the balance afterwards.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlmodel import col, func, select

from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.models import CreditAccount, CreditEntry, Generation, GenerationStatus, Role, User
from rupali.providers import ModelChoice
from rupali.runtime import Runtime
from rupali.services import generation as generations
from rupali.services import ledger
from rupali.services.credits import CreditHook, InsufficientCredits
from rupali.services.ledger import LedgerCredits
from tests.utils.factories import make_user

OFFLINE = "offline:sketch-v1"
AT_ONCE = 50


@pytest.fixture
def billing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credits mode without a sign-up bonus (each test sets the balance itself); the offline model costs 1 credit
    an image; room for every request in the per-person queue, so only the balance decides."""
    monkeypatch.setenv("RUPALI_BILLING", "credits")
    monkeypatch.setenv("RUPALI_CREDITS_SIGNUP_BONUS", "0")
    monkeypatch.setenv("RUPALI_CREDITS_MODEL_PRICES", f"{OFFLINE}=1")
    monkeypatch.setenv("RUPALI_GENERATION_QUEUE_PER_USER", str(2 * AT_ONCE))
    reset_settings()


def _choice() -> ModelChoice:
    return asyncio.run(Runtime.build(get_settings()).providers.find(OFFLINE))


def _grant(person: User, credits: int) -> None:
    with session_scope() as session:
        ledger.grant(session, get_settings(), person, credits, reason="test balance", actor=make_user(role=Role.ADMIN))


def _submit_at_once(requests: list[tuple[User, int]], choice: ModelChoice,
                    hook: CreditHook) -> list[Generation | InsufficientCredits]:
    """Submit every ``(person, image count)`` request in its own thread and session, released together."""
    barrier = threading.Barrier(len(requests))

    def one(number: int) -> Generation | InsufficientCredits:
        person, count = requests[number]
        form = generations.GenerationForm(prompt=f"paper boat number {number}", model=OFFLINE, width=512,
                                          height=512, count=count)
        barrier.wait()
        try:
            with session_scope() as session:
                return generations.submit(session, get_settings(), person, choice, form, hook)
        except InsufficientCredits as exc:
            return exc

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(one, range(len(requests))))


def _never_negative_and_exact(user_id: uuid.UUID) -> int:
    """Every entry's balance is at least zero, and the entries sum to the balance; returns the balance."""
    with session_scope() as session:
        balance = session.get(CreditAccount, user_id).balance
        lowest = session.exec(select(func.min(CreditEntry.balance_after)).where(CreditEntry.user_id == user_id)).one()
        assert lowest is not None and lowest >= 0
        assert ledger.ledger_sum(session, user_id) == balance
    return balance


def _generations_of(user_id: uuid.UUID) -> list[Generation]:
    with session_scope() as session:
        return list(session.exec(select(Generation).where(Generation.user_id == user_id)
                                 .order_by(col(Generation.created_at))).all())


def test_fifty_at_once_with_credits_for_ten_queue_exactly_ten(billing):
    person, choice, hook = make_user(), _choice(), LedgerCredits(get_settings())
    _grant(person, 10)
    outcomes = _submit_at_once([(person, 1)] * AT_ONCE, choice, hook)

    queued = [outcome for outcome in outcomes if isinstance(outcome, Generation)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, InsufficientCredits)]
    assert (len(queued), len(refused)) == (10, 40)
    assert {generation.status for generation in queued} == {GenerationStatus.QUEUED}
    assert {generation.credits for generation in queued} == {1}
    assert {str(exc) for exc in refused} == {"This costs 1 credit and you have 0 left."}
    # A refused request leaves nothing behind: no generation row, no entry.
    assert sorted(generation.id for generation in _generations_of(person.id)) == sorted(g.id for g in queued)
    with session_scope() as session:
        kinds = session.exec(select(CreditEntry.kind).where(CreditEntry.user_id == person.id)).all()
        assert sorted(kinds) == ["grant"] + ["reserve"] * 10
        assert all(ledger.held(session, generation.id) == 1 for generation in queued)
    assert _never_negative_and_exact(person.id) == 0


def test_requests_of_several_images_never_overdraw_and_each_person_has_their_own_balance(billing):
    """Twenty-five requests for two images each from two people at once: 20 credits cover exactly ten of one
    person's; the other's 6 cover three of theirs, and one person's refusals do not touch the other's balance."""
    rich, poor, choice, hook = make_user(), make_user(), _choice(), LedgerCredits(get_settings())
    _grant(rich, 20)
    _grant(poor, 7)  # three requests of two, and one credit left over that covers nothing
    requests = [(rich, 2)] * 25 + [(poor, 2)] * 25
    outcomes = _submit_at_once(requests, choice, hook)

    for person, expected, left in ((rich, 10, 0), (poor, 3, 1)):
        mine = [outcome for (owner, _count), outcome in zip(requests, outcomes, strict=True) if owner is person]
        queued = [outcome for outcome in mine if isinstance(outcome, Generation)]
        refused = [outcome for outcome in mine if isinstance(outcome, InsufficientCredits)]
        assert (len(queued), len(refused)) == (expected, 25 - expected)
        assert {str(exc) for exc in refused} == {f"This costs 2 credits and you have {left} left."}
        assert len(_generations_of(person.id)) == expected
        assert _never_negative_and_exact(person.id) == left
