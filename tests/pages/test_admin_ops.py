"""The operations views of the admin console, through their controls."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User
from sqlmodel import select

from rupali import jobs, techlog
from rupali.db import session_scope
from rupali.models import AuditEntry, GenerationStatus, MailStatus, OutboxMessage, RequestLog, Role
from tests.services.test_operations import _generation, _mail
from tests.utils.factories import make_user
from tests.utils.signin import sign_in


async def _admin(user: User) -> None:
    await sign_in(user, make_user(role=Role.ADMIN, email="boss@example.com").email)


async def test_generations_view_lists_and_groups_failures(user: User):
    owner = make_user(email="maker@example.com")
    _generation(owner, GenerationStatus.FAILED, error="Runware is not reachable", provider="runware")
    _generation(owner, GenerationStatus.SUCCEEDED)
    await _admin(user)
    await user.open("/admin/generations")
    await user.should_see("maker@example.com")
    await user.should_see("Failures by reason, last 30 days")
    await user.should_see("Runware is not reachable")


async def test_a_failed_mail_is_retried_from_the_outbox_view(user: User):
    failed = _mail(MailStatus.FAILED)
    await _admin(user)
    await user.open("/admin/outbox")
    await user.should_see("ada@example.com")
    user.find(kind=ui.button, marker=None, content="Retry").click()
    await user.should_see(f"Message {failed} queued again.", retries=50)
    with session_scope() as session:
        assert session.get(OutboxMessage, failed).status == MailStatus.QUEUED
        assert session.exec(select(AuditEntry.action)).all() == ["mail.retry"]


async def test_the_jobs_view_shows_runs(user: User):
    jobs.run("heartbeat")
    await _admin(user)
    await user.open("/admin/jobs")
    await user.should_see("heartbeat")
    await user.should_see("succeeded")


async def test_the_technical_log_view_filters_to_errors(user: User):
    await _admin(user)
    recorder = techlog.current()
    assert recorder is not None
    recorder.flush()
    with session_scope() as session:
        session.add(RequestLog(kind="page", method="GET", route="/gallery/{image_id}", status=500,
                               error_type="KeyError", trace_id="F00BA4", ip="203.0.113.50"))
    await user.open("/admin/log")
    await user.should_see("GET /signin")  # the admin's own sign-in, written by the flush above
    user.find(kind=ui.checkbox, content="Errors only").click()
    user.find(kind=ui.button, content="Apply filters").click()
    await user.should_see("KeyError (F00BA4)", retries=50)
    await user.should_not_see("GET /signin")


async def test_members_get_the_not_found_page(user: User):
    await sign_in(user, make_user(email="member@example.com").email)
    for path in ("/admin/generations", "/admin/jobs", "/admin/outbox", "/admin/log"):
        assert (await user.http_client.get(path)).status_code == 404
