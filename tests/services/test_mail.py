"""The outbox: real SMTP delivery, retries with backoff, nothing lost to a crash, log-only mode."""

from __future__ import annotations

import logging
import socket
from datetime import timedelta

from sqlmodel import select

from rupali import clock, jobs
from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.mail_templates import verify_email
from rupali.models import MailStatus, OutboxMessage
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


def test_two_delivery_runs_never_send_the_same_message_twice(inbox):
    for n in range(5):
        _queue(f"r{n}@example.com")
    jobs.run("deliver_mail")
    jobs.run("deliver_mail")
    assert sorted(message["To"] for message in inbox.messages) == [f"r{n}@example.com" for n in range(5)]
    with session_scope() as session:
        assert {row.status for row in session.exec(select(OutboxMessage))} == {MailStatus.SENT}
