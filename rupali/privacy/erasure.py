"""Erasure: removing one person from every table of the personal-data inventory, and their files from storage.

The inventory alone drives it: every table declared with a :class:`~rupali.privacy.inventory.Subject.USER` subject
is visited, children before parents (the reverse of SQLAlchemy's foreign-key order), and its rows of the person
are deleted (``Erasure.DELETE``) or stripped of the link to the person (``Erasure.ANONYMIZE``, with the
declaration's ``anonymize`` mapping). The account row goes last. Files named by a declaration's ``file_columns``
are deleted only after the transaction commits (rows first, then files, as :mod:`rupali.storage` requires); if it
rolls back, rows and files both stay.

An account under an evidence hold is not erased at all (:class:`AccountHeld`): callers that erase in batches skip
held accounts and try again after the release.

What remains is an :class:`~rupali.models.ErasureRecord`: when, why, and how many rows per table and how many files
went, and nothing that names the person. A table added later is erased as soon as it declares itself, and the
erasure-completeness test fails until it has a factory filling it.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import delete, event, func, update
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, SQLModel, select

from rupali.models import ErasureRecord, PrivacyRequest, RequestKind, RequestStatus, User
from rupali.privacy import inventory
from rupali.privacy.inventory import Erasure, InventoryEntry, Subject
from rupali.services import holds, privacy_requests, users
from rupali.storage import LocalStorage, MediaStorage

log = logging.getLogger(__name__)

REASON_MAX = 24  # ErasureRecord.reason's width
CARRIED_OUT = "carried out"
# Other requests of the person cannot be answered once the account is gone; left open they would sit in the admin
# queue as overdue for ever, without anyone to answer.
CLOSED_BY_ERASURE = "closed: the account was erased"


class ErasureError(RuntimeError):
    """The inventory cannot be carried out as declared (a programming error, never a person's mistake)."""


class AccountHeld(ValueError):
    """The account is under an evidence hold (:mod:`rupali.services.holds`): nothing of it is erased until the
    hold is released. Raised here, so every way to erase an account (the deletion job, an administrator's "erase
    now", the command line) is refused alike; the message is for whoever asked."""


HELD = ("This account is under an evidence hold: it cannot be erased until an administrator releases the hold. "
        "Nothing was erased.")


def purge_user(session: Session, storage: MediaStorage, user_id: uuid.UUID, *, reason: str) -> ErasureRecord | None:
    """Erase the account ``user_id`` and everything the inventory ties to it; ``None`` if it no longer exists.

    Runs in the caller's transaction (nothing is committed here); files are deleted when it commits. Idempotent:
    a second call for the same id finds no account and does nothing. Raises :class:`AccountHeld`, changing
    nothing, while the account is under an evidence hold.
    """
    if not reason or len(reason) > REASON_MAX:
        raise ValueError(f"an erasure reason has 1 to {REASON_MAX} characters")
    session.flush()  # pending changes of the caller reach the database before rows are counted and removed
    # Locked for the rest of the transaction: two erasures of one account (the retention job and an administrator)
    # queue up, and the second finds nothing. FOR UPDATE on PostgreSQL (it also holds off new rows that refer to the
    # account); the turn for SQLite, which drops FOR UPDATE.
    users.take_turn(session, user_id)
    user = session.exec(select(User).where(User.id == user_id).with_for_update()
                        .execution_options(populate_existing=True)).first()
    if user is None:
        return None
    # Checked under the account's lock: a hold placed meanwhile (it locks the account too) is seen here.
    if holds.is_held(session, user_id):
        raise AccountHeld(HELD)
    entries = _user_entries()
    _check(entries)

    # The log keeps the proof that the request was carried out, without the person (anonymized below).
    for request in session.exec(select(PrivacyRequest).where(
            PrivacyRequest.user_id == user_id, PrivacyRequest.status == RequestStatus.OPEN)).all():
        if request.kind == RequestKind.ERASURE:
            privacy_requests.close(session, request, outcome=CARRIED_OUT)
        else:
            privacy_requests.close(session, request, status=RequestStatus.WITHDRAWN, outcome=CLOSED_BY_ERASURE)

    counts: dict[str, int] = {}
    files: set[str] = set()
    for entry in entries:
        if entry.table == inventory.USER_TABLE:
            continue
        found, keys = _erase_table(session, entry, user_id)
        if found:
            counts[entry.table] = found
            files.update(keys)
    # The account row last, through the ORM so that its delete events run (the session cache forgets it at once).
    files.update(_file_keys(user, _declaration_of(entries, inventory.USER_TABLE).file_columns))
    session.delete(user)
    session.flush()
    counts[inventory.USER_TABLE] = 1
    counts["files"] = len(files)

    record = ErasureRecord(reason=reason, counts=json.dumps(counts, sort_keys=True))
    session.add(record)
    session.flush()
    if files:
        storage.settle_with(session, obsolete=sorted(files))
        _remove_empty_folders_after_commit(session, storage, files)
    return record


def counts_of(record: ErasureRecord) -> dict[str, int]:
    """The record's counts as a mapping (table -> rows, and ``files``)."""
    return json.loads(record.counts or "{}")


# --- the tables ------------------------------------------------------------------------------------------------------

def _user_entries() -> list[InventoryEntry]:
    """Declared tables about account holders, children before parents, so no foreign key is left dangling."""
    order = {table.name: position for position, table in enumerate(SQLModel.metadata.sorted_tables)}
    found = [entry for entry in inventory.entries() if entry.declaration.subject is Subject.USER]
    return sorted(found, key=lambda entry: (-order.get(entry.table, -1), entry.table))


def _check(entries: list[InventoryEntry]) -> None:
    for entry in entries:
        declaration = entry.declaration
        if declaration.erasure is Erasure.ANONYMIZE and declaration.subject_column not in declaration.anonymize:
            # The row would keep pointing at the person, or the account's delete would cascade into it.
            raise ErasureError(f"table {entry.table!r}: anonymize must replace its subject column "
                               f"{declaration.subject_column!r}")
    if not any(entry.table == inventory.USER_TABLE for entry in entries):
        raise ErasureError("the account table declares no personal data")


def _declaration_of(entries: list[InventoryEntry], table: str) -> inventory.PersonalData:
    return next(entry.declaration for entry in entries if entry.table == table)


def _erase_table(session: Session, entry: InventoryEntry, user_id: uuid.UUID) -> tuple[int, set[str]]:
    """Delete or anonymize the person's rows of one table; the number of rows and the file keys they let go."""
    declaration = entry.declaration
    table = entry.model.__table__  # type: ignore[attr-defined]
    subject = table.c[declaration.subject_column]
    # An indexed count: tables without rows of the person cost one cheap query and nothing more.
    found = session.exec(select(func.count()).select_from(table).where(subject == user_id)).one()
    if not found or declaration.erasure is Erasure.KEEP:
        return 0, set()
    if declaration.erasure is Erasure.DELETE:
        released = declaration.file_columns
    else:
        released = tuple(column for column in declaration.file_columns if column in declaration.anonymize)
    keys: set[str] = set()
    if released:
        for column in released:
            keys.update(value for value in session.exec(select(table.c[column]).where(subject == user_id)) if value)
    # ORM-enabled statements: objects of these rows already in the session are updated or marked deleted too.
    if declaration.erasure is Erasure.DELETE:
        session.exec(delete(entry.model).where(subject == user_id))  # type: ignore[call-overload]
    else:
        session.exec(update(entry.model).where(subject == user_id)  # type: ignore[call-overload]
                     .values(dict(declaration.anonymize)))
    return found, keys


def _file_keys(row: Any, columns: Iterable[str]) -> set[str]:
    return {value for column in columns if (value := getattr(row, column, None))}


# --- storage ---------------------------------------------------------------------------------------------------------

def _remove_empty_folders_after_commit(session: Session, storage: MediaStorage, keys: set[str]) -> None:
    """After the commit (and after ``settle_with`` has deleted the files), remove the folders they leave empty.

    Folders are named after account and generation ids; an empty one would outlive the person for nothing.
    ``rmdir`` only ever removes an empty folder, so a file written meanwhile keeps its folder.
    """
    state = {"committed": False, "settled": False}

    def committed(_session: Session) -> None:
        if not session.in_nested_transaction():
            state["committed"] = True

    def ended(_session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is not None or state["settled"]:
            return
        state["settled"] = True
        if state["committed"]:
            _remove_empty_parents(storage, keys)

    event.listen(session, "after_commit", committed)
    event.listen(session, "after_transaction_end", ended)  # registered after settle_with's, so it runs after it


def _remove_empty_parents(storage: MediaStorage, keys: set[str]) -> None:
    if not isinstance(storage, LocalStorage):
        return  # an object store has no folders: a prefix goes with its last object
    folders: set[Path] = set()
    for key in keys:
        try:
            path = storage.path(key)
        except ValueError:
            continue
        folders.update(parent for parent in path.parents if parent.is_relative_to(storage.root)
                       and len(parent.relative_to(storage.root).parts) >= 2)  # never the areas themselves
    for folder in sorted(folders, key=lambda item: len(item.parts), reverse=True):
        try:
            os.rmdir(folder)
        except OSError:
            continue  # not empty, or already gone
