"""Data exports: complete (a row from every exported table, every file), nobody else's data, no secrets; one per
day; only for the owner; built again after a crash; a mail when ready; expiry reported sensibly."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import func
from sqlmodel import select

from rupali import clock, jobs, media_sweep, receipts
from rupali.clock import now
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.mail_templates import Mail
from rupali.models import (
    ApiKey,
    AuditEntry,
    CreditOrder,
    DataExport,
    EntryKind,
    ExportStatus,
    Feedback,
    Generation,
    GenerationStatus,
    Image,
    JobRunStatus,
    OidcIdentity,
    OrderStatus,
    OutboxMessage,
    PrivacyRequest,
    PromptStrike,
    RequestKind,
    RequestLog,
    RequestStatus,
    SupportMessage,
    SupportTicket,
    User,
)
from rupali.privacy import export as archive
from rupali.privacy import inventory
from rupali.services import api_keys, exports, ledger, mail, privacy_requests, profile, sessions, uploads
from rupali.storage import TEMPORARY_PREFIX, LocalStorage
from tests.services.test_gallery import add_generation
from tests.services.test_receipts import pdf_text
from tests.utils.at_once import ACCEPTED, at_once
from tests.utils.factories import make_user

ROOT = Path(__file__).resolve().parents[2]
MARKER = "zebra-marmalade-4411"  # the other person's distinctive text


def _storage() -> LocalStorage:
    return LocalStorage.from_settings(get_settings())


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (16, 16), colour).save(buffer, "PNG")
    return buffer.getvalue()


def _jpeg_image(user: User, prompt: str) -> Image:
    """A generation whose one image is a JPEG (the format cannot carry the parameters chunk)."""
    storage = _storage()
    image_id = uuid.uuid4()
    buffer = io.BytesIO()
    PILImage.new("RGB", (16, 16), (10, 200, 10)).save(buffer, "JPEG")
    with session_scope() as session:
        generation = Generation(user_id=user.id, status=GenerationStatus.SUCCEEDED, provider="offline",
                                model="sketch-v1", prompt=prompt, width=16, height=16, steps=4, guidance=3.5, count=1,
                                seed=99)
        session.add(generation)
        session.flush()
        storage.put(f"images/{image_id.hex}.jpg", buffer.getvalue())
        storage.put(f"thumbnails/{image_id.hex}.webp", buffer.getvalue())
        image = Image(id=image_id, user_id=user.id, generation_id=generation.id, position=0, seed=99, width=16,
                      height=16, format="JPEG", bytes=len(buffer.getvalue()), original_key=f"images/{image_id.hex}.jpg",
                      thumbnail_key=f"thumbnails/{image_id.hex}.webp", nsfw_score=0.0)
        session.add(image)
    return image


def _seed(email: str, text: str, colour: tuple[int, int, int]) -> dict[str, object]:
    """One person with a row in every table the export covers, and files: images, an upload, a profile picture.

    A table added to the inventory with ``export=True`` makes ``test_the_export_is_complete`` fail until it is
    seeded here too.
    """
    person = make_user(email=email, full_name=f"Person {text}")
    settings = get_settings()
    storage = _storage()
    generation, images = add_generation(person, f"a lighthouse, {text}", images=2, negative=f"blurry {text}")
    jpeg = _jpeg_image(person, f"a jpeg of {text}")
    with session_scope() as session:
        user = session.get(User, person.id)
        upload = uploads.store(session, storage, settings, user, _png(colour))
        profile.set_avatar(session, storage, user, _png(colour))
        key, secret = api_keys.create(session, user, f"key {text}")
        code = sessions.start(session, settings, user, method="password", ip="203.0.113.9", user_agent="Firefox",
                              visitor_id="v-" + text)
        sessions.complete_handoff(session, code, "v-" + text)
        session.add(OidcIdentity(user_id=user.id, provider="https://idp.example", subject=f"sub-{text}",
                                 email=email))
        privacy_requests.log(session, settings, kind=RequestKind.OBJECTION, user_id=user.id, note=f"note {text}")
        reset = f"{settings.public_url}/reset?token=SECRET{text.replace('-', '')}"
        mail.enqueue(session, to=email, user_id=user.id,
                     mail=Mail(f"Reset {text}", f"Reset it here: {reset}", f'<a href="{reset}">reset</a>'))
        ledger.open_account(session, settings, user.id)  # the credit account, with its sign-up bonus entry
        ledger.post_payment(session, settings, user.id, EntryKind.PURCHASE, 100, reference=f"order {text}",
                            key=f"purchase:{text}")
        order = CreditOrder(user_id=user.id, pack_key="starter", product_id="prod_starter", credits=100,
                            amount=500, currency="EUR", status=OrderStatus.PAID, customer_email=email,
                            country="DE", paid_amount=500, paid_at=now())
        session.add(order)
        session.add(RequestLog(kind="page", method="GET", route="/gallery", status=200, ip="203.0.113.9",
                               browser="Firefox 130", os="Ubuntu", device="desktop", user_id=user.id))
        session.add(AuditEntry(action="user.suspend", target_kind="user", target_id=str(user.id),
                               target_user_id=user.id, reason=f"reason {text}"))
        session.add(PromptStrike(user_id=user.id, term=f"term {text}"))
        ticket = SupportTicket(user_id=user.id, email=email, name=f"Person {text}", subject=f"Help {text}")
        session.add(ticket)
        session.flush()
        session.add(SupportMessage(ticket_id=ticket.id, user_id=user.id, body=f"Question {text}"))
        session.add(Feedback(user_id=user.id, generation_id=generation.id, rating=1, comment=f"Lovely {text}"))
        password_hash = user.password_hash
        key_hash = session.get(ApiKey, key.id).key_hash
    return {"user": person, "generation": generation, "images": [*images, jpeg], "upload": upload, "order": order,
            "secrets": [password_hash, key_hash, secret, f"SECRET{text.replace('-', '')}"]}


def _export(person: User) -> DataExport:
    settings = get_settings()
    with session_scope() as session:
        export = exports.request_export(session, settings, person)
    assert exports.build(settings, export.id)
    with session_scope() as session:
        return session.get(DataExport, export.id)


def _open(export: DataExport) -> zipfile.ZipFile:
    return zipfile.ZipFile(_storage().path(export.storage_key))


def _everything(archive_file: zipfile.ZipFile) -> bytes:
    """Every entry's uncompressed content and every name: what a search of the unpacked export would see."""
    return b"\n".join(name.encode() + b"\n" + archive_file.read(name) for name in archive_file.namelist())


def test_the_export_is_complete_and_holds_nothing_of_anyone_else(backend):
    mine = _seed("ada@example.com", "mine-1234", (200, 10, 10))
    theirs = _seed(f"{MARKER}@example.com", MARKER, (10, 10, 200))
    export = _export(mine["user"])
    assert export.status == ExportStatus.READY and export.progress == 1.0 and export.error == ""
    assert export.expires_at == export.finished_at + timedelta(days=7)
    with _open(export) as opened:
        assert opened.testzip() is None
        names = set(opened.namelist())
        assert export.files == len(names) and export.bytes == _storage().path(export.storage_key).stat().st_size
        readme = opened.read("README.txt").decode()
        # A row from every exported table, linked to this person only; every column but the secret ones.
        for entry in archive.exported_entries():
            rows = json.loads(opened.read(f"data/{entry.table}.json"))
            assert rows, f"no row of {entry.table!r} in the export: seed one in _seed (tests/services/test_export.py)"
            subject = entry.declaration.subject_column
            assert {row[subject] for row in rows} == {str(mine["user"].id)}
            columns = [c.name for c in entry.model.__table__.columns if not archive.is_secret(c.name)]
            assert all(list(row) == columns for row in rows)
            with_csv = f"data/{entry.table}.csv"
            assert with_csv in names
            table = list(csv.reader(io.StringIO(opened.read(with_csv).decode())))
            assert table[0] == columns and len(table) == len(rows) + 1
            assert f"data/{entry.table}.json" in readme and all(f"- {column} (" in readme for column in columns)
            assert entry.declaration.holds in " ".join(readme.split())
        # Every file: originals (PNG with parameters, JPEG with a .txt beside it), the upload, the profile picture.
        for image in mine["images"]:
            suffix = ".jpg" if image.format == "JPEG" else ".png"
            assert f"images/{image.id}{suffix}" in names
        png = PILImage.open(io.BytesIO(opened.read(f"images/{mine['images'][0].id}.png")))
        assert png.info["parameters"].startswith("a lighthouse, mine-1234\nNegative prompt: blurry mine-1234")
        assert opened.read(f"images/{mine['images'][2].id}.txt").decode().startswith("a jpeg of mine-1234")
        assert f"uploads/{mine['upload'].id}.png" in names and f"profile/{mine['user'].id}.webp" in names
        assert not any(name.startswith("thumbnails") for name in names)
        # The receipt of the paid order, and no other: PDFs compress their text, so it is read, not searched for.
        receipt = f"receipts/{receipts.receipt_filename(mine['order'])}"
        assert [name for name in names if name.startswith("receipts/")] == [receipt]
        receipt_text = pdf_text(opened.read(receipt))
        assert str(mine["order"].id) in receipt_text and "5.00 EUR" in receipt_text
        assert "ada@example.com" in receipt_text and MARKER not in receipt_text
        assert "receipts/receipt-<date paid>-<id>.pdf, 1 in all" in " ".join(readme.split())
        assert "None: every file is here." in readme
        everything = _everything(opened)
    # Nothing of the other person, in any name or content; no secret of either, not even hashed.
    for trace in (MARKER, str(theirs["user"].id), theirs["user"].id.hex, *(str(i.id) for i in theirs["images"]),
                  str(theirs["order"].id)):
        assert trace.encode() not in everything, trace
    for secret in mine["secrets"] + theirs["secrets"]:
        assert secret.encode() not in everything, "a secret is in the export"
    assert b"password_hash" not in everything and b"key_hash" not in everything and b"token_hash" not in everything
    assert b"/reset?token=removed" in everything  # the link is there, its one-time code is not
    assert b"mine-1234" in everything and b"ada@example.com" in everything


def test_every_paid_order_has_its_receipt_in_the_export_and_unpaid_ones_none(backend):
    person, other = make_user(email="buyer@example.com"), make_user(email=f"{MARKER}@example.com")
    orders = {}
    with session_scope() as session:
        for owner, status, amount, currency in (
                (person, OrderStatus.PAID, 500, "EUR"), (person, OrderStatus.REFUNDED, 1200, "JPY"),
                (person, OrderStatus.DISPUTED, 990, "EUR"), (person, OrderStatus.PENDING, 500, "EUR"),
                (person, OrderStatus.FLAGGED, 500, "EUR"), (person, OrderStatus.FAILED, 500, "EUR"),
                (other, OrderStatus.PAID, 700, "EUR")):
            paid = status in receipts.RECEIPT_STATUSES
            order = CreditOrder(user_id=owner.id, pack_key="pro", product_id="prod_pro", label="Pro pack",
                                credits=500, amount=amount, currency=currency, status=status,
                                vat_number="BE0697449992" if owner is person else "DE136695976",
                                paid_amount=amount if paid else None, paid_at=now() if paid else None,
                                refunded_amount=amount if status == OrderStatus.REFUNDED else 0)
            session.add(order)
            orders[(owner.id, status)] = order
    export = _export(person)
    with _open(export) as opened:
        names = set(opened.namelist())
        assert export.files == len(names)
        found = sorted(name for name in names if name.startswith("receipts/"))
        expected = [orders[(person.id, status)] for status in (OrderStatus.PAID, OrderStatus.REFUNDED,
                                                                OrderStatus.DISPUTED)]
        assert found == sorted(f"receipts/{receipts.receipt_filename(order)}" for order in expected)
        texts = {name: pdf_text(opened.read(name)) for name in found}
        for order in expected:
            text = texts[f"receipts/{receipts.receipt_filename(order)}"]
            assert str(order.id) in text and "BE0697449992" in text and "DE136695976" not in text
        refunded = texts[f"receipts/{receipts.receipt_filename(orders[(person.id, OrderStatus.REFUNDED)])}"]
        assert "Refunded" in refunded and refunded.count("1,200 JPY") == 3  # item, total, refunded
        assert str(orders[(other.id, OrderStatus.PAID)].id) not in " ".join(names) + " ".join(texts.values())
        assert "receipts/receipt-<date paid>-<id>.pdf, 3 in all" in " ".join(opened.read("README.txt").decode().split())


def test_without_parameters_when_the_person_chose_so_but_still_beside_the_image(backend):
    person = make_user()
    _, images = add_generation(person, "a quiet harbour")
    with session_scope() as session:
        session.get(User, person.id).strip_metadata = True
    with _open(_export(person)) as opened:
        png = PILImage.open(io.BytesIO(opened.read(f"images/{images[0].id}.png")))
        assert "parameters" not in png.info
        assert opened.read(f"images/{images[0].id}.txt").decode().startswith("a quiet harbour")


def test_a_throwaway_declared_table_is_exported_without_other_code_changes(backend, tmp_path):
    """A table that only declares itself shows up, JSON, CSV and README. In a process of its own, so the model never
    joins this one's SQLModel registry (other tests, erasure's among them, walk the whole inventory)."""
    script = textwrap.dedent('''
        import enum, json, uuid, zipfile
        from datetime import datetime
        from typing import ClassVar
        from sqlalchemy import Column, String
        from sqlmodel import Field, SQLModel
        from rupali.clock import now
        from rupali.config import get_settings
        from rupali.db import get_engine, session_scope
        from rupali.models.types import UTCDateTime, fk_column
        from rupali.policy import RetentionKey
        from rupali.privacy.inventory import Erasure, PersonalData
        from rupali.services import exports
        from rupali.storage import LocalStorage
        from tests.utils.factories import make_user

        class Mood(enum.StrEnum):
            CALM = "calm"
            STORMY = "stormy"

        class Diary(SQLModel, table=True):
            __tablename__ = "throwaway_diary"
            __personal_data__: ClassVar[PersonalData] = PersonalData(
                subject_column="owner_id", holds="Diary lines you wrote", export=True, erasure=Erasure.DELETE,
                retention=RetentionKey.ACCOUNT)
            id: int | None = Field(default=None, primary_key=True)
            owner_id: uuid.UUID = Field(sa_column=fk_column("user.id"))
            line: str = Field(max_length=200, description="What you wrote that day")
            mood: Mood = Field(sa_type=String(8))
            written_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))

        engine = get_engine()
        Diary.__table__.create(engine)
        try:
            person = make_user(email="diarist@example.com")
            other = make_user(email="other@example.com")
            with session_scope() as session:
                session.add(Diary(owner_id=person.id, line="the sea was loud, today", mood=Mood.STORMY,
                                  written_at=now()))
                session.add(Diary(owner_id=other.id, line="not mine", mood=Mood.CALM, written_at=now()))
                export = exports.request_export(session, get_settings(), person)
            exports.build(get_settings(), export.id)
            with session_scope() as session:
                from rupali.models import DataExport
                export = session.get(DataExport, export.id)
            path = LocalStorage.from_settings(get_settings()).path(export.storage_key)
            with zipfile.ZipFile(path) as opened:
                print(json.dumps({"status": str(export.status),
                                  "json": json.loads(opened.read("data/throwaway_diary.json")),
                                  "csv": opened.read("data/throwaway_diary.csv").decode(),
                                  "readme": opened.read("README.txt").decode()}))
        finally:
            engine.dispose()
            Diary.__table__.drop(get_engine())
    ''')
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["status"] == "ready"
    assert [(row["line"], row["mood"]) for row in found["json"]] == [("the sea was loud, today", "stormy")]
    assert found["json"][0]["written_at"].endswith("Z") and "not mine" not in found["csv"]
    assert found["csv"].splitlines()[0] == "id,owner_id,line,mood,written_at"
    readme = " ".join(found["readme"].split())
    assert "data/throwaway_diary.json and data/throwaway_diary.csv (1 record) Diary lines you wrote." in readme
    assert "- line (text, at most 200 characters): What you wrote that day" in readme
    assert "- mood (one of: calm, stormy): Mood" in readme
    assert "- owner_id (id): your account's id" in readme
    assert "- written_at (date and time, UTC): when: written" in readme
    assert "throwaway_diary" not in {entry.table for entry in inventory.entries()}  # never joined this process


def test_progress_is_reported_as_a_rising_fraction(backend):
    person = make_user()
    add_generation(person, "progress", images=5)
    values: list[float] = []
    result = archive.write_archive(get_settings(), _storage(), person.id, "exports/probe.zip", progress=values.append)
    assert values == sorted(values) and values[-1] == 1.0 and len(values) == result.files
    assert 0 < values[0] < 0.2


def test_one_export_a_day_with_the_next_time_named(backend):
    person = make_user()
    first = _export(person)
    with session_scope() as session, pytest.raises(exports.ExportError) as refused:
        exports.request_export(session, get_settings(), person)
    allowed_at = first.requested_at + timedelta(hours=24)
    assert f"{allowed_at:%Y-%m-%d %H:%M} UTC" in str(refused.value) and refused.value.retry_at == allowed_at
    with clock.travel(timedelta(hours=23, minutes=59)), session_scope() as session, pytest.raises(exports.ExportError):
        exports.request_export(session, get_settings(), person)
    with clock.travel(timedelta(hours=24, seconds=1)), session_scope() as session:
        second = exports.request_export(session, get_settings(), person)
        assert second.status is ExportStatus.QUEUED
    with session_scope() as session:
        requests = session.exec(select(PrivacyRequest).where(PrivacyRequest.user_id == person.id)).all()
        assert sorted(r.kind for r in requests) == [RequestKind.ACCESS, RequestKind.ACCESS]


def test_several_clicks_at_once_make_one_export(backend):
    person, settings = make_user(), get_settings()
    outcomes = at_once(6, lambda session, _n: exports.request_export(session, settings, person), exports.ExportError)
    assert outcomes.count(ACCEPTED) == 1, outcomes
    with session_scope() as session:
        assert len(session.exec(select(DataExport).where(DataExport.user_id == person.id)).all()) == 1


def test_a_failed_export_or_one_whose_file_is_gone_does_not_make_the_person_wait(backend):
    person = make_user()
    export = _export(person)
    _storage().delete(export.storage_key)
    with session_scope() as session:
        assert exports.latest(session, person).status is ExportStatus.EXPIRED
        assert exports.download(session, person, export.id) is exports.Unavailable.GONE
        again = exports.request_export(session, get_settings(), person)
        session.get(DataExport, again.id).status = ExportStatus.FAILED
    with session_scope() as session:
        assert exports.request_export(session, get_settings(), person).status is ExportStatus.QUEUED


def test_a_build_that_fails_is_marked_failed_with_a_reference_and_leaves_no_file(backend, caplog):
    person = make_user()
    add_generation(person, "doomed")
    storage = _storage()
    blocker = storage.root / "exports" / person.id.hex  # a file where the export's folder must go
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way")
    export = _export(person)
    assert export.status == ExportStatus.FAILED and export.storage_key is None
    assert "could not be built" in export.error and "reference" in export.error
    assert [p.name for p in (storage.root / "exports").iterdir()] == [person.id.hex]
    with session_scope() as session:  # the request stays open: it has not been answered
        assert privacy_requests.open_for(session, person.id, RequestKind.ACCESS) is not None
    caplog.clear()


def test_ready_means_the_request_is_closed_and_the_person_is_mailed(backend):
    person = make_user(full_name="Grace Hopper")
    export = _export(person)
    with session_scope() as session:
        request = session.exec(select(PrivacyRequest).where(PrivacyRequest.user_id == person.id)).one()
        assert request.kind == RequestKind.ACCESS and request.status == RequestStatus.DONE
        assert f"{export.expires_at:%Y-%m-%d %H:%M} UTC" in request.outcome
        sent = session.exec(select(OutboxMessage).where(OutboxMessage.recipient == person.email,
                                                        OutboxMessage.subject == "Your data is ready to download")
                            ).one()
    assert sent.user_id == person.id and f"{get_settings().public_url}/privacy" in sent.text_body
    assert f"{export.expires_at:%Y-%m-%d %H:%M} UTC" in sent.text_body and "Hi Grace Hopper" in sent.text_body


def test_only_the_owner_finds_an_export(backend):
    owner, stranger = make_user(), make_user()
    export = _export(owner)
    with session_scope() as session:
        assert exports.for_owner(session, owner, str(export.id)).id == export.id
        assert exports.for_owner(session, stranger, export.id) is None
        assert exports.for_owner(session, owner, "not-an-id") is None
        assert exports.for_owner(session, owner, uuid.uuid4()) is None
        assert exports.latest(session, stranger) is None
        assert exports.download(session, stranger, export.id) is exports.Unavailable.NOT_FOUND
        found = exports.download(session, owner, export.id)
        assert isinstance(found, exports.Download) and found.filename.startswith("rupali-data-")


def test_expiry_is_reported_and_the_download_refused(backend):
    person = make_user()
    export = _export(person)
    with clock.travel(timedelta(days=7, seconds=-5)), session_scope() as session:
        assert exports.latest(session, person).status is ExportStatus.READY
    with clock.travel(timedelta(days=7, seconds=5)), session_scope() as session:
        assert exports.latest(session, person).status is ExportStatus.EXPIRED
        assert exports.download(session, person, export.id) is exports.Unavailable.GONE
    with session_scope() as session:  # the report was not written back: the retention job owns expiry
        assert session.get(DataExport, export.id).status == ExportStatus.READY


def test_queued_exports_wait_for_the_job_when_no_thread_built_them(backend):
    person = make_user()
    with session_scope() as session:
        export = exports.request_export(session, get_settings(), person)
    assert exports.build_pending(get_settings()) == "built 1, restarted 0, failed after interruptions 0"
    assert exports.build_pending(get_settings()) == "built 0, restarted 0, failed after interruptions 0"
    with session_scope() as session:
        assert session.get(DataExport, export.id).status == ExportStatus.READY


def test_the_build_exports_job_is_registered_and_runs(backend):
    person = make_user()
    with session_scope() as session:
        export = exports.request_export(session, get_settings(), person)
    record = jobs.run("build_exports", settings=get_settings())
    assert record.status == JobRunStatus.SUCCEEDED and record.detail.startswith("built 1,")
    assert "build_exports" not in jobs.AT_STARTUP  # a long build must not hold up the server's start
    with session_scope() as session:
        assert session.get(DataExport, export.id).status == ExportStatus.READY


def test_start_soon_builds_in_a_thread_at_once(backend):
    person = make_user()
    with session_scope() as session:
        export = exports.request_export(session, get_settings(), person)
    exports.start_soon(get_settings(), export.id).join(timeout=30)
    with session_scope() as session:
        assert session.get(DataExport, export.id).status == ExportStatus.READY


def _running(person: User, *, error: str = "") -> tuple[DataExport, str]:
    """An export marked running by a builder that is gone (as a crash leaves it), with a half-written temporary."""
    with session_scope() as session:
        export = exports.request_export(session, get_settings(), person)
        key = exports.storage_key(person.id, export.id)
        stored = session.get(DataExport, export.id)
        stored.status, stored.started_at, stored.storage_key, stored.progress = \
            ExportStatus.RUNNING, clock.now(), key, 0.4
        stored.error = error
    partial = _storage().path(key).with_name(f"{TEMPORARY_PREFIX}{Path(key).name}.abc123")
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"PK half an archive")
    return export, key


def test_an_export_left_running_is_built_again_from_scratch(backend):
    person = make_user()
    add_generation(person, "survives a restart")
    export, key = _running(person)
    assert exports.build_pending(get_settings()) == "built 1, restarted 1, failed after interruptions 0"
    with session_scope() as session:
        rebuilt = session.get(DataExport, export.id)
    assert rebuilt.status == ExportStatus.READY and rebuilt.error == ""
    folder = _storage().path(key).parent
    assert [p.name for p in folder.iterdir()] == [Path(key).name]  # the half-written temporary is gone
    with _open(rebuilt) as opened:
        assert opened.testzip() is None and "README.txt" in opened.namelist()


def test_an_export_being_built_by_a_live_process_is_left_alone(backend):
    person = make_user()
    export, key = _running(person)
    with _storage().intend([key]):  # as a live builder holds it, in this process or another
        assert exports.build_pending(get_settings()) == "built 0, restarted 0, failed after interruptions 0"
        with session_scope() as session:
            assert session.get(DataExport, export.id).status == ExportStatus.RUNNING


def test_an_export_interrupted_too_often_is_failed_cleanly(backend):
    person = make_user()
    export, key = _running(person, error="Interrupted 2 times by a restart; building again.")
    _storage().put(key, b"an old partial archive")
    assert exports.build_pending(get_settings()) == "built 0, restarted 0, failed after interruptions 1"
    with session_scope() as session:
        failed = session.get(DataExport, export.id)
    assert failed.status == ExportStatus.FAILED and "interrupted 3 times" in failed.error
    assert failed.storage_key is None and list(_storage().path(key).parent.iterdir()) == []
    with session_scope() as session:  # and the person may ask again at once
        assert exports.request_export(session, get_settings(), person).status is ExportStatus.QUEUED


def test_a_build_killed_mid_archive_is_rebuilt_by_the_job(backend, tmp_path):
    """``kill -9`` while the archive is half written: the job restarts it, the result is whole, nothing is left."""
    person = make_user()
    add_generation(person, "killed halfway", images=6)
    with session_scope() as session:
        export = exports.request_export(session, get_settings(), person)
    marker = tmp_path / "paused"
    script = textwrap.dedent(f'''
        import threading, uuid
        from pathlib import Path
        from rupali.config import get_settings
        from rupali.privacy import export as archive
        from rupali.services import exports

        write = archive.write_archive
        def pausing(*args, progress, **kwargs):
            def report(fraction):
                progress(fraction)
                if fraction >= 0.5:  # half the archive is in its temporary: wait here to be killed
                    Path({str(marker)!r}).write_text("paused")
                    threading.Event().wait()
            return write(*args, progress=report, **kwargs)
        exports.archive.write_archive = pausing
        exports.build(get_settings(), uuid.UUID({str(export.id)!r}))
    ''')
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "the build never got halfway"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=10)
        process.stderr.close()
    key = exports.storage_key(person.id, export.id)
    folder = _storage().path(key).parent
    with session_scope() as session:
        assert session.get(DataExport, export.id).status == ExportStatus.RUNNING
    assert [p.name.startswith(TEMPORARY_PREFIX) for p in folder.iterdir()] == [True]
    assert exports.build_pending(get_settings()) == "built 1, restarted 1, failed after interruptions 0"
    with session_scope() as session:
        rebuilt = session.get(DataExport, export.id)
        report = media_sweep.sweep(session, _storage())  # the dead builder's intent is resolved, the file kept
    assert rebuilt.status == ExportStatus.READY and report.intents == 1 and report.orphans == 0
    assert [p.name for p in folder.iterdir()] == [Path(key).name]
    with _open(rebuilt) as opened:
        assert opened.testzip() is None and len([n for n in opened.namelist() if n.startswith("images/")]) == 6


def test_the_media_sweep_keeps_ready_exports_and_removes_those_no_row_names(backend):
    person = make_user()
    export = _export(person)
    path = _storage().path(export.storage_key)
    with session_scope() as session:
        session.delete(session.get(DataExport, export.id))  # as retention or an erasure deletes the row
    kept = _export(make_user())
    old = time.time() - 2 * 3600
    for file in (path, _storage().path(kept.storage_key)):
        os.utime(file, (old, old))
    with session_scope() as session:
        report = media_sweep.sweep(session, _storage())
    assert report.orphans == 1 and not path.exists() and _storage().path(kept.storage_key).exists()


def test_secret_columns_are_recognised_by_name():
    for name in ("password_hash", "token_hash", "handoff_hash", "key_hash", "password", "secret", "token",
                 "client_secret", "refresh_token"):
        assert archive.is_secret(name), name
    for name in ("password_changed_at", "token_purpose", "prefix", "key", "subject"):
        assert not archive.is_secret(name), name
    declared = {column.name for entry in inventory.entries() for column in entry.model.__table__.columns}
    assert {"password_hash", "token_hash", "handoff_hash", "key_hash"} <= {c for c in declared if archive.is_secret(c)}


def test_only_links_to_rupali_lose_their_codes():
    site = "https://rupali.example"
    text = (f"Reset: {site}/reset?token=abc123&lang=en, unsubscribe <a href=\"{site}/unsubscribe?t=s.i.g\">, "
            "and my prompt's own https://elsewhere.example/?token=keep")
    assert archive.redact_links(text, site) == (
        f"Reset: {site}/reset?token=removed&lang=en, unsubscribe <a href=\"{site}/unsubscribe?t=removed\">, "
        "and my prompt's own https://elsewhere.example/?token=keep")


def test_rows_in_the_export_match_the_database_counts(backend):
    person = make_user()
    add_generation(person, "count me", images=3)
    with session_scope() as session:
        export = exports.request_export(session, get_settings(), person)  # its ACCESS request is in it too
    counts = {}
    with session_scope() as session:
        for entry in archive.exported_entries():
            column = entry.model.__table__.c[entry.declaration.subject_column]
            counts[entry.table] = session.exec(select(func.count()).select_from(entry.model.__table__)
                                               .where(column == person.id)).one()
    assert exports.build(get_settings(), export.id)
    with session_scope() as session, _open(session.get(DataExport, export.id)) as opened:
        found = {entry.table: len(json.loads(opened.read(f"data/{entry.table}.json")))
                 for entry in archive.exported_entries()}
    assert found == counts and counts["image"] == 3
