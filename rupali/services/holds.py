"""Evidence holds: an administrator preserves an account's data for an authority, and downloads it as evidence.

While a hold lasts the privacy engine leaves the account alone: erasure refuses it
(:class:`rupali.privacy.erasure.AccountHeld`, so every caller is covered), the deletion job skips it (a pending
deletion waits), and retention keeps every row tied to it (:func:`not_held` in each rule). Releasing the hold lets
both resume at their next run. At most one hold per account is active.

A hold is kept out of the person's export: telling someone under investigation that their data is held for an
authority can defeat its purpose. So its audit entries name the hold (``target_kind="hold"``, ``target_id`` its
id), never the person: entries with ``target_user_id`` are exported to them. The hold row alone links that id to
the account, and erasure deletes it once the hold is released and the account goes.

**The evidence bundle** (:func:`prepare_evidence`, then :func:`evidence_stream`): a ZIP streamed with zipstream-ng,
holding the account's rows from every table the inventory declares about account holders, exported to the person
or not (``data/<table>.json``, and ``.csv`` where the rows fit a table), the files those rows name (image
originals, uploads, the profile picture; not the copies made from them), and ``manifest.json`` last: who downloaded
it and when, the hold and its reason, the rows per table and the SHA-256 of every entry, computed as it is written.
As in the person's export, secret columns (hashes of passwords and tokens) and one-time codes in links to Rupali are
left out: they prove nothing and would let the bundle's holder into the account.
"""

from __future__ import annotations

import base64
import csv
import enum
import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as clock_time
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import ARRAY, JSON, ColumnElement, Table, exists, func
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar
from zipstream import ZipStream

from rupali.clock import as_utc, now
from rupali.config import Settings
from rupali.db import session_scope
from rupali.models import EvidenceHold, User
from rupali.privacy import inventory
from rupali.privacy.export import DERIVED_FILES, is_secret, redact_links
from rupali.privacy.inventory import InventoryEntry, Subject
from rupali.services import audit, users
from rupali.storage import InvalidKey, MediaStorage
from rupali.text import InvalidText, clean

REASON_MIN, REASON_MAX = 3, 2000  # EvidenceHold.reason and release_reason hold 2000 characters
TARGET_KIND = "hold"
PLACED, RELEASED, EVIDENCE = "hold.place", "hold.release", "hold.evidence"
MANIFEST = "manifest.json"
BATCH = 500  # rows per database round trip
_CHUNK = 256 * 1024  # bytes of JSON or CSV handed to the ZIP at a time
# Copies of what the bundle holds already: thumbnails are made from the originals, a data export's ZIP from the rows
# and files. Their rows are in the bundle (naming the keys); the files are not.
COPIES = DERIVED_FILES | {("data_export", "storage_key")}
LEFT_OUT = ("Secret columns (a field named password, secret or token, or whose name ends in _hash, _secret or _token) "
            "and one-time codes in links to this service are left out: they are credentials, not evidence. "
            "Thumbnails, the signed copy of a PNG without its prompt, and data-export archives are copies of rows and "
            "files included here.")


class HoldError(ValueError):
    """A hold cannot be placed, released or downloaded as asked; the message says why, for the administrator."""


class NotHeld(HoldError):
    """The evidence bundle of an account that is not under a hold."""


# --- the privacy engine's questions -------------------------------------------------------------------------------

def held_user_ids() -> SelectOfScalar[uuid.UUID]:
    """The ids of accounts under an active hold, as a subquery (``col(User.id).in_(held_user_ids())``)."""
    return select(EvidenceHold.user_id).where(col(EvidenceHold.released_at).is_(None))


def not_held(column: Any) -> ColumnElement[bool]:
    """True where ``column`` (a user id, or NULL) names no account under an active hold.

    ``NOT EXISTS`` rather than ``NOT IN``: a row whose link to a person was cut (NULL) is held by nobody, and
    ``NULL NOT IN (…)`` would keep it for ever.
    """
    hold = EvidenceHold.__table__  # type: ignore[attr-defined]
    return ~exists().where(hold.c.user_id == column, hold.c.released_at.is_(None))


def active_hold(session: Session, user_id: uuid.UUID) -> EvidenceHold | None:
    """The account's hold while it lasts; None when it has none."""
    return session.exec(select(EvidenceHold).where(
        EvidenceHold.user_id == user_id, col(EvidenceHold.released_at).is_(None))
        .order_by(col(EvidenceHold.placed_at))).first()


def is_held(session: Session, user_id: uuid.UUID) -> bool:
    """Whether the account is under an active hold."""
    return active_hold(session, user_id) is not None


def active_hold_targets(session: Session) -> list[str]:
    """The ``target_id`` of every active hold as its audit entries carry it (retention keeps those entries)."""
    return [str(hold_id) for hold_id in session.exec(
        select(EvidenceHold.id).where(col(EvidenceHold.released_at).is_(None))).all()]


# --- placing and releasing ----------------------------------------------------------------------------------------

def place_hold(session: Session, actor: User, user_id: object, reason: str | None) -> EvidenceHold:
    """Put the account on hold for ``reason``; refused while it has one already."""
    current = _admin(session, actor)
    text = _reason(reason, "The reason for the hold")
    account_id = _uuid(user_id)
    # Locked: an erasure of this account waits for the hold (and then refuses), or the hold waits for the erasure
    # (and then finds no account); two holds placed at once take turns (the turn for SQLite, which drops FOR UPDATE).
    if account_id is not None:
        users.take_turn(session, account_id)
    account = session.get(User, account_id, with_for_update=True, populate_existing=True) if account_id else None
    if account is None:
        raise HoldError("This account no longer exists.")
    if account.id == current.id:
        raise HoldError("You cannot put your own account on hold: ask another administrator.")
    if is_held(session, account.id):
        raise HoldError("This account is already on hold. Release that hold before placing a new one.")
    hold = EvidenceHold(user_id=account.id, reason=text, placed_by=current.id, placed_at=now())
    session.add(hold)
    session.flush()
    audit.record(session, current, PLACED, target_kind=TARGET_KIND, target_id=hold.id, reason=text)
    return hold


def release_hold(session: Session, actor: User, hold_id: object, reason: str | None) -> EvidenceHold:
    """End a hold for ``reason``: retention and a pending deletion resume at their next run."""
    current = _admin(session, actor)
    text = _reason(reason, "The reason for releasing the hold")
    found_id = _uuid(hold_id)
    hold = session.get(EvidenceHold, found_id, with_for_update=True, populate_existing=True) if found_id else None
    if hold is None:
        raise HoldError("This hold no longer exists.")
    if hold.released_at is not None:
        raise HoldError("This hold was already released.")
    hold.released_at, hold.released_by, hold.release_reason = now(), current.id, text
    session.add(hold)
    session.flush()
    audit.record(session, current, RELEASED, target_kind=TARGET_KIND, target_id=hold.id, reason=text,
                 detail=f"placed {as_utc(hold.placed_at):%Y-%m-%d %H:%M} UTC")
    return hold


@dataclass(frozen=True)
class HoldRow:
    """A hold as the administrator's page shows it, with the addresses the administrators' ids stand for."""

    id: uuid.UUID
    reason: str
    placed_at: datetime
    placed_by: str
    released_at: datetime | None = None
    released_by: str = ""
    release_reason: str = ""


@dataclass(frozen=True)
class Holds:
    """The account's active hold (if any) and its released ones, newest first."""

    active: HoldRow | None
    past: list[HoldRow]


def holds_of(session: Session, actor: User, user_id: object) -> Holds | None:
    """What the administrator's page shows about the account's holds; None for an unknown account."""
    _admin(session, actor)
    account_id = _uuid(user_id)
    if account_id is None or session.get(User, account_id) is None:
        return None
    found = session.exec(select(EvidenceHold).where(EvidenceHold.user_id == account_id)
                         .order_by(col(EvidenceHold.placed_at).desc(), col(EvidenceHold.id))).all()
    ids = {hold.placed_by for hold in found} | {hold.released_by for hold in found}
    ids.discard(None)
    emails = dict(session.exec(select(User.id, User.email).where(col(User.id).in_(ids))).all()) if ids else {}

    def who(admin_id: uuid.UUID | None) -> str:
        if admin_id is None:
            return "—"
        return emails.get(admin_id, f"erased account {str(admin_id)[:8]}")

    rows = [HoldRow(hold.id, hold.reason, hold.placed_at, who(hold.placed_by), hold.released_at,
                    who(hold.released_by) if hold.released_at else "", hold.release_reason) for hold in found]
    active = next((row for row in rows if row.released_at is None), None)
    return Holds(active, [row for row in rows if row.released_at is not None])


# --- the evidence bundle ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Table:
    entry: InventoryEntry
    columns: tuple[Any, ...]
    rows: int
    tabular: bool

    @property
    def name(self) -> str:
        return self.entry.table


@dataclass(frozen=True)
class _File:
    arcname: str
    key: str
    table: str
    column: str


@dataclass
class EvidencePlan:
    """What one download holds, fixed (and audited) before the first byte is sent."""

    user_id: uuid.UUID
    email: str
    hold_id: uuid.UUID
    hold_reason: str
    hold_placed_at: datetime
    hold_placed_by: str
    actor_id: uuid.UUID
    actor_email: str
    at: datetime
    site: str
    tables: list[_Table] = field(default_factory=list)
    files: list[_File] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # keys named by rows whose file is gone

    @property
    def filename(self) -> str:
        return f"rupali-evidence-{self.hold_id.hex[:8]}-{as_utc(self.at):%Y-%m-%d}.zip"


def evidence_entries() -> list[InventoryEntry]:
    """Every table the inventory declares about account holders, exported to the person or not."""
    return [entry for entry in inventory.entries() if entry.declaration.subject is Subject.USER]


def prepare_evidence(session: Session, settings: Settings, storage: MediaStorage, actor: User,
                     user_id: object) -> EvidencePlan | None:
    """Plan the bundle of a held account and record the download in the audit log; None for an unknown account.

    Raises :class:`NotHeld` for an account without an active hold: evidence is collected under a recorded reason.
    """
    current = _admin(session, actor)
    account_id = _uuid(user_id)
    account = session.get(User, account_id) if account_id is not None else None
    if account is None:
        return None
    hold = active_hold(session, account.id)
    if hold is None:
        raise NotHeld("This account is not on hold. Place a hold, with its reason, before downloading its evidence.")
    placed_by = session.get(User, hold.placed_by) if hold.placed_by else None
    plan = EvidencePlan(user_id=account.id, email=account.email, hold_id=hold.id, hold_reason=hold.reason,
                        hold_placed_at=hold.placed_at, hold_placed_by=placed_by.email if placed_by else "",
                        actor_id=current.id, actor_email=current.email, at=now(), site=settings.public_url)
    for entry in evidence_entries():
        table = _table(entry)
        columns = tuple(column for column in table.columns if not is_secret(column.name))
        subject = table.c[entry.declaration.subject_column]
        rows = session.execute(select(func.count()).select_from(table).where(subject == account.id)).scalar_one()
        plan.tables.append(_Table(entry, columns, rows, all(_scalar(column) for column in columns)))
        _plan_files(session, storage, entry, account.id, plan)
    audit.record(session, current, EVIDENCE, target_kind=TARGET_KIND, target_id=hold.id,
                 detail=f"evidence bundle: {sum(table.rows for table in plan.tables)} rows from "
                        f"{sum(1 for table in plan.tables if table.rows)} tables, {len(plan.files)} files")
    return plan


def evidence_stream(settings: Settings, storage: MediaStorage, plan: EvidencePlan) -> Iterator[bytes]:
    """The bundle as a stream of ZIP chunks: each table read in a short session of its own, one file in memory at a
    time, the manifest last (it holds the SHA-256 of every entry before it, computed as they were written)."""
    digests: dict[str, tuple[str, int]] = {}
    counts: dict[str, int] = {}
    vanished: list[str] = []
    stream = ZipStream(compress_type=zipfile.ZIP_STORED)
    text_entry = {"compress_type": zipfile.ZIP_DEFLATED, "compress_level": 6}  # images are compressed already
    for table in plan.tables:
        name = f"data/{table.name}.json"
        stream.add(_hashed(_json_rows(settings, plan, table, counts), name, digests), arcname=name, **text_entry)
        if table.tabular:
            name = f"data/{table.name}.csv"
            stream.add(_hashed(_csv_rows(settings, plan, table), name, digests), arcname=name, **text_entry)
    for item in plan.files:
        stream.add(_hashed(_file(storage, item, vanished), item.arcname, digests), arcname=item.arcname)
    stream.add(_manifest(plan, digests, counts, vanished), arcname=MANIFEST, **text_entry)
    return iter(stream)


def _plan_files(session: Session, storage: MediaStorage, entry: InventoryEntry, user_id: uuid.UUID,
                plan: EvidencePlan) -> None:
    columns = [name for name in entry.declaration.file_columns if (entry.table, name) not in COPIES]
    if not columns:
        return
    table = _table(entry)
    primary = list(table.primary_key.columns)
    query = (select(*primary, *(table.c[name] for name in columns))
             .where(table.c[entry.declaration.subject_column] == user_id).order_by(*primary))
    for row in session.execute(query.execution_options(yield_per=BATCH)):
        row_id = "-".join(str(value) for value in row[:len(primary)])
        for name, key in zip(columns, row[len(primary):], strict=True):
            if not key:
                continue
            stem = row_id if len(columns) == 1 else f"{row_id}-{name}"
            arcname = f"files/{entry.table}/{stem}{PurePosixPath(key).suffix}"
            try:
                present = storage.exists(key)
            except InvalidKey:
                present = False
            if present:
                plan.files.append(_File(arcname, key, entry.table, name))
            else:
                plan.missing.append(arcname)


def _hashed(chunks: Iterator[bytes], arcname: str, digests: dict[str, tuple[str, int]]) -> Iterator[bytes]:
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        yield chunk
    digests[arcname] = (digest.hexdigest(), size)


def _rows(settings: Settings, plan: EvidencePlan, table: _Table) -> Iterator[dict[str, Any]]:
    source = _table(table.entry)
    order = list(source.primary_key.columns) or list(table.columns)
    query = (select(*table.columns).where(source.c[table.entry.declaration.subject_column] == plan.user_id)
             .order_by(*order).execution_options(yield_per=BATCH))
    with session_scope(settings) as session:
        for row in session.execute(query):
            yield {column.name: _plain(value, plan.site) for column, value in zip(table.columns, row, strict=True)}


def _json_rows(settings: Settings, plan: EvidencePlan, table: _Table, counts: dict[str, int]) -> Iterator[bytes]:
    def pieces() -> Iterator[str]:
        yield "["
        count = 0
        for count, row in enumerate(_rows(settings, plan, table), start=1):
            yield ("," if count > 1 else "") + "\n  " + json.dumps(row, ensure_ascii=False, allow_nan=False)
        counts[table.name] = count  # as written, which the manifest reports
        yield "\n]\n"
    return _buffered(pieces())


def _csv_rows(settings: Settings, plan: EvidencePlan, table: _Table) -> Iterator[bytes]:
    def pieces() -> Iterator[str]:
        line = io.StringIO()
        writer = csv.writer(line, lineterminator="\r\n")
        writer.writerow([column.name for column in table.columns])
        for row in _rows(settings, plan, table):
            writer.writerow(["" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
                             for value in row.values()])
            yield line.getvalue()
            line.seek(0)
            line.truncate()
        yield line.getvalue()
    return _buffered(pieces())


def _buffered(pieces: Iterator[str]) -> Iterator[bytes]:
    buffer: list[str] = []
    size = 0
    for piece in pieces:
        buffer.append(piece)
        size += len(piece)
        if size >= _CHUNK:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode()


def _file(storage: MediaStorage, item: _File, vanished: list[str]) -> Iterator[bytes]:
    try:
        data = storage.read(item.key)
    except (OSError, InvalidKey):
        vanished.append(item.arcname)  # deleted while the bundle was being sent: the entry stays empty
        return
    yield data  # exactly as stored: the manifest's SHA-256 is the stored file's


def _manifest(plan: EvidencePlan, digests: dict[str, tuple[str, int]], counts: dict[str, int],
              vanished: list[str]) -> Iterator[bytes]:
    # A generator: it runs when the archive reaches it (last), when every digest before it is known.
    def hashed(name: str) -> dict[str, Any]:
        digest, size = digests.get(name, ("", 0))
        return {"path": name, "sha256": digest, "bytes": size}

    manifest = {
        "bundle": "Rupali evidence bundle",
        "account": {"id": str(plan.user_id), "email": plan.email},
        "hold": {"id": str(plan.hold_id), "reason": plan.hold_reason, "placed_at": _plain(plan.hold_placed_at, ""),
                 "placed_by": plan.hold_placed_by},
        "downloaded_by": {"id": str(plan.actor_id), "email": plan.actor_email},
        "downloaded_at": _plain(plan.at, ""),
        "tables": [{"table": table.name, "holds": table.entry.declaration.holds,
                    "rows": counts.get(table.name, 0), "data": [hashed(f"data/{table.name}.json"),
                                                                *([hashed(f"data/{table.name}.csv")]
                                                                  if table.tabular else [])]}
                   for table in plan.tables],
        "files": [{**hashed(item.arcname), "table": item.table, "column": item.column, "storage_key": item.key}
                  for item in plan.files if item.arcname not in vanished],
        "missing_files": [*plan.missing, *vanished],
        "left_out": LEFT_OUT,
    }
    yield (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode()


def _plain(value: Any, site: str) -> Any:
    """A value JSON can carry: times in ISO 8601 UTC, ids and exact decimals as text, enums as their values."""
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, str):
        return redact_links(value, site)
    if isinstance(value, datetime):
        return as_utc(value).isoformat().replace("+00:00", "Z")
    if isinstance(value, (date, clock_time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {str(key): _plain(item, site) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(item, site) for item in value]
    return str(value)  # ids, exact decimals


def _scalar(column: Any) -> bool:
    return not isinstance(column.type, (JSON, ARRAY))


def _table(entry: InventoryEntry) -> Table:
    return entry.model.__table__  # type: ignore[attr-defined,no-any-return]


# --- helpers ------------------------------------------------------------------------------------------------------

def _admin(session: Session, actor: User) -> User:
    """The acting administrator as stored now: a demoted or suspended one can do nothing here."""
    current = session.get(User, actor.id, populate_existing=True)
    if current is None or not current.is_admin or not current.is_active:
        raise HoldError("Only administrators can do this.")
    return current


def _reason(value: str | None, label: str) -> str:
    try:
        text = clean(value, field="reason", label=label, max_length=REASON_MAX, multiline=True)
    except InvalidText as exc:
        raise HoldError(str(exc)) from None
    if len(text) < REASON_MIN:
        raise HoldError(f"Give a reason of at least {REASON_MIN} characters: it is recorded in the audit log.")
    return text


def _uuid(value: object) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value)[:64])
    except ValueError:
        return None
