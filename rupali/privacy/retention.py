"""Retention: deleting what the personal-data inventory says must go, in short batches, one runner at a time.

The rules come from the declarations (:mod:`rupali.privacy.inventory`), so a new table is covered by declaring it:

* ``retained_from``: rows whose timestamp is older than their retention rule's period go (technical logs, cookie
  consent, data exports, request records, and any future table of transaction records);
* ``expires_column``: rows whose own end has passed go (expired images, data exports past their download window:
  the row and the ZIP go together, since the person is told the export is deleted when it expires). In a table that
  declares both, a row's own end wins and the period applies only to rows without one (an export that never
  finished);
* ``file_columns``: the files named by the rows that go are deleted once their batch has committed.

Three rules no declaration can express are added here: uploads that no generation uses any more (after
``UPLOAD_GRACE``, so an upload being used right now is safe), scheduler job runs (technical logs without personal
data), and accounts: those past their deletion grace period and single-sign-on accounts whose 18+ confirmation never
came are erased by :mod:`rupali.services.deletion`.

**Evidence holds** (:mod:`rupali.services.holds`): every rule whose rows belong to an account holder (declarations
about a :attr:`~rupali.privacy.inventory.Subject.USER`, the expired images among them, and the uploads) carries one
more condition, that the row's account is not on hold, and the audit entries about a hold stay while it lasts. Rows
tied to no account (visitors' rows, rows whose link to a person was cut, job runs) are unaffected. The condition is
part of each batch's statement, so a released hold's rows go at the next run, like any other row that is due.

**How it runs.** Rows are deleted by primary key in batches, each one statement in a transaction of its own
(``DELETE … WHERE id IN (SELECT id … LIMIT n) RETURNING`` the file keys), sized so a batch takes about
``TARGET_BATCH_SECONDS``: no transaction holds the database for long, whatever the disk. A run killed between
batches leaves only whole batches done, and the next run carries on (every rule is a condition on the data, so
running twice deletes nothing more); a kill between a batch's commit and its file deletions leaves files no row
names, which the media sweep removes. One runner at a time across every process on the database: the run holds a
lease in ``job_lock`` (:mod:`rupali.leases`); a second run is skipped, and a crashed holder's lease expires.
"""

from __future__ import annotations

import gc
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Table, and_, delete, exists, func, insert, or_, select
from sqlalchemy.orm import Session

from rupali import leases
from rupali.clock import now
from rupali.config import Settings
from rupali.db import get_engine, session_scope
from rupali.models import (
    AuditEntry,
    CreditAccount,
    CreditEntry,
    CreditPurchaseEntry,
    EntryKind,
    Generation,
    JobRun,
    Upload,
    WebhookDelivery,
)
from rupali.policy import RetentionKey, RetentionRule, RetentionTrigger, retention_rules
from rupali.privacy import inventory
from rupali.privacy.inventory import InventoryEntry, Subject
from rupali.services import holds
from rupali.storage import MediaStorage

log = logging.getLogger(__name__)

LOCK_NAME = "apply_retention"
# Renewed while the run goes on, so only a holder that stopped (crashed, killed, hung) loses it.
LOCK_LEASE = timedelta(minutes=10)
SKIPPED = "another run holds the lock"
# An upload is made a moment before the generation that uses it: one this young may be in use right now.
UPLOAD_GRACE = timedelta(hours=1)
# A batch aims at 50 ms, a quarter of the 200 ms promised for the longest transaction: room for a busy machine or a
# slow disk (the benchmark's longest was 85 ms). The size adapts to what a batch of each table actually costs here;
# a smaller target costs throughput (more commits for the same rows).
TARGET_BATCH_SECONDS = 0.05
FIRST_BATCH = 500
MIN_BATCH, MAX_BATCH = 20, 50_000
# Between batches the run steps aside briefly, so other writers waiting for SQLite's one write lock get it.
PAUSE_SECONDS = 0.001
# SQLite: the run checkpoints the WAL itself after this many rows, see _Writer. Up to ~40 MB of WAL; fewer rows cost
# throughput (each checkpoint syncs), more make a write on another connection that pays a checkpoint wait longer.
CHECKPOINT_ROWS = 10_000
SQLITE_PRAGMAS = {"wal_autocheckpoint": 0, "cache_size": -65_536}  # no automatic checkpoints; a 64 MiB page cache
ACCOUNTS_PER_CALL = 50  # erased one per transaction by rupali.services.deletion
MAX_ACCOUNTS_PER_RUN = 1_000  # the next run takes the rest (and a purge that keeps failing cannot loop forever)
DRY_RUN_ACCOUNT_LIMIT = 1_000_000


@dataclass
class Outcome:
    """What one rule removed (or, in a dry run, would remove) from one table."""

    name: str  # the table, or for accounts what kind of account
    rule: str  # the rule in words
    rows: int = 0
    files: int = 0


@dataclass
class RetentionReport:
    """The counts of one run, per table; ``skipped`` says why nothing was done."""

    dry_run: bool = False
    skipped: str | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    batches: int = 0
    longest_batch_seconds: float = 0.0  # the longest transaction
    longest_checkpoint_seconds: float = 0.0  # SQLite: the longest WAL checkpoint, run between transactions
    seconds: float = 0.0

    @property
    def files(self) -> int:
        return sum(outcome.files for outcome in self.outcomes)

    def counts(self) -> dict[str, int]:
        """Rows per table (or kind of account)."""
        return {outcome.name: outcome.rows for outcome in self.outcomes}

    def outcome(self, name: str, rule: str) -> Outcome:
        for outcome in self.outcomes:
            if outcome.name == name:
                outcome.rule = f"{outcome.rule}; {rule}"
                return outcome
        self.outcomes.append(Outcome(name, rule))
        return self.outcomes[-1]

    def summary(self) -> str:
        """One line for the job run's detail: ``deleted <table> <rows>, …, files <n>``."""
        if self.skipped:
            return f"skipped: {self.skipped}"
        verb = "would delete" if self.dry_run else "deleted"
        return f"{verb} " + ", ".join([*(f"{o.name} {o.rows}" for o in self.outcomes), f"files {self.files}"])


@dataclass(frozen=True)
class _Rule:
    name: str
    rule: str
    table: Table
    condition: ColumnElement[bool]
    file_columns: tuple[str, ...]
    # Called in each batch's transaction with the deleted rows' ``(user_id, delta)`` (credit purchase entries).
    carries_credits: bool = False


def apply(settings: Settings, storage: MediaStorage, *, dry_run: bool = False, batch_size: int | None = None,
          entries: Sequence[InventoryEntry] | None = None) -> RetentionReport:
    """Enforce every retention rule once; ``dry_run`` counts what would go and changes nothing.

    ``batch_size`` fixes the rows per transaction (otherwise it adapts to ``TARGET_BATCH_SECONDS``); ``entries``
    replaces the inventory's declarations (tests of tables that are not part of the product).
    """
    started = time.perf_counter()
    report = RetentionReport(dry_run=dry_run)
    lease = None
    if not dry_run:  # counting changes nothing, so it need not wait for (or keep out) a real run
        lease = leases.acquire(settings, LOCK_NAME, length=LOCK_LEASE)
        if lease is None:
            report.skipped = SKIPPED
            log.info("retention skipped: %s", SKIPPED)
            return report
    try:
        rules = _rules(settings, inventory.entries() if entries is None else entries, now())
        if dry_run:
            for rule in rules:
                _count(settings, rule, report.outcome(rule.name, rule.rule))
        else:
            assert lease is not None
            with _Writer(settings, report) as writer:
                for rule in rules:
                    _purge(writer, storage, rule, report.outcome(rule.name, rule.rule), report, lease, batch_size)
        _erase_accounts(settings, storage, report, lease)
    finally:
        if lease is not None:
            leases.release(settings, lease)
    report.seconds = time.perf_counter() - started
    log.info("retention %s in %.1f s (%d batches, longest %.0f ms)", report.summary(), report.seconds,
             report.batches, report.longest_batch_seconds * 1000)
    return report


# --- the rules -----------------------------------------------------------------------------------------------------

def _rules(settings: Settings, entries: Sequence[InventoryEntry], moment: datetime) -> list[_Rule]:
    """Every rule as a condition on its table, fixed at ``moment`` so every batch of a run agrees."""
    rules = retention_rules(settings)
    with session_scope(settings) as session:
        held = holds.active_hold_targets(session)  # holds placed during the run are hours younger than any period
    found = []
    for entry in entries:
        declaration, table = entry.declaration, entry.model.__table__  # type: ignore[attr-defined]
        rule = rules[declaration.retention]
        aged = words = None
        if declaration.retained_from is not None and rule.period is not None:
            aged = table.c[declaration.retained_from] < moment - rule.period
            words = f"{declaration.retained_from} older than {_period(rule)}"
        condition = aged
        if declaration.expires_column is not None:
            ends = table.c[declaration.expires_column]
            # A row that carries its own end keeps it (an export stays downloadable for its whole window, however
            # long it took to build); the period applies to rows without one.
            condition = or_(and_(ends.is_not(None), ends <= moment),
                            *([and_(ends.is_(None), aged)] if aged is not None else []))
            words = f"{declaration.expires_column} passed" + (f", or without one {words}" if words else "")
        if condition is not None and words is not None and declaration.subject is Subject.USER:
            condition = and_(condition, holds.not_held(table.c[declaration.subject_column]))
            words += ", account not on hold"
        if condition is not None and words is not None and entry.model is AuditEntry and held:
            # The record of a hold (placed, evidence downloaded) names the hold, not the person: kept while it lasts.
            condition = and_(condition, ~and_(table.c.target_kind == holds.TARGET_KIND, table.c.target_id.in_(held)))
        if condition is not None and words is not None:
            found.append(_Rule(entry.table, words, table, condition, declaration.file_columns,
                               carries_credits=entry.model is CreditPurchaseEntry))
    upload, generation = Upload.__table__, Generation.__table__  # type: ignore[attr-defined]
    found.append(_Rule(
        "upload", f"used by no generation, older than {_hours(UPLOAD_GRACE)}, account not on hold", upload,
        and_(upload.c.created_at < moment - UPLOAD_GRACE, ~exists().where(generation.c.upload_id == upload.c.id),
             holds.not_held(upload.c.user_id)),
        Upload.__personal_data__.file_columns))
    # Job runs hold no personal data (so no declaration) but are technical logs all the same.
    log_rule = rules[RetentionKey.TECHNICAL_LOGS]
    assert log_rule.period is not None
    job_run = JobRun.__table__  # type: ignore[attr-defined]
    found.append(_Rule("job_run", f"started_at older than {_period(log_rule)}", job_run,
                       job_run.c.started_at < moment - log_rule.period, ()))
    # Webhook deliveries name no person either (no body is stored) and are the same kind of log.
    delivery = WebhookDelivery.__table__  # type: ignore[attr-defined]
    found.append(_Rule("webhook_delivery", f"received_at older than {_period(log_rule)}", delivery,
                       delivery.c.received_at < moment - log_rule.period, ()))
    return found


def _count(settings: Settings, rule: _Rule, outcome: Outcome) -> None:
    columns = [func.count(rule.table.c[name]) for name in rule.file_columns]  # NULL keys name no file
    with session_scope(settings) as session:
        rows, *files = session.execute(select(func.count(), *columns).select_from(rule.table)
                                       .where(rule.condition)).one()
    outcome.rows += rows
    outcome.files += sum(files)


def _purge(writer: _Writer, storage: MediaStorage, rule: _Rule, outcome: Outcome, report: RetentionReport,
           lease: leases.Lease, batch_size: int | None) -> None:
    """Delete the rule's rows batch by batch, each batch one statement in its own transaction."""
    (key,) = rule.table.primary_key.columns  # every table of Rupali has a one-column primary key
    files = [rule.table.c[name] for name in rule.file_columns]
    pacer = _Pacer(batch_size)
    while True:
        size = pacer.size
        chosen = select(key).where(rule.condition).limit(size)
        carried = [rule.table.c.user_id, rule.table.c.delta] if rule.carries_credits else []
        statement = delete(rule.table).where(key.in_(chosen)).returning(key, *carried, *files)
        started = time.perf_counter()
        with writer.transaction() as session:
            rows = session.execute(statement).all()
            if carried:
                _carry_forward(session, [(row[1], row[2]) for row in rows])
                rows = [(row[0], *row[3:]) for row in rows]
            obsolete = [name for row in rows for name in row[1:] if name]
            if obsolete:  # rows first, commit, then files (see rupali.storage)
                storage.settle_with(session, obsolete=obsolete)
        elapsed = time.perf_counter() - started
        outcome.rows += len(rows)
        outcome.files += len(obsolete)
        report.batches += 1
        report.longest_batch_seconds = max(report.longest_batch_seconds, elapsed)
        pacer.record(len(rows), elapsed)
        writer.wrote(len(rows))
        if len(rows) < size:
            return
        lease.renew()
        time.sleep(PAUSE_SECONDS)


def _carry_forward(session: Session, deleted: list[tuple[uuid.UUID | None, int]]) -> None:
    """Keep each live account's ledger summing to its balance when its old purchase entries go.

    A purchase, refund or chargeback past the transaction-record period is deleted, but the credits it moved stay
    in the balance; one adjustment entry per account and batch carries their sum forward (the balance itself does
    not change). Entries already cut from an erased person (no ``user_id``) belong to no balance.
    """
    totals: dict[uuid.UUID, int] = {}
    for user_id, delta in deleted:
        if user_id is not None:
            totals[user_id] = totals.get(user_id, 0) + delta
    account, entry = CreditAccount.__table__, CreditEntry.__table__  # type: ignore[attr-defined]
    moment = now()
    for user_id, total in totals.items():
        balance = session.execute(select(account.c.balance).where(account.c.user_id == user_id)).scalar()
        if balance is None or total == 0:
            continue
        session.execute(insert(entry).values(
            id=uuid.uuid4(), user_id=user_id, kind=EntryKind.ADJUSTMENT.value, delta=total, balance_after=balance,
            reference="Purchases, refunds and chargebacks older than the transaction-record period, carried forward",
            idempotency_key=f"carry:{uuid.uuid4()}", created_at=moment, generation_id=None, actor_id=None))


class _Writer:
    """The run's own connection: every batch is a transaction on it; on SQLite it also checkpoints the WAL itself.

    Each batch dirties pages all over a table's secondary indexes (``auth_attempt.key`` holds hashes, in no order
    of time). SQLite's automatic checkpoint (every 1,000 pages, run by the committing connection) would then copy
    those pages back into the database file after nearly every batch, with its fsyncs. Checkpointing every
    ``CHECKPOINT_ROWS`` rows instead copies each page once per checkpoint, and the checkpoint runs between
    transactions, PASSIVE, so readers and writers carry on meanwhile. The price: a write on another connection that
    commits while pages wait to be checkpointed runs SQLite's automatic checkpoint itself (after its transaction, so
    holding no lock), which adds up to ~200 ms to that one write (benchmark). The connection's own settings are
    put back before it returns to the pool (a failure to do so discards it).
    """

    def __init__(self, settings: Settings, report: RetentionReport) -> None:
        self.settings, self.report = settings, report
        self.pending = 0  # rows deleted since the last checkpoint

    def __enter__(self) -> _Writer:
        self.connection = get_engine(self.settings).connect()
        self.sqlite = self.connection.dialect.name == "sqlite"
        self.saved: dict[str, int] = {}
        if self.sqlite:
            for name, value in SQLITE_PRAGMAS.items():
                self.saved[name] = int(self.connection.exec_driver_sql(f"PRAGMA {name}").scalar_one())
                self.connection.exec_driver_sql(f"PRAGMA {name}={int(value)}")
            self.connection.commit()
        return self

    def __exit__(self, *_: object) -> None:
        try:
            if self.sqlite:
                if self.pending:
                    self.checkpoint()
                for name, value in self.saved.items():
                    self.connection.exec_driver_sql(f"PRAGMA {name}={value}")
                self.connection.commit()
        except Exception:
            self.connection.invalidate()  # never back into the pool with this run's settings
            raise
        finally:
            self.connection.close()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session on this connection that commits when the block succeeds and rolls back when it raises.

        Python's cyclic garbage collector waits until the transaction has ended: a full collection of a large
        process (the web server's; 150-170 ms measured) landing inside a batch would hold the write lock for that
        long. Only the automatic collector is held off, and only for the batch's tens of milliseconds; whatever it
        owes runs right after, between batches.
        """
        collecting = gc.isenabled()
        gc.disable()
        try:
            with Session(bind=self.connection, expire_on_commit=False) as session:
                try:
                    yield session
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise
        finally:
            if collecting:
                gc.enable()

    def wrote(self, rows: int) -> None:
        self.pending += rows
        if self.sqlite and self.pending >= CHECKPOINT_ROWS:
            self.checkpoint()

    def checkpoint(self) -> None:
        started = time.perf_counter()
        self.connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        self.connection.commit()
        self.pending = 0
        self.report.longest_checkpoint_seconds = max(self.report.longest_checkpoint_seconds,
                                                     time.perf_counter() - started)


def _erase_accounts(settings: Settings, storage: MediaStorage, report: RetentionReport,
                    lease: leases.Lease | None) -> None:
    """Accounts past their grace period, and never-confirmed ones (no lease: a dry run, which only counts)."""
    # Imported here: the erasure service builds on the whole model and mail stack, which needs nothing from here.
    from rupali.services import deletion

    grace = retention_rules(settings)[RetentionKey.ACCOUNT]
    for name, rule, purge in (
            ("accounts past grace", f"deletion asked for more than {_period(grace)} ago", deletion.purge_due),
            ("never-confirmed accounts", "single sign-on, 18+ not confirmed within 24 hours",
             deletion.purge_never_confirmed)):
        outcome = report.outcome(name, rule)
        if lease is None:
            with session_scope(settings) as session:
                outcome.rows = purge(session, settings, storage, limit=DRY_RUN_ACCOUNT_LIMIT, dry_run=True)
            continue
        # The purge commits after each account, so a call is many short transactions, not one long one.
        for _ in range(MAX_ACCOUNTS_PER_RUN // ACCOUNTS_PER_CALL):
            with session_scope(settings) as session:
                erased = purge(session, settings, storage, limit=ACCOUNTS_PER_CALL)
            outcome.rows += erased
            if erased < ACCOUNTS_PER_CALL:
                break  # all done, or one failed (logged): the next run tries it again
            lease.renew()


class _Pacer:
    """Rows per batch: grows or shrinks (at most twofold per batch) towards ``TARGET_BATCH_SECONDS``."""

    def __init__(self, fixed: int | None) -> None:
        self.fixed = fixed is not None
        self.size = fixed if fixed is not None else FIRST_BATCH

    def record(self, rows: int, seconds: float) -> None:
        if self.fixed or rows < self.size:
            return  # a short batch was the last one: its time says nothing about a full one
        ideal = int(self.size * TARGET_BATCH_SECONDS / max(seconds, 1e-4))
        self.size = max(MIN_BATCH, min(MAX_BATCH, self.size * 2, max(self.size // 2, ideal)))


def _period(rule: RetentionRule) -> str:
    """"90 days", "7 years": the period as the policy states it."""
    assert rule.period is not None
    return rule.describe() if rule.trigger is RetentionTrigger.AFTER_CREATION else f"{rule.period.days} days"


def _hours(period: timedelta) -> str:
    hours = int(period.total_seconds() // 3600)
    return "1 hour" if hours == 1 else f"{hours} hours"
