"""Moderation without UI: the queue of flagged images and blocked generations, dismissing, removing an image (files,
row, the owner's mail, the audit entry), suspending the owner, the repeat-offender rule for blocklist hits, and what
records why a generation was blocked. Real database, real files, real queue."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
from sqlmodel import select

from rupali import clock
from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.models import (
    AuditEntry,
    Generation,
    GenerationStatus,
    Image,
    OutboxMessage,
    PromptStrike,
    Role,
    User,
)
from rupali.providers import ImageProviders
from rupali.runtime import Runtime
from rupali.services import admin, ledger, moderation, sessions, suspension
from rupali.services import generation as generations
from rupali.storage import LocalStorage
from tests.services.test_gallery import add_generation
from tests.services.test_generation import _finished, _form
from tests.utils.factories import make_user
from tests.utils.runware_server import RunwareServer

REASON = "Depicts a real person without their consent"
RUNWARE_KEY = "rw-secret-key-0123456789abcdef"


def _boss(email: str = "boss@example.com") -> User:
    return make_user(email=email, full_name="Boss", role=Role.ADMIN)


def _blocked(user: User, prompt: str, *, blocked_by: str | None = "blocklist", error: str = "Not allowed.",
             at: timedelta = timedelta(0), reviewed: bool = False) -> Generation:
    """A generation that ended blocked, created ``at`` from now."""
    with clock.travel(at), session_scope() as session:
        generation = Generation(user_id=user.id, status=GenerationStatus.BLOCKED, provider="offline",
                                model="sketch-v1", model_label="Sketch", prompt=prompt, width=512, height=512,
                                steps=20, guidance=7.0, count=1, seed=1, blocked_by=blocked_by, error=error,
                                created_at=clock.now(), finished_at=clock.now(),
                                reviewed_at=clock.now() if reviewed else None)
        session.add(generation)
        return generation


def _flag(image: Image, **values: object) -> None:
    with session_scope() as session:
        stored = session.get(Image, image.id)
        for name, value in values.items():
            setattr(stored, name, value)
        session.add(stored)


def _run(action, *args, **values):
    with session_scope() as session:
        return action(session, *args, **values)


def _storage() -> LocalStorage:
    return LocalStorage.from_settings(get_settings())


def _rows(model, *conditions) -> list:
    with session_scope() as session:
        return list(session.exec(select(model).where(*conditions)).all())


def _account(user_id: uuid.UUID) -> User:
    with session_scope() as session:
        return session.get(User, user_id)


# --- the queue -------------------------------------------------------------------------------------------------


def test_the_queue_holds_unreviewed_flagged_images_and_blocked_generations_newest_first():
    ada, grace = make_user(email="ada@example.com"), make_user(email="grace@example.com")
    _, [scored] = add_generation(ada, "a scored image", nsfw=True, at=timedelta(minutes=-3))  # score 0.9
    _, [by_provider] = add_generation(grace, "flagged by the provider", at=timedelta(minutes=-2))
    _flag(by_provider, provider_nsfw=True)  # its own score is low
    add_generation(ada, "an innocent image")
    _, [reviewed] = add_generation(ada, "already reviewed", nsfw=True)
    _flag(reviewed, reviewed_at=clock.now())
    add_generation(ada, "expired", nsfw=True, expires_in=timedelta(days=-1))
    _, [at_threshold] = add_generation(grace, "x " * 200, at=timedelta(minutes=-1))
    _flag(at_threshold, nsfw_score=get_settings().nsfw_threshold)  # "at or above"
    stopped = _blocked(ada, "a forbidden prompt", error="This prompt contains “forbidden”.", at=timedelta(minutes=-5))
    by_filter = _blocked(grace, "every image withheld", blocked_by="nsfw")
    _blocked(grace, "looked at already", reviewed=True)
    with session_scope() as session:  # one blocklist hit of Ada's today
        session.add(PromptStrike(user_id=ada.id, term="forbidden"))

    with session_scope() as session:
        found = moderation.queue(session, get_settings())

    assert [item.id for item in found.images.items] == [at_threshold.id, by_provider.id, scored.id]
    assert found.images.total == 3 and found.images.next_cursor is None
    first, second, third = found.images.items
    assert (second.owner, second.provider_nsfw, second.prompt) == ("grace@example.com", True,
                                                                   "flagged by the provider")
    assert (third.owner, third.score, third.model_label) == ("ada@example.com", 0.9, "Sketch-V1")
    assert first.prompt == " ".join(["x"] * 60) + "…" and len(first.prompt) <= moderation.EXCERPT  # one line, cut
    assert [item.id for item in found.generations.items] == [by_filter.id, stopped.id]
    newest, older = found.generations.items
    assert (newest.blocked_by, newest.blocked_by_label, newest.owner, newest.strikes) == (
        "nsfw", "NSFW filter", "grace@example.com", 0)
    assert (older.blocked_by_label, older.reason, older.prompt, older.strikes) == (
        "Blocklist", "This prompt contains “forbidden”.", "a forbidden prompt", 1)


def test_the_threshold_is_the_current_setting(monkeypatch: pytest.MonkeyPatch):
    ada = make_user()
    _, [image] = add_generation(ada, "borderline")
    _flag(image, nsfw_score=0.5)
    with session_scope() as session:
        assert moderation.flagged_images(session, get_settings()).total == 0
    monkeypatch.setenv("RUPALI_NSFW_THRESHOLD", "0.5")
    reset_settings()
    with session_scope() as session:
        assert [item.id for item in moderation.flagged_images(session, get_settings()).items] == [image.id]


def test_queue_pages_cover_everything_once_and_tampered_cursors_get_a_sentence():
    ada = make_user()
    for n in range(5):
        add_generation(ada, f"flagged {n}", nsfw=True, at=timedelta(minutes=n))
        _blocked(ada, f"blocked {n}", at=timedelta(minutes=n))
    seen_images, seen_generations, cursors = [], [], (None, None)
    while True:
        with session_scope() as session:
            images = moderation.flagged_images(session, get_settings(), cursor=cursors[0], limit=2)
            blocked = moderation.blocked_generations(session, cursor=cursors[1], limit=2)
        seen_images += [item.prompt for item in images.items]
        seen_generations += [item.prompt for item in blocked.items]
        assert images.total == blocked.total == 5
        if images.next_cursor is None:
            assert blocked.next_cursor is None
            break
        cursors = (images.next_cursor, blocked.next_cursor)
    assert seen_images == [f"flagged {n}" for n in reversed(range(5))]
    assert seen_generations == [f"blocked {n}" for n in reversed(range(5))]
    for cursor in ("garbage", "MjAyNi0wMS0wMXxub3QtYS11dWlk", "\x00"):  # the middle one: "2026-01-01|not-a-uuid"
        with session_scope() as session, pytest.raises(moderation.ModerationError, match="not valid any more"):
            moderation.flagged_images(session, get_settings(), cursor=cursor)


# --- dismissing ------------------------------------------------------------------------------------------------


def test_dismissing_takes_an_item_off_the_queue_leaves_it_as_it_is_and_is_audited():
    boss, ada = _boss(), make_user(email="ada@example.com")
    _, [image] = add_generation(ada, "scored", nsfw=True)
    stopped = _blocked(ada, "a forbidden prompt", blocked_by="provider")

    _run(moderation.dismiss_image, boss, image.id)
    _run(moderation.dismiss_generation, boss, str(stopped.id))  # ids arrive from forms as text too

    with session_scope() as session:
        found = moderation.queue(session, get_settings())
        kept, generation = session.get(Image, image.id), session.get(Generation, stopped.id)
    assert found.images.items == [] and found.generations.items == []
    assert kept.reviewed_at is not None and kept.nsfw and _storage().exists(kept.original_key)
    assert generation.reviewed_at is not None and generation.status == GenerationStatus.BLOCKED
    entries = _rows(AuditEntry)
    assert [(e.actor_id, e.action, e.target_kind, e.target_id, e.target_user_id, e.detail) for e in entries] == [
        (boss.id, "moderation.dismiss", "image", str(image.id), ada.id, "NSFW score 0.90"),
        (boss.id, "moderation.dismiss", "generation", str(stopped.id), ada.id, "stopped by: AI provider")]
    with pytest.raises(moderation.ModerationError, match="already dismissed"):
        _run(moderation.dismiss_image, boss, image.id)
    with pytest.raises(moderation.ModerationError, match="no longer in the moderation queue"):
        _run(moderation.dismiss_generation, boss, stopped.id)
    assert len(_rows(AuditEntry)) == 2


def test_only_blocked_generations_can_be_dismissed():
    boss, ada = _boss(), make_user()
    succeeded, _ = add_generation(ada, "a fine image")
    with pytest.raises(moderation.ModerationError, match="no longer in the moderation queue"):
        _run(moderation.dismiss_generation, boss, succeeded.id)
    assert _rows(AuditEntry) == []


# --- removing --------------------------------------------------------------------------------------------------


def test_removal_deletes_the_files_and_queues_the_mail():
    boss, ada = _boss(), make_user(email="ada@example.com", full_name="Ada <b>Lovelace</b>")
    generation, [removed, kept] = add_generation(ada, "a <script>lighthouse</script> at dusk", images=2, nsfw=True)
    storage = _storage()
    files = (removed.original_key, removed.thumbnail_key)
    assert all(storage.exists(key) for key in files)
    reason = "Shows a real person <b>without</b> consent"

    _run(moderation.remove_image, get_settings(), storage, boss, removed.id, reason=reason)

    assert not any(storage.exists(key) for key in files)
    assert storage.exists(kept.original_key) and storage.exists(kept.thumbnail_key)  # its sibling stays
    assert [image.id for image in _rows(Image)] == [kept.id]
    assert [g.id for g in _rows(Generation)] == [generation.id]  # the prompt stays in the owner's history
    [message] = _rows(OutboxMessage)
    assert (message.recipient, message.user_id, message.subject) == (
        "ada@example.com", ada.id, "An image of yours was removed")
    assert "a <script>lighthouse</script> at dusk" in message.text_body and reason in message.text_body
    assert removed.created_at.strftime("%Y") in message.text_body and get_settings().operator_email in message.text_body
    assert "<script>" not in message.html_body and "<b>" not in message.html_body  # user text escaped
    assert "&lt;b&gt;without&lt;/b&gt;" in message.html_body and "&lt;script&gt;lighthouse" in message.html_body
    [entry] = _rows(AuditEntry)
    assert (entry.actor_id, entry.action, entry.target_kind, entry.target_id, entry.target_user_id, entry.reason) == (
        boss.id, "moderation.remove", "image", str(removed.id), ada.id, reason)
    assert entry.detail == f"NSFW score 0.90; generation {generation.id}"


def test_a_removal_that_rolls_back_keeps_the_files_the_row_and_sends_nothing():
    boss, ada = _boss(), make_user()
    _, [image] = add_generation(ada, "scored", nsfw=True)
    storage = _storage()
    with pytest.raises(RuntimeError), session_scope() as session:
        moderation.remove_image(session, get_settings(), storage, boss, image.id, reason=REASON)
        raise RuntimeError("the transaction fails after the removal")
    assert storage.exists(image.original_key) and storage.exists(image.thumbnail_key)
    assert [row.id for row in _rows(Image)] == [image.id]
    assert _rows(OutboxMessage) == [] and _rows(AuditEntry) == []


@pytest.mark.parametrize("reason", [None, "", "  ", "no", "bell \x07 in it", "x" * 501])
def test_a_removal_needs_a_reason_and_changes_nothing_without_one(reason):
    boss, ada = _boss(), make_user()
    _, [image] = add_generation(ada, "scored", nsfw=True)
    with pytest.raises(moderation.ModerationError) as refused:
        _run(moderation.remove_image, get_settings(), _storage(), boss, image.id, reason=reason)
    assert "reason" in str(refused.value).lower()
    assert [row.id for row in _rows(Image)] == [image.id] and _storage().exists(image.original_key)
    assert _rows(OutboxMessage) == [] and _rows(AuditEntry) == []


@pytest.mark.parametrize("image_id", [uuid.uuid4(), "00000000-0000-4000-8000-000000000000", "not-an-id", "",
                                      "' OR 1=1 --", None, 42])
def test_unknown_and_malformed_ids_are_a_sentence(image_id):
    boss = _boss()
    for action, values in ((moderation.dismiss_image, {}), (moderation.dismiss_generation, {}),
                           (moderation.suspend_owner, {"kind": "image", "reason": REASON}),
                           (moderation.suspend_owner, {"kind": "generation", "reason": REASON})):
        with pytest.raises(moderation.ModerationError, match="no longer"):
            _run(action, boss, image_id, **values)
    with pytest.raises(moderation.ModerationError, match="This image no longer exists"):
        _run(moderation.remove_image, get_settings(), _storage(), boss, image_id, reason=REASON)
    assert _rows(AuditEntry) == []


def test_an_expired_image_is_gone_for_moderation_too():
    boss, ada = _boss(), make_user()
    _, [image] = add_generation(ada, "old", nsfw=True, expires_in=timedelta(days=-1))
    with pytest.raises(moderation.ModerationError, match="This image no longer exists"):
        _run(moderation.remove_image, get_settings(), _storage(), boss, image.id, reason=REASON)
    assert _rows(OutboxMessage) == []


def test_members_and_demoted_administrators_cannot_act_on_anyones_images():
    ada, grace = make_user(email="ada@example.com"), make_user(email="grace@example.com")
    demoted = _boss("former@example.com")
    with session_scope() as session:
        session.get(User, demoted.id).role = Role.USER  # demoted after the page was opened: ``demoted`` is stale
    _, [image] = add_generation(ada, "scored", nsfw=True)
    stopped = _blocked(ada, "forbidden")
    for actor in (grace, ada, demoted):
        for action, args, values in (
                (moderation.dismiss_image, (image.id,), {}),
                (moderation.dismiss_generation, (stopped.id,), {}),
                (moderation.suspend_owner, (image.id,), {"kind": "image", "reason": REASON})):
            with pytest.raises(moderation.ModerationError, match="Only administrators can do this"):
                _run(action, actor, *args, **values)
        with pytest.raises(moderation.ModerationError, match="Only administrators can do this"):
            _run(moderation.remove_image, get_settings(), _storage(), actor, image.id, reason=REASON)
    with session_scope() as session:
        assert session.get(Image, image.id).reviewed_at is None
        assert session.get(Generation, stopped.id).reviewed_at is None
    assert _storage().exists(image.original_key) and _account(ada.id).is_active
    assert _rows(OutboxMessage) == [] and _rows(AuditEntry) == []


# --- suspending the owner ----------------------------------------------------------------------------------------


def test_suspending_the_owner_from_the_queue_is_the_administrators_suspension():
    boss, ada, grace = _boss(), make_user(email="ada@example.com"), make_user(email="grace@example.com")
    _, [image] = add_generation(ada, "scored", nsfw=True)
    stopped = _blocked(grace, "forbidden")
    with session_scope() as session:
        code = sessions.start(session, get_settings(), ada, method="password", ip="203.0.113.9", user_agent="test",
                              visitor_id="laptop")
        token = sessions.complete_handoff(session, code, "laptop")

    with pytest.raises(moderation.ModerationError, match="Give a reason of at least 3 characters"):
        _run(moderation.suspend_owner, boss, image.id, kind="image", reason="")
    _run(moderation.suspend_owner, boss, image.id, kind="image", reason=REASON)
    _run(moderation.suspend_owner, boss, stopped.id, kind="generation", reason="Keeps trying")

    assert (_account(ada.id).is_active, _account(ada.id).suspension_reason) == (False, REASON)
    assert _account(grace.id).suspended_at is not None
    with session_scope() as session:
        assert sessions.resolve(session, get_settings(), token) is None
        assert session.get(Image, image.id).reviewed_at is None  # still waiting: removing it is a separate choice
    assert [(e.actor_id, e.action, e.target_user_id, e.reason, e.detail) for e in _rows(AuditEntry)] == [
        (boss.id, "user.suspend", ada.id, REASON, "ended 1 session and 0 API keys"),
        (boss.id, "user.suspend", grace.id, "Keeps trying", "ended 0 sessions and 0 API keys")]
    with pytest.raises(moderation.ModerationError, match="already suspended"):
        _run(moderation.suspend_owner, boss, image.id, kind="image", reason=REASON)
    with pytest.raises(moderation.ModerationError, match="Choose an image or a generation"):
        _run(moderation.suspend_owner, boss, image.id, kind="user", reason=REASON)


def test_an_administrator_cannot_suspend_themselves_from_the_queue():
    boss = _boss()
    _, [image] = add_generation(boss, "my own test image", nsfw=True)
    with pytest.raises(moderation.ModerationError, match="You cannot suspend your own account"):
        _run(moderation.suspend_owner, boss, image.id, kind="image", reason=REASON)
    assert _account(boss.id).is_active


def test_suspend_account_by_the_system_records_no_actor():
    ada = make_user()
    with session_scope() as session:
        account = session.get(User, ada.id)
        ended = suspension.suspend_account(session, account, actor=None, reason="x" * 600)
    assert ended == 0
    stored = _account(ada.id)
    assert not stored.is_active and stored.suspension_reason == "x" * 500
    [entry] = _rows(AuditEntry)
    assert (entry.actor_id, entry.action, entry.target_user_id) == (None, "user.suspend", ada.id)


# --- repeat offenders ----------------------------------------------------------------------------------------------


@pytest.fixture
def strikes_per_day(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setenv("RUPALI_MODERATION_STRIKES_PER_DAY", "3")
    monkeypatch.setenv("RUPALI_PROMPT_BLOCKLIST", "forbidden, real person")
    reset_settings()
    yield 3


async def _blocked_submission(user: User, prompt: str = "something forbidden") -> Generation:
    """A prompt the blocklist stops, submitted the way the studio and the API do."""
    settings = get_settings()
    providers = ImageProviders.from_settings(settings)
    try:
        choice = await providers.find("offline:sketch-v1")
    finally:
        await providers.aclose()
    with session_scope() as session:
        generation = generations.submit(session, settings, user, choice, _form(prompt=prompt),
                                        ledger.hook_for(settings))
    assert generation.status == GenerationStatus.BLOCKED
    return generation


def _strike(user: User, at: timedelta = timedelta(0)) -> bool:
    with clock.travel(at), session_scope() as session:
        return moderation.record_strike(session, get_settings(), user, "forbidden")


async def test_the_nth_blocklist_hit_within_a_day_suspends_the_account_pending_review(strikes_per_day):
    ada = make_user(email="ada@example.com")
    with session_scope() as session:
        code = sessions.start(session, get_settings(), ada, method="password", ip="203.0.113.9", user_agent="test",
                              visitor_id="laptop")
        token = sessions.complete_handoff(session, code, "laptop")
    for n in range(strikes_per_day - 1):
        await _blocked_submission(ada, f"forbidden attempt {n}")
    assert _account(ada.id).is_active and _rows(AuditEntry) == []
    assert [strike.term for strike in _rows(PromptStrike)] == ["forbidden", "forbidden"]

    await _blocked_submission(ada, "A REAL PERSON again")

    stored = _account(ada.id)
    assert not stored.is_active and stored.suspended_at is not None
    assert stored.suspension_reason == ("3 prompts within 24 hours were stopped by the content rules (suspended "
                                        "automatically, pending review)")
    [entry] = _rows(AuditEntry)
    assert (entry.actor_id, entry.action, entry.target_user_id, entry.detail) == (
        None, "user.suspend", ada.id, "ended 1 session and 0 API keys")  # by the system
    assert max(_rows(PromptStrike), key=lambda strike: strike.id).term == "real person"
    with session_scope() as session:
        assert sessions.resolve(session, get_settings(), token) is None
    assert len(_rows(Generation, Generation.blocked_by == "blocklist")) == 3


def test_strikes_older_than_a_day_do_not_count(strikes_per_day):
    ada, grace = make_user(), make_user()
    assert not _strike(ada, timedelta(hours=-25)) and not _strike(ada, timedelta(hours=-24, minutes=-1))
    assert not _strike(grace) and not _strike(grace)  # someone else's strikes are theirs
    assert not _strike(ada) and not _strike(ada)
    assert _account(ada.id).is_active
    assert _strike(ada, timedelta(minutes=1))
    assert not _account(ada.id).is_active and _account(grace.id).is_active


def test_a_review_that_lifts_the_suspension_starts_the_count_afresh(strikes_per_day):
    boss, ada = _boss(), make_user()
    assert [_strike(ada, timedelta(minutes=n)) for n in range(3)] == [False, False, True]
    with clock.travel(timedelta(minutes=10)), session_scope() as session:
        admin.unsuspend_user(session, session.get(User, boss.id), ada.id, reason="Reviewed: a misunderstanding")
    assert [_strike(ada, timedelta(minutes=20 + n)) for n in range(3)] == [False, False, True]
    assert [e.actor_id for e in _rows(AuditEntry, AuditEntry.action == "user.suspend")] == [None, None]


def test_no_automatic_suspension_when_the_setting_is_zero_nor_for_administrators(monkeypatch: pytest.MonkeyPatch,
                                                                                  strikes_per_day):
    boss = _boss()
    assert not any(_strike(boss) for _ in range(5))  # administrators try the blocklist out
    assert _account(boss.id).is_active
    monkeypatch.setenv("RUPALI_MODERATION_STRIKES_PER_DAY", "0")
    reset_settings()
    ada = make_user()
    assert not any(_strike(ada) for _ in range(10))
    assert _account(ada.id).is_active and _rows(AuditEntry) == []
    assert len(_rows(PromptStrike, PromptStrike.user_id == ada.id)) == 10  # still counted


# --- what stopped a generation -------------------------------------------------------------------------------------


@pytest.fixture
def runware(monkeypatch: pytest.MonkeyPatch) -> Iterator[RunwareServer]:
    with RunwareServer(api_key=RUNWARE_KEY) as server:
        monkeypatch.setenv("RUPALI_RUNWARE_API_KEY", RUNWARE_KEY)
        monkeypatch.setenv("RUPALI_RUNWARE_URL", server.url)
        monkeypatch.setenv("RUPALI_RUNWARE_MODELS", "runware:100@1=FLUX.1 schnell")
        reset_settings()
        yield server


@pytest.fixture
async def studio() -> AsyncIterator[Runtime]:
    runtime = Runtime.build(get_settings())
    await runtime.start()
    yield runtime
    await runtime.stop()


@pytest.fixture
async def runware_studio(runware: RunwareServer) -> AsyncIterator[Runtime]:
    """The runtime, built once Runware is configured."""
    runtime = Runtime.build(get_settings())
    await runtime.start()
    yield runtime
    await runtime.stop()


async def _queued(runtime: Runtime, user: User, model: str, **changes: object) -> Generation:
    choice = await runtime.providers.find(model)
    with session_scope() as session:
        generation = generations.submit(session, runtime.settings, user, choice, _form(model=model, **changes),
                                        runtime.credits)
    assert generation.status == GenerationStatus.QUEUED
    runtime.queue.submit(generation.id, user.id)
    return await _finished(generation.id)


async def test_blocked_by_records_the_blocklist(strikes_per_day):
    generation = await _blocked_submission(make_user())
    with session_scope() as session:
        assert session.get(Generation, generation.id).blocked_by == "blocklist"


async def test_blocked_by_records_the_provider(runware: RunwareServer, runware_studio: Runtime):
    runware.blocked_words = {"forbidden"}
    user = make_user()
    done = await _queued(runware_studio, user, "runware:runware:100@1", prompt="something forbidden here", width=1024,
                         height=1024)
    assert (done.status, done.blocked_by) == (GenerationStatus.BLOCKED, "provider")
    fine = await _queued(runware_studio, user, "runware:runware:100@1", prompt="a lighthouse at dusk", width=1024,
                         height=1024)
    assert (fine.status, fine.blocked_by) == (GenerationStatus.SUCCEEDED, None)
    with session_scope() as session:
        assert [item.id for item in moderation.blocked_generations(session).items] == [done.id]


async def test_blocked_by_records_the_nsfw_filter_when_every_image_is_withheld(studio: Runtime,
                                                                                monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(studio.settings, "nsfw_policy", "block")
    monkeypatch.setattr(studio.settings, "nsfw_threshold", 0.0)  # everything counts as flagged
    done = await _queued(studio, make_user(), "offline:sketch-v1", count=2)
    assert (done.status, done.blocked_by) == (GenerationStatus.BLOCKED, "nsfw")
    assert _rows(PromptStrike) == []  # the filter's verdict is no strike against the person
