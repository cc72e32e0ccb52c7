"""What the instance is doing, for the admin console: daily activity, generations and their failures, job runs,
the mail outbox (with retry and cancel) and the technical log.

Reads only, except the two outbox actions, which re-check the role and leave an audit entry. Days are UTC days.
Queries are bounded (a window of days, a row limit) so the console stays quick on a busy instance.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_
from sqlmodel import Session, col, func, select

from rupali.clock import now
from rupali.models import (
    Generation,
    GenerationStatus,
    JobRun,
    MailStatus,
    OutboxMessage,
    RequestLog,
    User,
)
from rupali.services import audit

DASHBOARD_DAYS = 14
ROW_LIMIT = 200
FAILURE_DAYS = 30
REQUEST_KINDS = ("page", "api", "http", "error")
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")


class OperationsError(ValueError):
    """A refused console action, with a sentence for the administrator."""


# --- dashboard ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dashboard:
    """Per UTC day over the last ``DASHBOARD_DAYS`` days (oldest first), and the moment it was read."""

    days: list[date]
    generations: dict[str, list[int]]  # outcome -> count per day ("succeeded", "failed", "blocked", "other")
    active_users: list[int]  # distinct signed-in people seen in the technical log
    errors: list[int]  # 5xx answers and failures outside requests
    p95_ms: list[float | None]  # 95th percentile of request duration (None: no requests that day)
    read_at: datetime


def dashboard(session: Session, *, days: int = DASHBOARD_DAYS) -> Dashboard:
    """The activity charts' figures."""
    moment = now()
    first = moment.date() - timedelta(days=days - 1)
    since = datetime.combine(first, datetime.min.time(), tzinfo=moment.tzinfo)
    day_list = [first + timedelta(days=offset) for offset in range(days)]
    index = {day: position for position, day in enumerate(day_list)}

    generations = {name: [0] * days for name in ("succeeded", "failed", "blocked", "other")}
    day = _day(session, col(Generation.created_at))
    for when, status, count in session.exec(
            select(day, Generation.status, func.count()).where(col(Generation.created_at) >= since)
            .group_by(day, Generation.status)).all():
        bucket = str(status) if str(status) in generations else "other"
        generations[bucket][index[_as_date(when)]] += int(count)

    log_day = _day(session, col(RequestLog.at))
    active = [0] * days
    for when, count in session.exec(
            select(log_day, func.count(func.distinct(RequestLog.user_id)))
            .where(col(RequestLog.at) >= since, col(RequestLog.user_id).is_not(None)).group_by(log_day)).all():
        active[index[_as_date(when)]] = int(count)
    errors = [0] * days
    for when, count in session.exec(
            select(log_day, func.count()).where(col(RequestLog.at) >= since,
                                                or_(col(RequestLog.status) >= 500, RequestLog.kind == "error"))
            .group_by(log_day)).all():
        errors[index[_as_date(when)]] = int(count)
    p95 = [_p95(session, day_start) for day_start in
           (datetime.combine(each, datetime.min.time(), tzinfo=moment.tzinfo) for each in day_list)]
    return Dashboard(day_list, generations, active, errors, p95, moment)


def _p95(session: Session, start: datetime) -> float | None:
    """The day's 95th-percentile request duration: the value at rank ⌈0.95·n⌉ (nearest rank)."""
    window = (col(RequestLog.at) >= start, col(RequestLog.at) < start + timedelta(days=1),
              RequestLog.kind != "error")
    count = session.exec(select(func.count()).where(*window)).one()
    if not count:
        return None
    rank = max(1, -(-95 * count // 100))  # ceil without floats
    value = session.exec(select(RequestLog.duration_ms).where(*window).order_by(col(RequestLog.duration_ms))
                         .offset(rank - 1).limit(1)).first()
    return float(value) if value is not None else None


def _day(session: Session, column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp column, in either database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)  # SQLite keeps UTC already


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


# --- generations -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GenerationRow:
    id: uuid.UUID
    created_at: datetime
    owner: str
    provider: str
    model: str
    status: str
    error: str
    seconds: float | None


def generations(session: Session, *, status: str | None = None, provider: str | None = None,
                limit: int = ROW_LIMIT) -> list[GenerationRow]:
    """The newest generations, optionally of one status and one provider."""
    query = (select(Generation, User.email).join(User, col(User.id) == col(Generation.user_id))
             .order_by(col(Generation.created_at).desc(), col(Generation.id).desc()).limit(limit))
    if status:
        query = query.where(Generation.status == status)
    if provider:
        query = query.where(Generation.provider == provider)
    rows = []
    for generation, email in session.exec(query).all():
        seconds = ((generation.finished_at - generation.started_at).total_seconds()
                   if generation.finished_at and generation.started_at else None)
        rows.append(GenerationRow(generation.id, generation.created_at, email, generation.provider,
                                  generation.model_label or generation.model, str(generation.status),
                                  generation.error, seconds))
    return rows


def providers_used(session: Session) -> list[str]:
    return sorted(session.exec(select(Generation.provider).distinct()).all())


@dataclass(frozen=True)
class FailureGroup:
    reason: str
    provider: str
    count: int
    last_at: datetime


def failures(session: Session, *, days: int = FAILURE_DAYS) -> list[FailureGroup]:
    """Failed generations of the last ``days`` grouped by the reason people were shown, most frequent first."""
    since = now() - timedelta(days=days)
    query = (select(Generation.error, Generation.provider, func.count(), func.max(Generation.created_at))
             .where(Generation.status == GenerationStatus.FAILED, col(Generation.created_at) >= since)
             .group_by(Generation.error, Generation.provider)
             .order_by(func.count().desc()).limit(50))
    return [FailureGroup(reason or "(no reason recorded)", provider, int(count), last)
            for reason, provider, count, last in session.exec(query).all()]


# --- scheduled jobs ----------------------------------------------------------------------------------------------

def job_runs(session: Session, *, job: str | None = None, limit: int = ROW_LIMIT) -> list[JobRun]:
    query = select(JobRun).order_by(col(JobRun.started_at).desc(), col(JobRun.id).desc()).limit(limit)
    if job:
        query = query.where(JobRun.job == job)
    return list(session.exec(query).all())


# --- outbox ------------------------------------------------------------------------------------------------------

def outbox(session: Session, *, status: str | None = None, limit: int = ROW_LIMIT) -> list[OutboxMessage]:
    query = select(OutboxMessage).order_by(col(OutboxMessage.created_at).desc(), col(OutboxMessage.id).desc())
    if status:
        query = query.where(OutboxMessage.status == status)
    return list(session.exec(query.limit(limit)).all())


def retry_mail(session: Session, actor: User, message_id: object) -> OutboxMessage:
    """Send a failed (or cancelled) message again at the next delivery run."""
    message = _message(session, actor, message_id)
    if message.status not in (MailStatus.FAILED, MailStatus.CANCELLED):
        raise OperationsError("Only failed or cancelled mail can be retried.")
    previous = str(message.status)
    message.status, message.next_attempt_at, message.attempts = MailStatus.QUEUED, now(), 0
    session.add(message)
    audit.record(session, actor, "mail.retry", target_kind="mail", target_id=message.id,
                 target_user_id=message.user_id, detail=f"was {previous}")
    session.flush()
    return message


def cancel_mail(session: Session, actor: User, message_id: object) -> OutboxMessage:
    """Stop a message that is waiting to be sent (queued, or failed and due for a retry)."""
    message = _message(session, actor, message_id)
    if message.status not in (MailStatus.QUEUED, MailStatus.FAILED):
        raise OperationsError("Only mail waiting to be sent can be cancelled.")
    previous = str(message.status)
    message.status = MailStatus.CANCELLED
    session.add(message)
    audit.record(session, actor, "mail.cancel", target_kind="mail", target_id=message.id,
                 target_user_id=message.user_id, detail=f"was {previous}")
    session.flush()
    return message


def _message(session: Session, actor: User, message_id: object) -> OutboxMessage:
    _require_admin(actor)
    try:
        number = int(str(message_id))
    except ValueError:
        number = -1
    # A conditional read under the row lock (PostgreSQL): the delivery job may be claiming the same row.
    message = session.exec(select(OutboxMessage).where(OutboxMessage.id == number).with_for_update()).first()
    if message is None:
        raise OperationsError("That message no longer exists.")
    if message.status == MailStatus.SENDING:
        raise OperationsError("That message is being sent right now.")
    return message


# --- technical log -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LogFilter:
    kind: str | None = None
    status_class: str | None = None  # "2xx" … "5xx"
    route: str | None = None  # substring of the route template
    email: str | None = None  # the signed-in person
    ip: str | None = None
    errors_only: bool = False


@dataclass(frozen=True)
class LogRow:
    at: datetime
    kind: str
    method: str
    route: str
    status: int
    duration_ms: float
    ip: str
    client: str
    person: str
    request_id: str
    error: str


def technical_log(session: Session, filters: LogFilter, *, limit: int = 100) -> list[LogRow]:
    """The newest technical-log rows matching ``filters``."""
    query = select(RequestLog).order_by(col(RequestLog.at).desc(), col(RequestLog.id).desc()).limit(limit)
    if filters.kind in REQUEST_KINDS:
        query = query.where(RequestLog.kind == filters.kind)
    if filters.status_class in STATUS_CLASSES:
        low = int(filters.status_class[0]) * 100
        query = query.where(col(RequestLog.status) >= low, col(RequestLog.status) < low + 100)
    if filters.route:
        query = query.where(col(RequestLog.route).contains(filters.route[:200], autoescape=True))
    if filters.ip:
        query = query.where(RequestLog.ip == filters.ip.strip()[:64])
    if filters.errors_only:
        query = query.where(col(RequestLog.error_type).is_not(None))
    if filters.email:
        person = session.exec(select(User.id).where(User.email == filters.email.strip().lower())).first()
        if person is None:
            return []
        query = query.where(RequestLog.user_id == person)
    records = session.exec(query).all()
    ids = {record.user_id for record in records if record.user_id is not None}
    emails = dict(session.exec(select(User.id, User.email).where(col(User.id).in_(ids))).all()) if ids else {}
    return [LogRow(record.at, record.kind, record.method, record.route, record.status, record.duration_ms,
                   record.ip, " · ".join(part for part in (record.browser, record.os, record.device) if part),
                   emails.get(record.user_id, "erased account") if record.user_id else "",
                   record.request_id,
                   f"{record.error_type} ({record.trace_id})" if record.error_type else "")
            for record in records]


def _require_admin(actor: User) -> None:
    if not actor.is_admin or not actor.is_active:
        raise OperationsError("Only administrators can do that.")
