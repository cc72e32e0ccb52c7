"""Scheduled jobs: the registry, and running a job with its run recorded in ``job_run``.

Jobs are plain functions taking a session and the settings and returning a one-line summary. The scheduler
(:mod:`rupali.scheduler`) runs them on an interval; ``rupali jobs run NAME`` runs one by hand; the ones in
``AT_STARTUP`` also run when the server starts, before the generation queue resumes work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session, col, select

from rupali import image_signing, media_sweep, metrics
from rupali.clock import now
from rupali.config import Settings, get_settings
from rupali.db import session_scope
from rupali.models import JobRun, JobRunStatus
from rupali.privacy import retention
from rupali.provenance import ContentCredentials
from rupali.services import exports, mail
from rupali.storage import from_settings as storage_from_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    description: str
    interval: Callable[[Settings], timedelta]
    run: Callable[[Session, Settings], str]


class UnknownJob(KeyError):
    """No job has this name."""


def _heartbeat(session: Session, settings: Settings) -> str:
    # The run row itself is the heartbeat; touching the database proves the job can reach it.
    session.exec(select(1)).one()
    return "alive"


def _apply_retention(session: Session, settings: Settings) -> str:
    """Enforce every retention rule of the personal-data inventory (batched, one runner at a time)."""
    # The run's batches open their own short transactions: this session stays unused, so it holds no lock.
    return retention.apply(settings, storage_from_settings(settings)).summary()


def _deliver_mail(session: Session, settings: Settings) -> str:
    return mail.deliver_due(session, settings)


def _sweep_media(session: Session, settings: Settings) -> str:
    return media_sweep.sweep(session, storage_from_settings(settings)).summary()


def _build_exports(_session: Session, settings: Settings) -> str:
    # Builds open sessions of their own: a long build must not hold the job's transaction open.
    return exports.build_pending(settings)


def _remind_privacy_requests(session: Session, settings: Settings) -> str:
    from rupali.services import admin  # imported here: the admin service reads this module's registry

    return admin.remind_privacy_requests(session, settings)


def _sign_images(_session: Session, settings: Settings) -> str:
    # Each image is signed in short transactions of its own; this session stays unused.
    return image_signing.sign_stored(settings, storage_from_settings(settings),
                                     ContentCredentials.from_settings(settings))


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job("heartbeat", "Proves the scheduler and database are alive",
            lambda s: timedelta(seconds=s.heartbeat_seconds), _heartbeat),
        Job("apply_retention", "Deletes records past their retention period (personal-data inventory)",
            lambda s: timedelta(hours=6), _apply_retention),
        Job("deliver_mail", "Delivers queued e-mail over SMTP (or prints it to the log)",
            lambda s: timedelta(seconds=s.mail_poll_seconds), _deliver_mail),
        Job("sweep_media", "Deletes media files no row names and stale temporaries; marks images missing files",
            lambda s: timedelta(days=1), _sweep_media),
        Job("remind_privacy_requests", "Mails administrators the data-protection requests due within 7 days",
            lambda s: timedelta(days=1), _remind_privacy_requests),
        Job("build_exports", "Builds queued data exports; restarts (or fails) those a restart interrupted",
            lambda s: timedelta(minutes=1), _build_exports),
        Job("sign_images", f"Signs images stored before Content Credentials existed, {image_signing.BATCH} per run",
            lambda s: timedelta(minutes=10), _sign_images),
    )
}
# Run at every start as well: what a crash left behind is cleared before anything new is written.
AT_STARTUP = ("sweep_media",)


def get(name: str) -> Job:
    try:
        return JOBS[name]
    except KeyError:
        raise UnknownJob(f"no job named {name!r} (known: {', '.join(JOBS)})") from None


def run(name: str, *, trigger: str = "manual", settings: Settings | None = None) -> JobRun:
    """Run a job now, recording the run; a failing job is recorded as failed, never raised."""
    job = get(name)
    settings = settings or get_settings()
    with session_scope(settings) as session:
        record = JobRun(job=name, trigger=trigger, started_at=now())
        session.add(record)
    try:
        with session_scope(settings) as session:
            detail = job.run(session, settings)
        status = JobRunStatus.SUCCEEDED
    except Exception as exc:
        log.exception("job %s failed", name)
        detail, status = f"{type(exc).__name__}: {exc}", JobRunStatus.FAILED
    with session_scope(settings) as session:
        record.status, record.detail, record.finished_at = status, detail[:2000], now()
        session.add(record)
    metrics.job_runs.labels(name, str(status)).inc()
    return record


def run_at_startup(settings: Settings) -> list[JobRun]:
    """Run the ``AT_STARTUP`` jobs now, recorded with the trigger "startup" (failures recorded, not raised)."""
    return [run(name, trigger="startup", settings=settings) for name in AT_STARTUP]


def resolve_interrupted(session: Session) -> int:
    """Mark runs left 'running' by a crash or restart as failed, so none stays running forever."""
    stale = session.exec(select(JobRun).where(JobRun.status == JobRunStatus.RUNNING)).all()
    for record in stale:
        record.status, record.finished_at = JobRunStatus.FAILED, now()
        record.detail = "interrupted: the server stopped while this job was running"
        session.add(record)
    return len(stale)


def last_runs(session: Session) -> dict[str, JobRun]:
    """The most recent run of each job."""
    latest: dict[str, JobRun] = {}
    for name in JOBS:
        query = select(JobRun).where(JobRun.job == name).order_by(col(JobRun.started_at).desc()).limit(1)
        if (record := session.exec(query).first()) is not None:
            latest[name] = record
    return latest
