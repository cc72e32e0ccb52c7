"""Abuse limits without UI: per-person and per-address moving windows with an exact wait, the daily cap by UTC day,
and fresh windows for fresh settings. Time moves with the clock, never by sleeping."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from rupali import clock
from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.models import Generation
from rupali.runtime import Runtime
from rupali.services import abuse
from rupali.services import generation as generations
from rupali.services.credits import FreeGeneration
from rupali.services.generation import GenerationForm
from tests.services.test_gallery import add_generation
from tests.utils.at_once import ACCEPTED, at_once
from tests.utils.credits_mode import offline_choice
from tests.utils.factories import make_user

ADDRESS, OTHER_ADDRESS = "203.0.113.7", "198.51.100.9"


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three generations a minute per person, five per address; four API requests per person, six per address."""
    monkeypatch.setenv("RUPALI_RATE_LIMIT_GENERATIONS_PER_MINUTE", "3")
    monkeypatch.setenv("RUPALI_RATE_LIMIT_GENERATIONS_PER_IP_MINUTE", "5")
    monkeypatch.setenv("RUPALI_RATE_LIMIT_API_PER_MINUTE", "4")
    monkeypatch.setenv("RUPALI_RATE_LIMIT_API_PER_IP_MINUTE", "6")
    reset_settings()


def _next_midnight() -> datetime:
    return datetime.combine(clock.now().date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


@pytest.mark.sqlite_only
def test_a_person_gets_the_configured_number_per_minute_then_an_exact_wait(small_limits):
    settings, person = get_settings(), uuid.uuid4()
    for seconds in (0, 20, 40):
        with clock.travel(timedelta(seconds=seconds)):
            abuse.check_generation(settings, person, ADDRESS)
    with clock.travel(timedelta(seconds=45)), pytest.raises(abuse.RateLimited) as refused:
        abuse.check_generation(settings, person, ADDRESS)
    # The oldest of the three leaves the window 60 seconds after it was counted: 15 seconds from then.
    assert refused.value.retry_after == 15
    assert refused.value.message == "You are starting generations too quickly. Try again in 15 seconds."
    with clock.travel(timedelta(seconds=59)), pytest.raises(abuse.RateLimited) as refused:
        abuse.check_generation(settings, person, ADDRESS)  # a refusal counts nothing: still the same wait
    assert refused.value.retry_after == 1 and refused.value.message.endswith("Try again in 1 second.")
    with clock.travel(timedelta(seconds=61)):
        abuse.check_generation(settings, person, ADDRESS)  # the first one has left the window
        with pytest.raises(abuse.RateLimited):
            abuse.check_generation(settings, person, ADDRESS)  # the ones at 20 and 40 s are still in it


@pytest.mark.sqlite_only
def test_other_people_and_other_addresses_are_not_affected(small_limits):
    settings = get_settings()
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for _ in range(3):
        abuse.check_generation(settings, first, ADDRESS)
    with pytest.raises(abuse.RateLimited):
        abuse.check_generation(settings, first, OTHER_ADDRESS)  # the person's limit follows them anywhere
    abuse.check_generation(settings, second, ADDRESS)  # another person: their own window
    abuse.check_generation(settings, second, ADDRESS)  # ... but the address has now started five
    with pytest.raises(abuse.RateLimited) as refused:
        abuse.check_generation(settings, third, ADDRESS)  # a third person behind the same address is refused
    assert 55 <= refused.value.retry_after <= 60
    abuse.check_generation(settings, third, OTHER_ADDRESS)  # from elsewhere they may


@pytest.mark.sqlite_only
def test_a_refusal_by_one_limit_uses_up_nothing_in_the_other(small_limits):
    settings = get_settings()
    busy, person = uuid.uuid4(), uuid.uuid4()
    for _ in range(6):
        abuse.check_api(settings, None, ADDRESS)  # the address's six requests (a key-less caller, say)
    for _ in range(5):
        with pytest.raises(abuse.RateLimited) as refused:
            abuse.check_api(settings, person, ADDRESS)
    assert refused.value.message.startswith("You are making requests too quickly. Try again in ")
    for _ in range(4):  # the person's four are all still there from another address
        abuse.check_api(settings, person, OTHER_ADDRESS)
    with pytest.raises(abuse.RateLimited):
        abuse.check_api(settings, person, OTHER_ADDRESS)
    abuse.check_generation(settings, busy, ADDRESS)  # API requests and generations are counted apart


@pytest.mark.sqlite_only
def test_new_settings_or_a_reset_start_with_empty_windows(small_limits, monkeypatch):
    settings, person = get_settings(), uuid.uuid4()
    for _ in range(3):
        abuse.check_generation(settings, person, ADDRESS)
    with pytest.raises(abuse.RateLimited):
        abuse.check_generation(settings, person, ADDRESS)
    abuse.reset()
    abuse.check_generation(settings, person, ADDRESS)
    monkeypatch.setenv("RUPALI_RATE_LIMIT_GENERATIONS_PER_MINUTE", "1")
    reset_settings()
    fewer = get_settings()
    abuse.check_generation(fewer, person, ADDRESS)  # empty again, with the new limit
    with pytest.raises(abuse.RateLimited):
        abuse.check_generation(fewer, person, ADDRESS)


@pytest.mark.sqlite_only
def test_addresses_are_kept_only_as_a_keyed_hash_and_expired_windows_are_forgotten(small_limits):
    settings = get_settings()
    abuse.check_api(settings, None, ADDRESS)
    storage = abuse._limiter(settings).strategy.storage
    assert isinstance(storage, abuse.ClockMemoryStorage)
    assert storage._events and not any(ADDRESS in key for key in storage._events)
    for number in range(3000):  # addresses come and go ...
        abuse.check_api(settings, None, f"10.0.{number // 250}.{number % 250}")
    assert len(storage._events) > 2000
    with clock.travel(timedelta(seconds=61)):  # ... and once their windows are empty, memory lets go of them
        for _ in range(abuse.ClockMemoryStorage._SWEEP_EVERY):
            storage.acquire_entry("probe", 10**6, 60)
    assert set(storage._events) == {"probe"}


def test_without_a_cap_there_is_no_daily_limit():
    person = make_user()
    for _ in range(3):
        add_generation(person, "a lighthouse")
    with session_scope() as session:
        abuse.check_daily_cap(session, get_settings(), person.id)


def test_the_daily_cap_counts_today_utc_and_says_when_it_resets(monkeypatch):
    monkeypatch.setenv("RUPALI_GENERATION_DAILY_CAP", "2")
    reset_settings()
    settings = get_settings()
    person, other = make_user(), make_user()
    late = _next_midnight() - clock.now() + timedelta(hours=23, minutes=59, seconds=30)  # 23:59:30 UTC tomorrow
    add_generation(person, "the day before's", at=late - timedelta(days=1))
    add_generation(person, "this morning's", at=late - timedelta(hours=23))  # 00:59:30
    add_generation(other, "someone else's", at=late - timedelta(hours=23))
    with clock.travel(late - timedelta(hours=5)), session_scope() as session:
        abuse.check_daily_cap(session, settings, person.id)  # one today: one more is allowed
    add_generation(person, "this afternoon's", at=late - timedelta(hours=5))  # 18:59:30
    with clock.travel(late - timedelta(hours=3)), session_scope() as session, \
            pytest.raises(abuse.DailyCapReached) as refused:
        abuse.check_daily_cap(session, settings, person.id)
    assert refused.value.retry_after == 3 * 3600 + 30 and refused.value.message.endswith("in 3 hours and 1 minute.")
    with clock.travel(late), session_scope() as session, pytest.raises(abuse.DailyCapReached) as refused:
        abuse.check_daily_cap(session, settings, person.id)
    assert refused.value.retry_after == 30
    assert refused.value.message == ("You have started the 2 generations allowed per day. You can start more "
                                     "after midnight UTC, in 30 seconds.")
    with clock.travel(late), session_scope() as session:
        abuse.check_daily_cap(session, settings, other.id)  # their one is theirs
    with clock.travel(late + timedelta(seconds=31)), session_scope() as session:
        abuse.check_daily_cap(session, settings, person.id)  # a new UTC day


async def test_submissions_at_the_same_moment_never_pass_the_daily_cap_together(monkeypatch):
    monkeypatch.setenv("RUPALI_GENERATION_DAILY_CAP", "2")
    reset_settings()
    settings, person = get_settings(), make_user()
    choice = await offline_choice()
    form = GenerationForm(prompt="a lighthouse", model=choice.key, width=512, height=512, count=1)
    outcomes = await asyncio.to_thread(at_once, 8, lambda session, _n: abuse.submit(
        session, settings, person, choice, form, FreeGeneration()), abuse.DailyCapReached)
    assert outcomes.count(ACCEPTED) == 2, outcomes


async def test_a_capped_submission_records_nothing(monkeypatch):
    monkeypatch.setenv("RUPALI_GENERATION_DAILY_CAP", "1")
    reset_settings()
    settings = get_settings()
    runtime = Runtime.build(settings)
    person = make_user()
    choice = await runtime.providers.find("offline:sketch-v1")
    form = generations.GenerationForm(prompt="a red lighthouse", model="offline:sketch-v1", width=512, height=512)
    with session_scope() as session:
        first = abuse.submit(session, settings, person, choice, form, runtime.credits)
    with session_scope() as session, pytest.raises(abuse.DailyCapReached):
        abuse.submit(session, settings, person, choice, form, runtime.credits)
    with session_scope() as session:
        assert [generation.id for generation in session.exec(select(Generation)).all()] == [first.id]
