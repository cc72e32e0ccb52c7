"""One scheduler leader per database, and each job once per tick across instances.

The timetable tests move the clock; the instance tests run real schedulers (three in one process, and three
processes of which the leader is killed) with a one-second mail job, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import pairwise

import pytest
from sqlmodel import col, select

from rupali import clock, jobs, leases
from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.models import JobRun
from rupali.scheduler import LEADER, JobScheduler, claim_tick, plan

MINUTE = timedelta(minutes=1)
LEASE_SECONDS = 3  # the leader renews every second


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mail job every second and a three-second leader lease, so real instances can be watched for seconds."""
    monkeypatch.setenv("RUPALI_MAIL_POLL_SECONDS", "1")
    monkeypatch.setenv("RUPALI_SCHEDULER_LEASE_SECONDS", str(LEASE_SECONDS))
    reset_settings()


def lead(holder: str = "leader") -> leases.Lease:
    lease = leases.acquire(get_settings(), LEADER, length=MINUTE, holder=holder)
    assert lease is not None
    return lease


def scheduled_runs(job: str) -> list[datetime]:
    with session_scope() as session:
        return list(session.exec(select(JobRun.started_at).where(JobRun.job == job, JobRun.trigger == "schedule")
                                 .order_by(col(JobRun.started_at))).all())


# --- the timetable in the database -----------------------------------------------------------------------------------

def test_a_tick_is_claimed_once_and_the_next_one_is_one_interval_later():
    settings = get_settings()
    lease = lead()
    before = clock.now()
    due = plan(settings, {"deliver_mail": MINUTE, "heartbeat": MINUTE})
    assert before <= due["heartbeat"] <= clock.now()  # the heartbeat at once, the others one interval later
    assert due["deliver_mail"] == due["heartbeat"] + MINUTE
    assert claim_tick(settings, "heartbeat", MINUTE, lease)
    assert not claim_tick(settings, "heartbeat", MINUTE, lease)  # this tick already ran
    assert not claim_tick(settings, "deliver_mail", MINUTE, lease)  # not due yet
    with clock.travel(MINUTE):
        lease = lead()
        assert claim_tick(settings, "heartbeat", MINUTE, lease)
        assert claim_tick(settings, "deliver_mail", MINUTE, lease)
        assert not claim_tick(settings, "deliver_mail", MINUTE, lease)


def test_a_late_run_runs_once_for_all_the_ticks_it_missed_and_keeps_the_timetable():
    settings = get_settings()
    lease = lead()
    first = plan(settings, {"deliver_mail": MINUTE})["deliver_mail"]
    with clock.travel(MINUTE * 3.5):
        lease = lead()
        assert claim_tick(settings, "deliver_mail", MINUTE, lease)
        assert not claim_tick(settings, "deliver_mail", MINUTE, lease)
        assert plan(settings, {"deliver_mail": MINUTE})["deliver_mail"] == first + 3 * MINUTE  # on the old grid


def test_only_the_live_leader_can_claim_a_tick():
    settings = get_settings()
    old = lead("old")
    plan(settings, {"heartbeat": MINUTE})
    assert not claim_tick(settings, "heartbeat", MINUTE, leases.Lease(settings, LEADER, "pretender", MINUTE))
    with clock.travel(2 * MINUTE):  # the old leader hung past its lease; another instance took over
        new = lead("new")
        assert not claim_tick(settings, "heartbeat", MINUTE, old)
        assert claim_tick(settings, "heartbeat", MINUTE, new)


def test_a_new_leader_continues_the_timetable_and_runs_what_fell_due_while_nobody_led_once():
    settings = get_settings()
    lead("old")
    due = plan(settings, {"deliver_mail": MINUTE})["deliver_mail"]
    with clock.travel(10 * MINUTE):
        lease = lead("new")
        before = clock.now()
        moment = plan(settings, {"deliver_mail": MINUTE})["deliver_mail"]
        assert before <= moment <= clock.now()  # overdue: runs at once
        assert claim_tick(settings, "deliver_mail", MINUTE, lease)
        assert not claim_tick(settings, "deliver_mail", MINUTE, lease)
        assert plan(settings, {"deliver_mail": MINUTE})["deliver_mail"] == moment + MINUTE  # timetable from then on
    assert due < moment


# --- real instances -------------------------------------------------------------------------------------------------

async def test_of_three_instances_one_leads_and_each_tick_runs_once(fast):
    settings = get_settings()
    instances = [JobScheduler(settings) for _ in range(3)]
    for instance in instances:
        instance.start()
    started = time.monotonic()
    await asyncio.sleep(6.5)
    watched = time.monotonic() - started
    leaders = [instance for instance in instances if instance.leading]
    for instance in instances:
        await instance.shutdown()
    assert len(leaders) == 1
    runs = await asyncio.to_thread(scheduled_runs, "deliver_mail")
    # Each instance running its own timetable would give three runs a second.
    assert watched - 3 <= len(runs) <= watched + 1, runs
    assert len(await asyncio.to_thread(scheduled_runs, "heartbeat")) == 1
    assert leases.holder_of(settings, LEADER) is None  # handed back at shutdown


INSTANCE = """
import asyncio
from rupali.config import get_settings
from rupali.scheduler import JobScheduler

async def main():
    JobScheduler(get_settings()).start()
    print("started", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.fixture
def instances(fast) -> Iterator[list[subprocess.Popen[str]]]:
    processes = [subprocess.Popen([sys.executable, "-c", INSTANCE], stdout=subprocess.PIPE, text=True,
                                  env=dict(os.environ)) for _ in range(3)]
    try:
        for process in processes:
            assert process.stdout is not None and process.stdout.readline().strip() == "started"
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)


def wait_for_leader(not_pid: int | None = None, timeout: float = 15) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = leases.holder_of(get_settings(), LEADER)
        if holder is not None and int(holder.rsplit(":", 2)[1]) != not_pid:
            return int(holder.rsplit(":", 2)[1])
        time.sleep(0.1)
    raise AssertionError(f"no instance led within {timeout} s")


def test_when_the_leader_process_dies_another_takes_over_within_a_lease_and_no_tick_runs_twice(instances):
    pids = {process.pid: process for process in instances}
    leader = wait_for_leader()
    assert leader in pids
    time.sleep(3)
    pids[leader].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    successor = wait_for_leader(not_pid=leader)
    took_over = time.monotonic() - killed_at
    assert successor in pids and successor != leader
    # The lease runs out after at most LEASE_SECONDS, and the others check every third of it.
    assert took_over <= LEASE_SECONDS + LEASE_SECONDS / 3 + 1.5
    time.sleep(3)
    runs = scheduled_runs("deliver_mail")
    gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(runs)]
    assert len(runs) >= 5, runs
    # Never more than one run a second (three instances' timetables would give three), and the successor carried on.
    assert len(runs) <= (runs[-1] - runs[0]).total_seconds() + 1.5, runs
    assert max(gaps) <= LEASE_SECONDS + LEASE_SECONDS / 3 + 2.5
    assert len(scheduled_runs("heartbeat")) == 1  # due again only after 60 s, whoever leads


def test_jobs_run_by_hand_do_not_need_the_lease():
    lead("somebody-else")
    assert jobs.run("heartbeat").detail == "alive"
