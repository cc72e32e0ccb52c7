"""What the privacy center shows a person about their data, read from the personal-data inventory.

One row per declared table holding the person's rows, grouped under the retention table's data types, with the
count, where it lives, and when the retention job will delete what under which rule. Nothing here is a list of its
own: a table declared tomorrow appears on the page without a change to this module.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, select

from rupali import legal
from rupali.config import Settings
from rupali.policy import RetentionKey, RetentionRule, RetentionTrigger, retention_rules
from rupali.privacy import inventory
from rupali.privacy.inventory import Erasure, Subject


@dataclass(frozen=True)
class Holding:
    """One kind of data Rupali holds about the person."""

    table: str
    holds: str  # the declaration's plain-language description
    count: int
    has_files: bool  # some of it is files in media storage, not only database rows
    exported: bool  # included in "Download my data"
    erasure: Erasure
    rule: RetentionRule
    # The next deletion the rules will make by themselves: when, and how many rows go then or soon after.
    next_deletion_at: datetime | None = None
    next_deletion_count: int = 0
    period_days: int | None = None


@dataclass(frozen=True)
class Category:
    """A data type of the retention table, with the holdings it covers."""

    key: RetentionKey
    title: str
    rule: RetentionRule
    holdings: list[Holding]

    @property
    def count(self) -> int:
        return sum(holding.count for holding in self.holdings)


def summary(session: Session, settings: Settings, user_id: object) -> list[Category]:
    """The person's data per retention data type, in the order the policy's retention table lists them."""
    rules = retention_rules(settings)
    by_key: dict[RetentionKey, list[Holding]] = {}
    for entry in inventory.entries():
        declaration = entry.declaration
        if declaration.subject is not Subject.USER:
            continue
        table = entry.model.__table__  # type: ignore[attr-defined]
        subject = table.c[declaration.subject_column]
        count = session.exec(select(func.count()).select_from(table).where(subject == user_id)).one()
        if not count and not legal.applies(settings, entry):
            continue  # a record this billing mode never fills (nothing about money with billing off)
        rule = rules[declaration.retention]
        holding = Holding(entry.table, legal.holds(settings, entry), int(count), bool(declaration.file_columns),
                          declaration.export, declaration.erasure, rule,
                          period_days=rule.period.days if rule.period is not None else None)
        if count and declaration.expires_column is not None:
            column = table.c[declaration.expires_column]
            first, many = session.exec(select(func.min(column), func.count(column)).where(
                subject == user_id, column.is_not(None))).one()
            holding = _with_next(holding, first, many)
        elif count and declaration.retained_from is not None and rule.period is not None:
            column = table.c[declaration.retained_from]
            oldest = session.exec(select(func.min(column)).where(subject == user_id)).one()
            holding = _with_next(holding, oldest + rule.period if oldest is not None else None, 1)
        by_key.setdefault(declaration.retention, []).append(holding)
    return [Category(key, rule.data_type, rule, by_key[key]) for key, rule in rules.items() if key in by_key]


def rule_sentence(holding: Holding) -> str:
    """How the rule treats this data, in a sentence without dates (the page adds them in the visitor's locale)."""
    rule = holding.rule
    days = holding.period_days
    match rule.trigger:
        case RetentionTrigger.AFTER_CREATION:
            return f"Each record is deleted automatically {_span(days)} after it was made."
        case RetentionTrigger.UNTIL_DELETED_OR_EXPIRED:
            if days:
                return f"Kept until you delete it, or until it expires {_span(days)} after it was made."
            return "Kept until you delete it."
        case RetentionTrigger.UNTIL_DELETED:
            return "Kept until you delete it."
        case RetentionTrigger.AFTER_ACCOUNT_DELETION:
            grace = f" (after a {_span(days)} grace period in which you can change your mind)" if days else ""
            return f"Kept while you have an account; deleted when you delete your account{grace}."
    return rule.describe()


def erasure_sentence(holding: Holding) -> str:
    match holding.erasure:
        case Erasure.DELETE:
            return "Deleted when your account is erased."
        case Erasure.ANONYMIZE:
            return "Kept without your name when your account is erased, as the law requires."
        case _:
            return "Holds nothing that identifies you."


def _with_next(holding: Holding, when: datetime | None, count: int) -> Holding:
    return replace(holding, next_deletion_at=when, next_deletion_count=int(count or 0))


def _span(days: int | None) -> str:
    if days is None:
        return "never"
    if days % 366 == 0:
        years = days // 366
        return "1 year" if years == 1 else f"{years} years"
    return "1 day" if days == 1 else f"{days} days"
