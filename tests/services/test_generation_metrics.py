"""Generation metrics: duration and outcome by provider, NSFW flags and blocks, blocked prompts."""

from __future__ import annotations

import asyncio

from sqlmodel import select

from rupali import metrics
from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.models import Generation, GenerationStatus
from rupali.services import generation as generations
from tests.services.test_generation import OFFLINE, _finished, _form, _submit, studio  # noqa: F401  (fixture)
from tests.utils.factories import make_user


def _value(name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def _settled(runtime) -> None:
    """The database says finished a moment before the queue's bookkeeping (and its metrics) is done."""
    for _ in range(200):
        if runtime.queue.running_count == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the queue never settled")


async def test_a_finished_generation_is_counted_and_timed_by_provider(studio):  # noqa: F811
    before = _value("rupali_generations_total", provider="offline", outcome="succeeded")
    timed = _value("rupali_generation_duration_seconds_count", provider="offline")
    generation = await _submit(studio, make_user())
    assert (await _finished(generation.id)).status == GenerationStatus.SUCCEEDED
    await _settled(studio)
    assert _value("rupali_generations_total", provider="offline", outcome="succeeded") == before + 1
    assert _value("rupali_generation_duration_seconds_count", provider="offline") == timed + 1


async def test_flagged_and_withheld_images_are_counted(studio, monkeypatch):  # noqa: F811
    monkeypatch.setattr(studio.settings, "nsfw_threshold", 0.0)  # everything counts as flagged
    flagged = _value("rupali_nsfw_events_total", event="flagged")
    await _finished((await _submit(studio, make_user())).id)
    await _settled(studio)
    assert _value("rupali_nsfw_events_total", event="flagged") == flagged + 1
    monkeypatch.setattr(studio.settings, "nsfw_policy", "block")
    withheld = _value("rupali_nsfw_events_total", event="withheld")
    blocked = _value("rupali_generations_total", provider="offline", outcome="blocked")
    done = await _finished((await _submit(studio, make_user(), count=2)).id)
    assert done.status == GenerationStatus.BLOCKED
    await _settled(studio)
    assert _value("rupali_nsfw_events_total", event="withheld") == withheld + 2
    assert _value("rupali_generations_total", provider="offline", outcome="blocked") == blocked + 1


async def test_a_prompt_stopped_by_the_blocklist_is_counted(studio, monkeypatch):  # noqa: F811
    monkeypatch.setenv("RUPALI_PROMPT_BLOCKLIST", "gore")
    reset_settings()
    before = _value("rupali_nsfw_events_total", event="prompt_blocked")
    choice = await studio.providers.find(OFFLINE)
    with session_scope() as session:
        generations.submit(session, get_settings(), make_user(), choice, _form(prompt="gore"), studio.credits)
    assert _value("rupali_nsfw_events_total", event="prompt_blocked") == before + 1
    with session_scope() as session:
        assert session.exec(select(Generation)).one().status == GenerationStatus.BLOCKED
