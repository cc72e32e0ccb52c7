"""The outbox: queue mail as rows, deliver them over SMTP with retries, or print them to the log.

Delivery is at-least-once: a message is claimed (``sending``) and committed before the SMTP conversation, and a
claim older than :data:`STALE_CLAIM` goes back to the queue, so a crash between "queued" and "sent" loses
nothing (at worst the message goes out twice).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

import aiosmtplib
from sqlmodel import Session, col, select, update

from rupali.clock import now
from rupali.config import Settings
from rupali.mail_templates import Mail
from rupali.models import MailKind, MailStatus, OutboxMessage

log = logging.getLogger(__name__)

BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
           timedelta(hours=6))
MAX_ATTEMPTS = len(BACKOFF) + 1
STALE_CLAIM = timedelta(minutes=10)
BATCH = 50


def enqueue(session: Session, *, to: str, mail: Mail, kind: MailKind = MailKind.TRANSACTIONAL,
            user_id: uuid.UUID | None = None, unsubscribe_url: str = "") -> OutboxMessage:
    """Queue one message; the delivery job sends it.

    Transactional and security mail is always sent. Anything else must carry a one-click unsubscribe link.
    """
    if kind != MailKind.TRANSACTIONAL and not unsubscribe_url.startswith(("https://", "http://")):
        raise ValueError("non-transactional mail needs an unsubscribe link (RFC 8058)")
    message = OutboxMessage(recipient=to, user_id=user_id, kind=kind, subject=mail.subject, text_body=mail.text,
                            html_body=mail.html, unsubscribe_url=unsubscribe_url)
    session.add(message)
    session.flush()
    return message


def deliver_due(session: Session, settings: Settings) -> str:
    """Deliver every message that is due; returns a one-line summary for the job log."""
    cutoff = now() - STALE_CLAIM
    for stale in session.exec(select(OutboxMessage).where(
            OutboxMessage.status == MailStatus.SENDING, col(OutboxMessage.claimed_at) < cutoff)):
        stale.status = MailStatus.QUEUED
        session.add(stale)
    due_ids = session.exec(
        select(OutboxMessage.id)
        .where(OutboxMessage.status == MailStatus.QUEUED, col(OutboxMessage.next_attempt_at) <= now())
        .order_by(col(OutboxMessage.id)).limit(BATCH)
    ).all()
    claimed = []
    for message_id in due_ids:
        # A conditional update, so two delivery runs at once never claim (and send) the same message.
        result = session.exec(
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == message_id, OutboxMessage.status == MailStatus.QUEUED)
            .values(status=MailStatus.SENDING, claimed_at=now(), attempts=OutboxMessage.attempts + 1)
        )  # type: ignore[call-overload]
        if result.rowcount == 1:
            claimed.append(message_id)
    session.commit()  # the claims are durable before any mail leaves
    due = [message for message_id in claimed if (message := session.get(OutboxMessage, message_id)) is not None]

    counts = {"sent": 0, "logged": 0, "retry": 0, "failed": 0}
    for message in due:
        outcome = _deliver_one(message, settings)
        counts[outcome] += 1
        session.add(message)
        session.commit()
    return ", ".join(f"{count} {name}" for name, count in counts.items())


def _deliver_one(message: OutboxMessage, settings: Settings) -> str:
    if settings.mail_to_log:
        log.info("mail to %s (no SMTP configured, shown here instead)\nSubject: %s\n\n%s",
                 message.recipient, message.subject, message.text_body)
        message.status, message.sent_at = MailStatus.LOGGED, now()
        return "logged"
    try:
        asyncio.run(_send(message, settings))
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        message.last_error = f"{type(exc).__name__}: {exc}"[:1000]
        if message.attempts >= MAX_ATTEMPTS:
            message.status = MailStatus.FAILED
            # The message id, not the address: the outbox row says to whom, and is purged on time; logs may not be.
            log.error("giving up on mail %s after %s attempts: %s", message.id, message.attempts, message.last_error)
            return "failed"
        message.status = MailStatus.QUEUED
        message.next_attempt_at = now() + BACKOFF[message.attempts - 1]
        log.warning("mail %s not delivered (attempt %s), retrying later: %s", message.id, message.attempts,
                    message.last_error)
        return "retry"
    message.status, message.sent_at, message.last_error = MailStatus.SENT, now(), ""
    return "sent"


async def _send(message: OutboxMessage, settings: Settings) -> None:
    email = EmailMessage()
    email["From"] = settings.mail_from
    email["To"] = message.recipient
    email["Subject"] = message.subject
    email["Date"] = formatdate(localtime=False)
    email["Message-ID"] = make_msgid(domain=parseaddr(settings.mail_from)[1].partition("@")[2] or None)
    if message.unsubscribe_url:
        # RFC 8058 one-click unsubscribe: mail clients POST "List-Unsubscribe=One-Click" to the HTTPS link.
        email["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
        email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    email.set_content(message.text_body)
    email.add_alternative(message.html_body, subtype="html")
    await aiosmtplib.send(
        email,
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username or None,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        use_tls=settings.smtp_security == "tls",
        start_tls=settings.smtp_security == "starttls",
        timeout=30,
    )
