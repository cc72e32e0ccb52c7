"""What an administrator sees: accounts, the mail outbox and the scheduled jobs."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, func, select

from rupali import jobs
from rupali.models import JobRun, MailStatus, OutboxMessage, User


@dataclass(frozen=True)
class Overview:
    users: list[User]
    user_count: int
    outbox: dict[str, int]
    last_runs: dict[str, JobRun]


def overview(session: Session, *, limit: int = 200) -> Overview:
    newest = session.exec(select(User).order_by(col(User.created_at).desc()).limit(limit)).all()
    total = session.exec(select(func.count()).select_from(User)).one()
    counts = dict(session.exec(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())
    outbox = {status.value: int(counts.get(status, 0)) for status in MailStatus}
    return Overview(list(newest), total, outbox, jobs.last_runs(session))
