"""The admin console's operations figures and actions, without UI: charts, failures, outbox, technical log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from rupali import clock
from rupali.db import session_scope
from rupali.models import AuditEntry, Generation, GenerationStatus, MailStatus, OutboxMessage, RequestLog, Role
from rupali.services import operations
from rupali.services.operations import LogFilter, OperationsError
from tests.utils.factories import make_user

DAY = timedelta(days=1)


def _log(**values) -> RequestLog:
    row = {"kind": "page", "method": "GET", "route": "/studio", "status": 200, "duration_ms": 10.0, "at": clock.now()}
    return RequestLog(**(row | values))


def _generation(user, status: GenerationStatus, *, error: str = "", at: timedelta = timedelta(0),
                provider: str = "offline") -> None:
    with clock.travel(at), session_scope() as session:
        session.add(Generation(user_id=user.id, status=status, provider=provider, model="sketch-v1", prompt="p",
                               width=8, height=8, steps=20, guidance=7.0, count=1, seed=1, error=error,
                               created_at=clock.now()))


def test_the_dashboard_counts_each_utc_day():
    ada, bob = make_user(email="ada@example.com"), make_user(email="bob@example.com")
    _generation(ada, GenerationStatus.SUCCEEDED)
    _generation(ada, GenerationStatus.FAILED, error="The provider is down")
    _generation(bob, GenerationStatus.BLOCKED, at=-DAY)
    _generation(bob, GenerationStatus.SUCCEEDED, at=-20 * DAY)  # outside the window
    with session_scope() as session:
        # Today: ada twice, bob once, a visitor; durations 1..100 ms, so the nearest-rank p95 is 95 ms.
        session.add_all([_log(user_id=ada.id if number % 2 else bob.id, duration_ms=float(number))
                         for number in range(1, 101)])
        session.add(_log(status=500, error_type="RuntimeError", trace_id="ABC123"))
        session.add(_log(kind="error", method="", route="action on /studio", status=0))
        session.add(_log(at=clock.now() - DAY, user_id=ada.id, duration_ms=7.0))
    with session_scope() as session:
        data = operations.dashboard(session)
    assert len(data.days) == operations.DASHBOARD_DAYS and data.days[-1] == clock.now().date()
    assert data.generations["succeeded"][-1] == 1 and data.generations["failed"][-1] == 1
    assert data.generations["blocked"][-2:] == [1, 0] and sum(data.generations["succeeded"]) == 1
    assert data.active_users[-2:] == [1, 2]
    assert data.errors[-1] == 2 and data.errors[-2] == 0
    assert data.p95_ms[-1] == 95.0 and data.p95_ms[-2] == 7.0 and data.p95_ms[0] is None


def test_failures_are_grouped_by_reason_and_provider():
    user = make_user()
    for _ in range(3):
        _generation(user, GenerationStatus.FAILED, error="Runware is not reachable", provider="runware")
    _generation(user, GenerationStatus.FAILED, error="Timed out", provider="a1111")
    _generation(user, GenerationStatus.FAILED, error="Old", at=-40 * DAY)
    with session_scope() as session:
        groups = operations.failures(session)
        listed = operations.generations(session, status="failed", provider="runware")
    assert [(group.reason, group.provider, group.count) for group in groups] == [
        ("Runware is not reachable", "runware", 3), ("Timed out", "a1111", 1)]
    assert len(listed) == 3 and {row.provider for row in listed} == {"runware"}


def _mail(status: MailStatus) -> int:
    with session_scope() as session:
        message = OutboxMessage(recipient="ada@example.com", kind="transactional", subject="Hi", text_body="x",
                                html_body="x", status=status, attempts=5)
        session.add(message)
        session.flush()
        return message.id


def test_failed_mail_can_be_retried_and_waiting_mail_cancelled_with_an_audit_entry():
    admin = make_user(role=Role.ADMIN, email="boss@example.com")
    failed, queued, sent = _mail(MailStatus.FAILED), _mail(MailStatus.QUEUED), _mail(MailStatus.SENT)
    with session_scope() as session:
        operations.retry_mail(session, admin, failed)
        operations.cancel_mail(session, admin, queued)
    with session_scope() as session:
        retried, cancelled = session.get(OutboxMessage, failed), session.get(OutboxMessage, queued)
        assert (retried.status, retried.attempts) == (MailStatus.QUEUED, 0)
        assert cancelled.status == MailStatus.CANCELLED
        entries = session.exec(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [(entry.action, entry.target_id, entry.actor_id) for entry in entries] == [
        ("mail.retry", str(failed), admin.id), ("mail.cancel", str(queued), admin.id)]
    for action, message_id, message in ((operations.retry_mail, sent, "Only failed"),
                                        (operations.cancel_mail, sent, "Only mail waiting"),
                                        (operations.retry_mail, "9999999", "no longer exists"),
                                        (operations.cancel_mail, "1 OR 1=1", "no longer exists")):
        with pytest.raises(OperationsError, match=message), session_scope() as session:
            action(session, admin, message_id)


def test_only_administrators_act_on_the_outbox():
    member = make_user()
    failed = _mail(MailStatus.FAILED)
    with pytest.raises(OperationsError, match="Only administrators"), session_scope() as session:
        operations.retry_mail(session, member, failed)


def test_the_technical_log_filters():
    ada = make_user(email="ada@example.com")
    with session_scope() as session:
        session.add_all([
            _log(user_id=ada.id, ip="203.0.113.5"),
            _log(route="/api/v1/generations", kind="api", status=429, ip="198.51.100.1"),
            _log(route="/gallery/{image_id}", status=500, error_type="KeyError", trace_id="ABCDEF"),
        ])
    with session_scope() as session:
        def routes(**filters) -> list[str]:
            return [row.route for row in operations.technical_log(session, LogFilter(**filters))]

        assert len(routes()) == 3
        assert routes(kind="api") == ["/api/v1/generations"]
        assert routes(status_class="4xx") == ["/api/v1/generations"]
        assert routes(route="gallery") == ["/gallery/{image_id}"]
        assert routes(route="%") == [] and routes(route="g_llery") == []  # LIKE wildcards are literal
        assert routes(email="ADA@example.com ") == ["/studio"] and routes(email="nobody@example.com") == []
        assert routes(ip="198.51.100.1") == ["/api/v1/generations"]
        [failed] = operations.technical_log(session, LogFilter(errors_only=True))
        assert failed.error == "KeyError (ABCDEF)"
        [mine] = operations.technical_log(session, LogFilter(email="ada@example.com"))
        assert mine.person == "ada@example.com" and mine.ip == "203.0.113.5"
        assert routes(kind="bogus', 1)--") == routes()  # an unknown kind filters nothing rather than failing
