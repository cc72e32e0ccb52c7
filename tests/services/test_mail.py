"""The outbox: real SMTP delivery, retries with backoff, nothing lost to a crash, log-only mode."""

from __future__ import annotations

import logging
import socket
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import event
from sqlmodel import select

from rupali import clock, jobs
from rupali.config import get_settings, reset_settings
from rupali.db import get_engine, session_scope
from rupali.mail_templates import verify_email
from rupali.models import JobRun, JobRunStatus, MailStatus, OutboxMessage
from rupali.services import mail


def _queue(to: str = "reader@example.com") -> int:
    with session_scope() as session:
        return mail.enqueue(session, to=to, mail=verify_email("Reader", "https://x.test/verify?token=t", 48)).id


def _message(message_id: int) -> OutboxMessage:
    with session_scope() as session:
        return session.get(OutboxMessage, message_id)


def test_queued_mail_is_delivered_over_smtp_with_text_and_html(inbox):
    message_id = _queue()
    run = jobs.run("deliver_mail")
    assert run.detail.startswith("1 sent")
    received = inbox.last_to("reader@example.com")
    assert received["Subject"] == "Confirm your e-mail address"
    assert "https://x.test/verify?token=t" in received.get_body(("plain",)).get_content()
    assert 'href="https://x.test/verify?token=t"' in received.get_body(("html",)).get_content()
    assert _message(message_id).status == MailStatus.SENT


def test_names_are_escaped_in_html_mail():
    mail_ = verify_email("<img src=x onerror=alert(1)>", "https://x.test/v", 48)
    assert "<img" not in mail_.html and "&lt;img" in mail_.html


def test_an_unreachable_server_means_retries_with_backoff_then_giving_up(monkeypatch):
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    monkeypatch.setenv("RUPALI_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("RUPALI_SMTP_PORT", str(dead_port))
    monkeypatch.setenv("RUPALI_SMTP_SECURITY", "none")
    reset_settings()
    message_id = _queue()
    jobs.run("deliver_mail")
    first = _message(message_id)
    assert (first.status, first.attempts) == (MailStatus.QUEUED, 1) and "Connect" in first.last_error
    assert first.next_attempt_at - clock.now() > timedelta(seconds=50)
    jobs.run("deliver_mail")
    assert _message(message_id).attempts == 1  # not due yet
    offset = timedelta(0)
    for step in mail.BACKOFF:
        offset += step + timedelta(seconds=1)
        with clock.travel(offset):
            jobs.run("deliver_mail")
    final = _message(message_id)
    assert (final.status, final.attempts) == (MailStatus.FAILED, mail.MAX_ATTEMPTS)


def test_a_claim_left_by_a_crash_goes_back_to_the_queue_and_is_sent(inbox):
    message_id = _queue()
    with session_scope() as session:
        message = session.get(OutboxMessage, message_id)
        message.status, message.claimed_at, message.attempts = MailStatus.SENDING, clock.now(), 1
    jobs.run("deliver_mail")
    assert inbox.messages == []  # another run may still be sending it
    with clock.travel(mail.STALE_CLAIM + timedelta(seconds=1)):
        jobs.run("deliver_mail")
    assert len(inbox.to("reader@example.com")) == 1
    assert _message(message_id).status == MailStatus.SENT


def test_without_smtp_mail_is_printed_to_the_log_and_kept(caplog):
    assert get_settings().mail_to_log
    message_id = _queue()
    with caplog.at_level(logging.INFO, logger="rupali.services.mail"):
        jobs.run("deliver_mail")
    assert "https://x.test/verify?token=t" in caplog.text
    assert _message(message_id).status == MailStatus.LOGGED


def test_two_delivery_runs_at_once_never_send_the_same_message_twice(inbox):
    """Two deliverers read the same due messages at the same moment; the conditional claim gives each to one."""
    count = 20  # well inside one batch, so both runs see every message
    for n in range(count):
        _queue(f"r{n}@example.com")
    start = threading.Barrier(2, timeout=10)
    runs: list[JobRun] = []

    def deliverer() -> None:
        start.wait()
        runs.append(jobs.run("deliver_mail"))

    threads = [threading.Thread(target=deliverer, name=f"deliverer-{n}") for n in range(2)]
    with _watching_claims(threading.Barrier(2, timeout=10)) as (claims, due_reads):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a deliverer hung"
    assert [run.status for run in runs] == [JobRunStatus.SUCCEEDED] * 2, [run.detail for run in runs]
    # The race really happened: both runs read all messages as due and tried to claim every one of them.
    assert due_reads == {"deliverer-0": 1, "deliverer-1": 1}
    assert {name: len(attempts) for name, attempts in claims.items()} == {"deliverer-0": count, "deliverer-1": count}
    assert sorted(message["To"] for message in inbox.messages) == sorted(f"r{n}@example.com" for n in range(count))
    assert sum(won for attempts in claims.values() for won in attempts) == count
    with session_scope() as session:
        rows = session.exec(select(OutboxMessage)).all()
    assert {(row.status, row.attempts) for row in rows} == {(MailStatus.SENT, 1)}
    assert sum(int(run.detail.split()[0]) for run in runs) == count  # each summary starts "N sent"


@contextmanager
def _watching_claims(read_together: threading.Barrier) -> Iterator[tuple[dict[str, list[bool]], Counter[str]]]:
    """Record each deliverer's claim attempts (won or lost), and hold both after reading the due list.

    Without the hold, one run could claim and commit everything before the other has even looked, and the
    test would pass with no race at all. Only the deliverer threads are held; other connections pass freely.
    """
    claims: dict[str, list[bool]] = defaultdict(list)
    due_reads: Counter[str] = Counter()
    engine = get_engine()

    def after_execute(conn, cursor, statement: str, parameters, context, executemany) -> None:
        name = threading.current_thread().name
        if not name.startswith("deliverer-"):
            return
        if statement.startswith("SELECT outbox_message.id") and "ORDER BY" in statement and "LIMIT" in statement:
            due_reads[name] += 1
            read_together.wait()
        elif statement.startswith("UPDATE outbox_message") and "claimed_at" in statement:
            claims[name].append(cursor.rowcount == 1)

    event.listen(engine, "after_cursor_execute", after_execute)
    try:
        yield claims, due_reads
    finally:
        event.remove(engine, "after_cursor_execute", after_execute)
