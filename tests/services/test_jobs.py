"""Scheduled jobs: every run recorded, failures recorded not raised, technical logs purged on time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from rupali import clock, jobs
from rupali.db import session_scope
from rupali.models import JobRun, JobRunStatus


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
