"""Erasure completeness: after the purge, no table and no file holds a trace of the person; others keep everything.

Driven by the inventory: a factory fills one person's rows in every declared table (tests/utils/personal_data.py),
and the scan reads every text column of every table in the schema and every file under the media folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import SQLModel

from rupali.config import get_settings
from rupali.db import session_scope
from rupali.models import ErasureRecord, PrivacyRequest, RequestKind, RequestStatus, User
from rupali.privacy import erasure, inventory
from rupali.privacy.inventory import Erasure
from rupali.services import privacy_requests
from rupali.storage import LocalStorage
from tests.utils.personal_data import FACTORIES, Person, fill, missing_factories, user_tables


@pytest.fixture
def storage() -> LocalStorage:
    return LocalStorage.from_settings(get_settings())


def _erin(storage: LocalStorage) -> Person:
    return fill(storage, email="erin.erasable@example.com", name="Erin Erasable",
                prompt="a violet heron over Lake Bled at dawn", negative_prompt="no Erasable watermark")


def _kim(storage: LocalStorage) -> Person:
    return fill(storage, email="kim.keeper@example.org", name="Kim Keeper",
                prompt="a brass owl in a snowy library", negative_prompt="no Keeper logo")


def _rows(person: Person) -> dict[str, int]:
    """How many rows of each declared table are linked to the person."""
    counts = {}
    with session_scope() as session:
        for entry in inventory.entries():
            if entry.table in user_tables():
                column = entry.model.__table__.c[entry.declaration.subject_column]
                counts[entry.table] = session.exec(
                    select(func.count()).select_from(entry.model.__table__).where(column == person.user_id)).one()[0]
    return counts


def _text_values() -> list[tuple[str, str, str]]:
    """(table, column, value) of every column of every row in the database, as text.

    All columns, not only those typed as text: SQLModel's ``AutoString`` is a type decorator rather than a
    ``String``, and ids and JSON live in columns of other types.
    """
    found = []
    with session_scope() as session:
        for table in SQLModel.metadata.sorted_tables:
            columns = list(table.columns)
            for row in session.exec(select(*columns)).all():
                for column, value in zip(columns, row, strict=True):
                    if value is not None:
                        found.append((table.name, column.name, str(value)))
    return found


def _media(storage: LocalStorage) -> dict[str, str]:
    """Every file under the media folder (journal and temporaries included) -> SHA-256 of its bytes."""
    hashes = {}
    for folder, _dirs, names in os.walk(storage.root):
        for name in names:
            path = Path(folder) / name
            hashes[str(path.relative_to(storage.root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


@pytest.mark.sqlite_only
def test_every_declared_user_table_has_a_factory():
    assert missing_factories() == set(), (
        "a table declares personal data but tests/utils/personal_data.py cannot fill it: add a factory, so the "
        "erasure (and export) completeness tests cover it")
    assert set(FACTORIES) == user_tables(), f"factories for undeclared tables: {set(FACTORIES) - user_tables()}"


def test_the_purge_leaves_no_trace_of_the_person_and_keeps_everyone_else(storage: LocalStorage):
    erin, kim = _erin(storage), _kim(storage)
    before = _rows(erin)
    assert all(before[table] >= 1 for table in user_tables()), f"a factory filled nothing: {before}"
    kim_rows = _rows(kim)
    with session_scope() as session:
        privacy_requests.log(session, get_settings(), kind=RequestKind.ERASURE, user_id=erin.user_id)
    erasure_request_count = before["privacy_request"] + 1

    with session_scope() as session:
        record = erasure.purge_user(session, storage, erin.user_id, reason="self-service")
        assert record is not None
        record_id = record.id
    # Rows: nothing of Erin is linked any more; Kim's are all there.
    assert all(count == 0 for count in _rows(erin).values()), _rows(erin)
    assert _rows(kim) == kim_rows
    # Text: not a single column of a single row holds Erin's address, name, prompts or id.
    for table, column, value in _text_values():
        for trace in erin.traces:
            assert trace.lower() not in value.lower(), f"{table}.{column} still holds {trace!r}: {value!r}"
    kim_values = {value for _table, _column, value in _text_values()}
    assert {kim.email, kim.name, kim.prompt, kim.negative_prompt} <= kim_values
    # Files: none of Erin's bytes (by hash) anywhere under the media folder, no folder named after her; Kim's intact.
    media = _media(storage)
    assert set(erin.files.values()).isdisjoint(media.values())
    assert not any(erin.user_id.hex in path for path in media)
    assert not [path for path, _dirs, _files in os.walk(storage.root) if erin.user_id.hex in path]
    assert {key: media.get(key) for key in kim.files} == kim.files
    # Anonymized rows stay, cut from the person; the erasure request itself is closed as carried out.
    with session_scope() as session:
        kept = session.exec(select(PrivacyRequest).where(PrivacyRequest.user_id.is_(None))).scalars().all()
        assert len(kept) == erasure_request_count
        assert {(request.contact, request.note) for request in kept} == {("", "")}
        by_kind = {request.kind: request for request in kept}
        assert by_kind[RequestKind.ERASURE].status == RequestStatus.DONE
        assert by_kind[RequestKind.ERASURE].outcome == erasure.CARRIED_OUT
        assert by_kind[RequestKind.OBJECTION].status == RequestStatus.WITHDRAWN  # cannot be answered any more
        # The record holds counts only.
        stored = session.get(ErasureRecord, record_id)
        counts = json.loads(stored.counts)
        assert stored.reason == "self-service"
        assert set(counts) <= user_tables() | {"files"}
        assert all(isinstance(value, int) for value in counts.values())
        anonymized = {entry.table for entry in inventory.entries() if entry.declaration.erasure is Erasure.ANONYMIZE}
        assert {table: counts[table] for table in user_tables() - anonymized} == {
            table: before[table] for table in user_tables() - anonymized}
        assert counts["privacy_request"] == erasure_request_count
        assert counts["files"] == len(erin.files)
        assert session.get(User, kim.user_id) is not None


def test_purging_twice_is_a_no_op(storage: LocalStorage):
    erin = _erin(storage)
    with session_scope() as session:
        assert erasure.purge_user(session, storage, erin.user_id, reason="administrator") is not None
    with session_scope() as session:
        assert erasure.purge_user(session, storage, erin.user_id, reason="administrator") is None
        assert session.exec(select(func.count()).select_from(ErasureRecord)).one()[0] == 1


def test_a_rolled_back_purge_keeps_rows_and_files(storage: LocalStorage):
    erin = _erin(storage)
    with pytest.raises(RuntimeError), session_scope() as session:
        erasure.purge_user(session, storage, erin.user_id, reason="administrator")
        raise RuntimeError("the caller's transaction fails after the purge")
    assert _rows(erin)["image"] == 2
    media = _media(storage)
    assert {key: media.get(key) for key in erin.files} == erin.files


def test_a_reason_must_fit_the_record(storage: LocalStorage):
    erin = _erin(storage)
    with session_scope() as session, pytest.raises(ValueError, match="reason"):
        erasure.purge_user(session, storage, erin.user_id, reason="x" * 25)
