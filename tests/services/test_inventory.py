"""The personal-data inventory is complete and consistent with the schema."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, ForeignKey, Integer, MetaData, Table

from rupali.config import Settings
from rupali.models import User
from rupali.policy import retention_rules
from rupali.privacy import inventory

pytestmark = pytest.mark.sqlite_only


def test_every_table_that_references_a_user_declares_its_personal_data():
    assert inventory.problems() == []


def test_an_undeclared_table_referencing_a_user_is_caught():
    metadata = MetaData()
    user_table = Table("user", metadata, Column("id", Integer, primary_key=True))
    orphan_table = Table("orphan", metadata, Column("id", Integer, primary_key=True),
                         Column("owner_id", ForeignKey(user_table.c.id)))

    class Orphan:
        __table__ = orphan_table

    assert inventory.problems([User, Orphan]) == [
        "table 'orphan' references a user but declares no __personal_data__"]


def test_declarations_name_real_columns_and_known_retention_rules():
    rules = retention_rules(Settings())
    entries = inventory.entries()
    assert {entry.table for entry in entries} >= {"user", "cookie_consent"}
    for entry in entries:
        assert entry.declaration.retention in rules
        assert entry.declaration.subject_column in entry.model.__table__.columns
