"""Evidence holds: placing and releasing them (audited under the hold, never the person), what a hold keeps from
erasure, the deletion job and retention until it is released, and the evidence bundle an administrator downloads."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlmodel import SQLModel

from rupali import clock
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.models import (
    AuditEntry,
    DataExport,
    EvidenceHold,
    Generation,
    Image,
    PrivacyRequest,
    RequestKind,
    Role,
    SupportTicket,
    Upload,
    User,
)
from rupali.privacy import erasure, inventory, retention
from rupali.privacy.inventory import Subject
from rupali.services import deletion, exports, holds, uploads
from rupali.storage import LocalStorage
from tests.services.test_gallery import add_generation
from tests.services.test_retention import PERIOD_ROWS, png
from tests.services.test_retention import run as retention_run
from tests.utils.at_once import ACCEPTED, at_once
from tests.utils.factories import PASSWORD, make_user
from tests.utils.personal_data import Person, fill, user_tables

REASON = "Police request 2026/114: preserve the account for the investigation"
DAY = timedelta(days=1)


@pytest.fixture
def storage() -> LocalStorage:
    return LocalStorage.from_settings(get_settings())


def _admin(email: str = "boss@example.com") -> User:
    return make_user(email=email, full_name="Boss", role=Role.ADMIN)


def _place(actor: User, person_id: uuid.UUID, reason: str = REASON) -> EvidenceHold:
    with session_scope() as session:
        return holds.place_hold(session, actor, person_id, reason)


def _release(actor: User, hold_id: uuid.UUID, reason: str = "The investigation is closed") -> EvidenceHold:
    with session_scope() as session:
        return holds.release_hold(session, actor, hold_id, reason)


def _exists(model: type[SQLModel], row_id: object) -> bool:
    with session_scope() as session:
        return session.get(model, row_id) is not None


def _audit() -> list[AuditEntry]:
    with session_scope() as session:
        return list(session.exec(select(AuditEntry).order_by(AuditEntry.id)).scalars().all())


# --- placing and releasing ------------------------------------------------------------------------------------------

def test_placing_and_releasing_are_audited_under_the_hold_and_never_name_the_person():
    boss, ada = _admin(), make_user(email="ada@example.com")
    hold = _place(boss, ada.id)
    with session_scope() as session:
        assert holds.active_hold(session, ada.id).id == hold.id and holds.is_held(session, ada.id)
    assert (hold.reason, hold.placed_by, hold.released_at) == (REASON, boss.id, None)
    released = _release(boss, hold.id)
    assert released.released_by == boss.id and released.release_reason == "The investigation is closed"
    with session_scope() as session:
        assert holds.active_hold(session, ada.id) is None
    entries = _audit()
    assert [(entry.action, entry.actor_id, entry.target_kind, entry.target_id, entry.target_user_id, entry.reason)
            for entry in entries] == [
        (holds.PLACED, boss.id, "hold", str(hold.id), None, REASON),
        (holds.RELEASED, boss.id, "hold", str(hold.id), None, "The investigation is closed")]
    # Nothing of the hold names the person: no id, no address, in any field of its entries.
    assert not any(str(ada.id) in value or ada.email in value
                   for entry in entries for value in (entry.target_id, entry.reason, entry.detail))


def test_the_persons_own_download_says_nothing_of_the_hold(storage):
    boss, ada = _admin(), make_user(email="ada@example.com")
    hold = _place(boss, ada.id)
    with session_scope() as session:
        export = exports.request_export(session, get_settings(), session.get(User, ada.id))
    assert exports.build(get_settings(), export.id)
    with session_scope() as session:
        key = session.get(DataExport, export.id).storage_key
    with zipfile.ZipFile(storage.path(key)) as archive:
        names = archive.namelist()
        content = b"\n".join(archive.read(name) for name in names)
    assert "data/evidence_hold.json" not in names and "data/audit_entry.json" in names
    assert str(hold.id).encode() not in content and REASON.encode() not in content


def test_holds_placed_at_the_same_moment_make_one():
    boss, ada = _admin(), make_user()
    outcomes = at_once(4, lambda session, n: holds.place_hold(session, boss, ada.id, f"Authority number {n} asks"),
                       holds.HoldError)
    assert outcomes.count(ACCEPTED) == 1, outcomes
    with session_scope() as session:
        assert session.execute(select(func.count()).select_from(EvidenceHold)).scalar_one() == 1


def test_one_active_hold_per_account_and_a_new_one_after_the_release():
    boss, ada = _admin(), make_user()
    first = _place(boss, ada.id)
    with pytest.raises(holds.HoldError, match="already on hold"):
        _place(boss, ada.id, "A second authority asks too")
    _release(boss, first.id)
    with pytest.raises(holds.HoldError, match="already released"):
        _release(boss, first.id)
    second = _place(boss, ada.id, "A second authority asks too")
    with session_scope() as session:
        assert holds.active_hold(session, ada.id).id == second.id
        assert session.execute(select(func.count()).select_from(EvidenceHold)).scalar_one() == 2
        view = holds.holds_of(session, boss, ada.id)
    assert view.active.id == second.id and [row.id for row in view.past] == [first.id]
    assert view.active.placed_by == boss.email and view.past[0].released_by == boss.email


@pytest.mark.parametrize(("reason", "message"), [
    (None, "at least 3 characters"), ("  ok ", "at least 3 characters"), ("x" * 2001, "the limit is 2000"),
    ("bell \x07", r"control character U\+0007")])
def test_a_hold_needs_a_reason_of_3_to_2000_characters(reason, message):
    boss, ada = _admin(), make_user()
    with pytest.raises(holds.HoldError, match=message):
        _place(boss, ada.id, reason)
    hold = _place(boss, ada.id, "Two lines:\nfirst and second" + "." * 1970)
    assert len(hold.reason) == 1997
    with pytest.raises(holds.HoldError, match="at least 3 characters"):
        _release(boss, hold.id, "")
    with session_scope() as session:
        assert session.get(EvidenceHold, hold.id).released_at is None
    assert [entry.action for entry in _audit()] == [holds.PLACED]


def test_only_active_administrators_act_and_only_on_accounts_that_exist():
    boss, member, ada = _admin(), make_user(email="member@example.com"), make_user(email="ada@example.com")
    with pytest.raises(holds.HoldError, match="Only administrators"):
        _place(member, ada.id)
    with pytest.raises(holds.HoldError, match="your own account"):
        _place(boss, boss.id)
    for unknown in (uuid.uuid4(), "not-an-id"):
        with pytest.raises(holds.HoldError, match="no longer exists"):
            _place(boss, unknown)
    hold = _place(boss, ada.id)
    with pytest.raises(holds.HoldError, match="Only administrators"):
        _release(member, hold.id)
    with session_scope() as session:  # demoted since: the stale object in hand is not trusted
        session.get(User, boss.id).role = Role.USER
    with pytest.raises(holds.HoldError, match="Only administrators"):
        _release(boss, hold.id)
    with pytest.raises(holds.HoldError, match="no longer exists"):
        _release(_admin("other@example.com"), uuid.uuid4())
    assert [entry.action for entry in _audit()] == [holds.PLACED]


# --- what a hold keeps ----------------------------------------------------------------------------------------------

def test_a_held_account_survives_erasure_and_retention_until_the_hold_is_released(storage):
    boss, ada = _admin(), make_user(email="ada@example.com")
    with session_scope() as session:
        deletion.request_deletion(session, get_settings(), session.get(User, ada.id), password=PASSWORD)
    _, images = add_generation(ada, "a lighthouse kept as evidence", images=1, expires_in=5 * DAY)
    hold = _place(boss, ada.id)
    grace = timedelta(days=get_settings().retention_account_grace_days)
    with clock.travel(grace + DAY):
        counts = retention_run()
        assert counts["accounts past grace"] == 0 and counts["image"] == 0
        with session_scope() as session:
            person = session.get(User, ada.id)
            assert person is not None and deletion.is_pending(person)  # still pending, not erased
        assert _exists(Image, images[0].id) and storage.exists(images[0].original_key)
        # Every way to erase refuses with the reason, and changes nothing.
        with session_scope() as session, pytest.raises(erasure.AccountHeld,
                                                       match=r"^This account is under an evidence hold: "):
            erasure.purge_user(session, storage, ada.id, reason="administrator")
        requests_before = _erasure_requests()
        with session_scope() as session, pytest.raises(deletion.DeletionError, match="under an evidence hold"):
            deletion.erase_now(session, get_settings(), storage, session.get(User, ada.id))
        assert _erasure_requests() == requests_before  # refused before the request was logged
        assert _exists(User, ada.id)

        _release(boss, hold.id)
        counts = retention_run()
        assert counts["accounts past grace"] == 1 and counts["image"] == 1
    assert not _exists(User, ada.id) and not storage.exists(images[0].original_key)
    with session_scope() as session:  # the hold went with the account; its record stays, naming no one
        assert session.execute(select(func.count()).select_from(EvidenceHold)).scalar_one() == 0
    assert [(entry.action, entry.target_id) for entry in _audit()] == [
        (holds.PLACED, str(hold.id)), (holds.RELEASED, str(hold.id))]


def _erasure_requests() -> int:
    with session_scope() as session:
        return session.execute(select(func.count()).select_from(PrivacyRequest).where(
            PrivacyRequest.kind == RequestKind.ERASURE)).scalar_one()


def test_held_accounts_do_not_fill_the_deletion_jobs_batches():
    """Held accounts are left out of the query: a batch of one still reaches the account behind them."""
    boss = _admin()
    held, free = make_user(email="held@example.com"), make_user(email="free@example.com")
    for person in (held, free):  # the held one asked first, so it would come first
        with session_scope() as session:
            deletion.request_deletion(session, get_settings(), session.get(User, person.id), password=PASSWORD)
    hold = _place(boss, held.id)
    settings, store = get_settings(), LocalStorage.from_settings(get_settings())
    with clock.travel(timedelta(days=settings.retention_account_grace_days) + DAY):
        with session_scope() as session:
            assert deletion.purge_due(session, settings, store, limit=1, dry_run=True) == 1
        with session_scope() as session:
            assert deletion.purge_due(session, settings, store, limit=1) == 1
        assert _exists(User, held.id) and not _exists(User, free.id)
        with session_scope() as session:
            assert deletion.purge_due(session, settings, store, limit=1) == 0
        _release(boss, hold.id)
        with session_scope() as session:
            assert deletion.purge_due(session, settings, store, limit=1) == 1
    assert not _exists(User, held.id)


def test_never_confirmed_single_sign_on_accounts_on_hold_are_kept():
    from rupali.models import OidcIdentity

    boss = _admin()
    unconfirmed = make_user(password=None, onboarded=False)
    with session_scope() as session:
        session.add(OidcIdentity(user_id=unconfirmed.id, provider="https://id.example", subject="s-1",
                                 email=unconfirmed.email))
    hold = _place(boss, unconfirmed.id)
    with clock.travel(timedelta(hours=25)):
        assert retention_run()["never-confirmed accounts"] == 0
        assert _exists(User, unconfirmed.id)
        _release(boss, hold.id)
        assert retention_run()["never-confirmed accounts"] == 1
    assert not _exists(User, unconfirmed.id)


USER_PERIOD_TABLES = sorted(entry.table for entry in inventory.entries()
                            if entry.declaration.retained_from and entry.declaration.subject is Subject.USER)


def test_retention_keeps_a_held_accounts_rows_in_every_table_and_takes_everyone_elses(storage):
    boss, held, free = _admin(), make_user(email="held@example.com"), make_user(email="free@example.com")
    made: dict[str, dict[str, object]] = {"held": {}, "free": {}}
    subjects = {entry.table: entry.declaration.subject_column for entry in inventory.entries()}
    with session_scope() as session:
        for name, person in (("held", held), ("free", free)):
            for table, factory in PERIOD_ROWS.items():
                row = factory(person)
                if table in USER_PERIOD_TABLES:  # tied to the person (a support ticket is a visitor's by default)
                    setattr(row, subjects[table], person.id)
                session.add(row)
                session.flush()
                made[name][table] = (type(row), row.id)
        unlinked = PERIOD_ROWS["support_ticket"](held)  # a visitor's ticket: no account, no hold
        assert unlinked.user_id is None
        session.add(unlinked)
    uploaded = {}
    with session_scope() as session:
        for name, person in (("held", held), ("free", free)):
            uploaded[name] = uploads.store(session, storage, get_settings(), session.get(User, person.id), png())
    expiring = {name: add_generation(person, f"{name} expiring", images=1, expires_in=5 * DAY)[1][0]
                for name, person in (("held", held), ("free", free))}
    hold = _place(boss, held.id)
    # Past every period (the longest: transaction records, 7 years).
    with clock.travel(8 * 366 * DAY):
        dry = retention.apply(get_settings(), storage, dry_run=True).counts()
        counts = retention_run()
        assert {table: counts[table] for table in dry} == dry  # the dry run counts what the run deletes
        for table in USER_PERIOD_TABLES:
            model, row_id = made["held"][table]
            assert _exists(model, row_id), f"{table}: the held account's row went"
            model, row_id = made["free"][table]
            assert not _exists(model, row_id), f"{table}: the other account's row stayed"
        for table in set(PERIOD_ROWS) - set(USER_PERIOD_TABLES):  # visitors' rows go
            for name in ("held", "free"):
                assert not _exists(*made[name][table]), table
        assert not _exists(SupportTicket, unlinked.id)  # and so do rows of no account
        assert _exists(Image, expiring["held"].id) and storage.exists(expiring["held"].original_key)
        assert not _exists(Image, expiring["free"].id) and not storage.exists(expiring["free"].original_key)
        assert _exists(Upload, uploaded["held"].id) and storage.exists(uploaded["held"].key)
        assert not _exists(Upload, uploaded["free"].id)
        # The record of the hold stays while it lasts, though older than the audit log's period.
        assert [entry.action for entry in _audit() if entry.target_kind == "hold"] == [holds.PLACED]

        _release(boss, hold.id)
        counts = retention_run()
        for table in USER_PERIOD_TABLES:
            assert not _exists(*made["held"][table]), f"{table}: kept after the release"
        assert counts["image"] == 1 and counts["upload"] == 1
        assert not _exists(Image, expiring["held"].id) and not storage.exists(expiring["held"].original_key)
        assert not _exists(Upload, uploaded["held"].id) and not storage.exists(uploaded["held"].key)
        assert _exists(Generation, expiring["held"].generation_id)  # prompts stay until the person deletes them
        # The old placement entry goes with the audit log's period; the release is young.
        assert [entry.action for entry in _audit() if entry.target_kind == "hold"] == [holds.RELEASED]
    assert _exists(User, held.id) and _exists(User, free.id)


# --- the evidence bundle --------------------------------------------------------------------------------------------

def _fill(storage: LocalStorage, email: str, name: str, prompt: str) -> Person:
    return fill(storage, email=email, name=name, prompt=prompt, negative_prompt=f"no {name} watermark")


def _bundle(storage: LocalStorage, actor: User, user_id: object) -> tuple[holds.EvidencePlan, zipfile.ZipFile]:
    settings = get_settings()
    with session_scope() as session:
        plan = holds.prepare_evidence(session, settings, storage, actor, user_id)
    assert plan is not None
    data = b"".join(holds.evidence_stream(settings, storage, plan))
    return plan, zipfile.ZipFile(io.BytesIO(data))


def test_the_evidence_bundle_holds_every_table_and_file_of_the_account_and_nothing_of_anyone_else(storage):
    boss = _admin()
    erin = _fill(storage, "erin.evidence@example.com", "Erin Evidence", "a violet heron over Lake Bled")
    kim = _fill(storage, "kim.other@example.org", "Kim Other", "a brass owl in a snowy library")
    hold = _place(boss, erin.user_id)
    plan, archive = _bundle(storage, boss, erin.user_id)
    names = set(archive.namelist())
    manifest = json.loads(archive.read(holds.MANIFEST))

    # Rows: every table about account holders, exported to the person or not, with exactly the person's rows.
    with session_scope() as session:
        for entry in inventory.entries():
            if entry.table not in user_tables():
                continue
            table = entry.model.__table__
            subject = table.c[entry.declaration.subject_column]
            expected = session.execute(select(func.count()).select_from(table).where(
                subject == erin.user_id)).scalar_one()
            rows = json.loads(archive.read(f"data/{entry.table}.json"))
            assert len(rows) == expected >= 1, entry.table
            assert {row[entry.declaration.subject_column] for row in rows} == {str(erin.user_id)}
            keys = [column.name for column in table.primary_key.columns]
            found = {"-".join(str(row[key]) for key in keys) for row in rows}
            assert {str(row_id) for row_id in erin.ids.get(entry.table, [])} <= found, entry.table
            assert next(t for t in manifest["tables"] if t["table"] == entry.table)["rows"] == expected
    holds_rows = json.loads(archive.read("data/evidence_hold.json"))
    assert str(hold.id) in {row["id"] for row in holds_rows}  # the hold itself, kept from the person's export
    assert "data/account_token.json" in names  # not exported to the person either
    everything = b"\n".join(archive.read(name) for name in names)
    for secret in (b"password_hash", b"token_hash", b"key_hash"):
        assert secret not in everything

    # Files: the originals, uploads and profile picture as stored, each with its SHA-256 in the manifest.
    expected_files = {key: digest for key, digest in erin.files.items()
                      if not key.startswith(("thumbnails/", "exports/"))}
    listed = {item["storage_key"]: item for item in manifest["files"]}
    assert set(listed) == set(expected_files)
    for key, digest in expected_files.items():
        item = listed[key]
        assert item["sha256"] == digest == hashlib.sha256(archive.read(item["path"])).hexdigest()
    data_files = [data for table in manifest["tables"] for data in table["data"]]
    paths = {data["path"] for data in data_files} | {item["path"] for item in listed.values()}
    assert paths | {holds.MANIFEST} == names
    for data in data_files:
        assert data["sha256"] == hashlib.sha256(archive.read(data["path"])).hexdigest()
    assert manifest["missing_files"] == []

    # The manifest says who downloaded it, when, and under which hold.
    assert manifest["hold"] == {"id": str(hold.id), "reason": REASON, "placed_by": boss.email,
                                "placed_at": manifest["hold"]["placed_at"]}
    assert manifest["downloaded_by"] == {"id": str(boss.id), "email": boss.email}
    assert manifest["account"] == {"id": str(erin.user_id), "email": erin.email}
    assert plan.filename.startswith(f"rupali-evidence-{hold.id.hex[:8]}-")

    # Nothing of Kim: no text, no id, no file.
    for trace in (kim.email, kim.name, kim.prompt, str(kim.user_id)):
        assert trace.encode() not in everything, trace
    contents = {hashlib.sha256(archive.read(name)).hexdigest() for name in names}
    assert contents.isdisjoint(kim.files.values())

    # The download is in the audit log, under the hold.
    [entry] = [entry for entry in _audit() if entry.action == holds.EVIDENCE]
    assert (entry.actor_id, entry.target_kind, entry.target_id, entry.target_user_id) == (
        boss.id, "hold", str(hold.id), None)
    assert f"{len(listed)} files" in entry.detail


def test_the_evidence_bundle_needs_an_active_hold_and_an_administrator(storage):
    boss, member, ada = _admin(), make_user(email="member@example.com"), make_user(email="ada@example.com")
    settings = get_settings()
    with session_scope() as session, pytest.raises(holds.NotHeld, match="not on hold"):
        holds.prepare_evidence(session, settings, storage, boss, ada.id)
    hold = _place(boss, ada.id)
    with session_scope() as session, pytest.raises(holds.HoldError, match="Only administrators"):
        holds.prepare_evidence(session, settings, storage, member, ada.id)
    with session_scope() as session:
        assert holds.prepare_evidence(session, settings, storage, boss, uuid.uuid4()) is None
        assert holds.prepare_evidence(session, settings, storage, boss, "../etc") is None
    _release(boss, hold.id)
    with session_scope() as session, pytest.raises(holds.NotHeld):
        holds.prepare_evidence(session, settings, storage, boss, ada.id)
    assert [entry.action for entry in _audit()] == [holds.PLACED, holds.RELEASED]  # refusals record nothing


def test_a_file_gone_from_storage_is_named_in_the_manifest(storage):
    boss, ada = _admin(), make_user(email="ada@example.com")
    _, images = add_generation(ada, "a lost file", images=2)
    _place(boss, ada.id)
    storage.path(images[0].original_key).unlink()
    _plan, archive = _bundle(storage, boss, ada.id)
    manifest = json.loads(archive.read(holds.MANIFEST))
    assert manifest["missing_files"] == [f"files/image/{images[0].id}.png"]
    assert [item["storage_key"] for item in manifest["files"]] == [images[1].original_key]
