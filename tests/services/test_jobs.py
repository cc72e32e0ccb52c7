"""Scheduled jobs: every run recorded, failures recorded not raised, technical logs purged on time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from rupali import clock, jobs, legal
from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.mail_templates import verify_email
from rupali.models import AuthAttempt, JobRun, JobRunStatus, OutboxMessage
from rupali.services import mail, ratelimit
from rupali.storage import LocalStorage


def test_heartbeat_run_is_recorded():
    run = jobs.run("heartbeat")
    assert (run.status, run.detail, run.trigger) == (JobRunStatus.SUCCEEDED, "alive", "manual")
    with session_scope() as session:
        assert jobs.last_runs(session)["heartbeat"].finished_at >= run.started_at


def test_a_failing_job_is_recorded_as_failed(monkeypatch):
    def explode(session, settings):
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(jobs.JOBS, "explode", jobs.Job("explode", "fails", lambda s: timedelta(hours=1), explode))
    run = jobs.run("explode")
    assert run.status == JobRunStatus.FAILED and run.detail == "RuntimeError: disk on fire"


def test_unknown_job_names_the_known_ones():
    with pytest.raises(jobs.UnknownJob, match="heartbeat"):
        jobs.run("nope")


def test_runs_interrupted_by_a_restart_are_resolved():
    with session_scope() as session:
        session.add(JobRun(job="heartbeat", trigger="schedule"))
    with session_scope() as session:
        assert jobs.resolve_interrupted(session) == 1
    with session_scope() as session:
        run = session.exec(select(JobRun)).one()
        assert run.status == JobRunStatus.FAILED and "interrupted" in run.detail and run.finished_at


def test_technical_logs_are_purged_after_ninety_days():
    jobs.run("heartbeat")
    with clock.travel(timedelta(days=60)):
        jobs.run("heartbeat")
    with clock.travel(timedelta(days=90, hours=1)):
        purge = jobs.run("apply_retention")
    assert "job_run 1" in purge.detail
    with session_scope() as session:
        remaining = session.exec(select(JobRun).order_by(JobRun.started_at)).all()
    assert [run.job for run in remaining] == ["heartbeat", "apply_retention"]


def test_a_configured_technical_log_period_changes_both_the_purge_and_the_policy(monkeypatch):
    """README: change RUPALI_RETENTION_TECHNICAL_LOG_DAYS and both the policy and the purge job change."""
    monkeypatch.setenv("RUPALI_RETENTION_TECHNICAL_LOG_DAYS", "7")
    reset_settings()
    settings = get_settings()

    def technical_logs(label: str) -> None:
        jobs.run("heartbeat")
        with session_scope() as session:
            mail.enqueue(session, to=f"{label}@example.com", mail=verify_email(label, "https://x.test/v", 48))
            ratelimit.record(session, settings, "signin", email=f"{label}@example.com", ip=None, succeeded=False)

    technical_logs("old")
    with clock.travel(timedelta(days=1)):
        technical_logs("young")
    with clock.travel(timedelta(days=7, hours=1)):  # "old" is just past 7 days, "young" is 6 days old
        purge = jobs.run("apply_retention")
    assert purge.status == JobRunStatus.SUCCEEDED
    deleted = dict(item.rsplit(" ", 1) for item in purge.detail.removeprefix("deleted ").split(", "))
    assert {table: deleted[table] for table in ("outbox_message", "auth_attempt", "job_run")} == {
        "outbox_message": "1", "auth_attempt": "1", "job_run": "1"}, purge.detail
    with session_scope() as session:
        assert [row.recipient for row in session.exec(select(OutboxMessage))] == ["young@example.com"]
        assert len(session.exec(select(AuthAttempt)).all()) == 1
        kept = session.exec(select(JobRun).order_by(JobRun.started_at)).all()
    assert [run.job for run in kept] == ["heartbeat", "apply_retention"]
    assert kept[0].started_at > clock.now() + timedelta(hours=12)  # the young heartbeat, from "day 1"

    policy = "\n".join(section.body for section in legal.privacy_policy(settings).sections)
    assert "| Technical logs | 7 days | Security & debugging |" in policy
    assert "Technical logs are kept 7 days;" in policy
    # The "where your data lives" table promises the same period for each record the purge covers.
    assert "| Outbox message | E-mails we sent you: address, subject, text, delivery status | Yes | Deleted | 7 days" \
        in policy
    assert "90 days" not in policy


def test_the_media_sweep_runs_daily_and_at_start_up_recorded_like_the_other_jobs():
    settings = get_settings()
    assert jobs.get("sweep_media").interval(settings) == timedelta(days=1)
    storage = LocalStorage.from_settings(settings)
    storage.put("images/left/by-a-crash.png", b"no row names this")
    (startup,) = jobs.run_at_startup(settings)
    assert (startup.job, startup.trigger, startup.status) == ("sweep_media", "startup", JobRunStatus.SUCCEEDED)
    assert "young files kept 1" in startup.detail and storage.exists("images/left/by-a-crash.png")
    with clock.travel(timedelta(hours=2)):
        daily = jobs.run("sweep_media", trigger="schedule")
    assert daily.status == JobRunStatus.SUCCEEDED and "orphans deleted 1," in daily.detail
    assert not storage.exists("images/left/by-a-crash.png")
    with session_scope() as session:
        assert jobs.last_runs(session)["sweep_media"].trigger == "schedule"
