"""The personal-data inventory: where personal data lives and what the privacy promises do to it.

Every table that holds personal data declares, next to its model, a :class:`PersonalData` in the class
attribute ``__personal_data__``. The declaration says which column ties a row to a person, whether the row goes
into a data export, what erasure does to it, and which retention rule governs it. Export, erasure and retention
jobs are driven by this inventory rather than by lists of their own, and a test fails when a table that
references a user has no declaration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlmodel import SQLModel

from rupali.policy import RetentionKey

USER_TABLE = "user"


class Erasure(StrEnum):
    """What the right to erasure does to a row."""

    DELETE = "delete"  # the row goes
    ANONYMIZE = "anonymize"  # the row stays, the link to the person is cut (e.g. transactions kept for tax law)
    KEEP = "keep"  # the row stays as it is (only for data that no longer identifies anyone)


class Subject(StrEnum):
    """Whom a row is about."""

    USER = "user"  # an account holder, through a column holding ``user.id``
    VISITOR = "visitor"  # an anonymous browser, through the visitor id in its essential cookie


@dataclass(frozen=True)
class PersonalData:
    """A table's declaration in the personal-data inventory."""

    subject_column: str
    holds: str  # plain-language description of the personal data in the row
    export: bool
    erasure: Erasure
    retention: RetentionKey
    subject: Subject = Subject.USER
    anonymize: Mapping[str, Any] = field(default_factory=dict)  # column -> replacement on ANONYMIZE
    # For rules that run from creation (technical logs, cookie consent): the timestamp the period counts from.
    # The purge job deletes rows whose ``retained_from`` is older than the rule's period.
    retained_from: str | None = None
    # A row that carries its own end (an image with an expiry, an export's download window): gone after it.
    expires_column: str | None = None
    # Columns holding storage keys of the row's files: deleting the row (erasure, retention) deletes them too.
    file_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class InventoryEntry:
    """A model together with its declaration."""

    table: str
    model: type[SQLModel]
    declaration: PersonalData


def entries() -> list[InventoryEntry]:
    """All declared tables, in table-name order."""
    found = []
    for model in _table_models():
        declaration = getattr(model, "__personal_data__", None)
        if isinstance(declaration, PersonalData):
            found.append(InventoryEntry(model.__tablename__, model, declaration))  # type: ignore[arg-type]
    return sorted(found, key=lambda entry: entry.table)


def problems(models: list[type[Any]] | None = None) -> list[str]:
    """Every way the inventory disagrees with the schema; empty when it is complete and consistent."""
    models = _table_models() if models is None else models
    found = []
    declared = {
        model.__table__.name: InventoryEntry(model.__table__.name, model, model.__personal_data__)
        for model in models if isinstance(getattr(model, "__personal_data__", None), PersonalData)
    }
    for model in models:
        table = model.__table__  # type: ignore[attr-defined]
        references_user = table.name == USER_TABLE or any(
            fk.column.table.name == USER_TABLE for fk in table.foreign_keys
        )
        if references_user and table.name not in declared:
            found.append(f"table {table.name!r} references a user but declares no __personal_data__")
    for entry in declared.values():
        columns = set(entry.model.__table__.columns.keys())  # type: ignore[attr-defined]
        declaration = entry.declaration
        if declaration.subject_column not in columns:
            found.append(f"table {entry.table!r}: subject column {declaration.subject_column!r} does not exist")
        if missing := set(declaration.anonymize) - columns:
            found.append(f"table {entry.table!r}: anonymize names unknown columns {sorted(missing)}")
        if declaration.erasure is Erasure.ANONYMIZE and not declaration.anonymize:
            found.append(f"table {entry.table!r}: erasure is anonymize but no columns are named")
        if declaration.retained_from is not None and declaration.retained_from not in columns:
            found.append(f"table {entry.table!r}: retained_from {declaration.retained_from!r} does not exist")
        if declaration.expires_column is not None and declaration.expires_column not in columns:
            found.append(f"table {entry.table!r}: expires_column {declaration.expires_column!r} does not exist")
        if missing := set(declaration.file_columns) - columns:
            found.append(f"table {entry.table!r}: file_columns names unknown columns {sorted(missing)}")
        if declaration.export is False and declaration.erasure is Erasure.KEEP:
            found.append(f"table {entry.table!r}: personal data neither exported nor erased")
    return found


def _table_models() -> list[type[SQLModel]]:
    import rupali.models  # noqa: F401  (registers every model with SQLModel's registry)

    return [
        mapper.class_ for mapper in SQLModel._sa_registry.mappers  # type: ignore[attr-defined]
        if hasattr(mapper.class_, "__table__")
    ]
