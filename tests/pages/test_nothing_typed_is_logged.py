"""Nothing a person types ends up in a log: not in the log lines, not in the technical log's rows.

A person signs up, generates with a prompt, searches the gallery and signs in again with a wrong password, each
time typing a distinctive marker; mail goes over (loopback) SMTP, as in production, where printing mail to the log
is refused. Every log record of the run, at DEBUG, and every technical-log row are searched for the markers.
"""

from __future__ import annotations

import json
import logging
import re

from nicegui import ui
from nicegui.testing import User
from sqlmodel import select

from rupali import jobs, techlog
from rupali.db import session_scope
from rupali.models import OutboxMessage, RequestLog
from tests.pages.test_account_pages import _fill_signup
from tests.pages.test_studio import _generate, _wait_for_generation
from tests.utils.signin import sign_in, submit_signin

NAME = "Zelda Quuxington"
EMAIL = "zelda.quux@example.com"
PASSWORD = "pw-Xyzzy-marker-42"
PROMPT = "a plover-marker lighthouse in fog"
SEARCH = "wombatmarker"


async def test_typed_names_addresses_prompts_searches_and_passwords_are_never_logged(inbox, user: User, caplog):
    caplog.set_level(logging.DEBUG)
    await _fill_signup(user, name=NAME, email=EMAIL, password=PASSWORD, adult=True, accept=True)
    await user.should_see("Check your inbox", retries=100)
    jobs.run("deliver_mail")  # the verification mail goes out over SMTP
    with session_scope() as session:
        body = session.exec(select(OutboxMessage.text_body).where(OutboxMessage.recipient == EMAIL)).first()
    verify = re.search(r"https?://[^/\s]+(/confirm-email\?token=\S+)", body or "")
    assert verify, body
    await user.open(verify.group(1))
    user.find(kind=ui.button, content="Confirm my e-mail address").click()
    await user.should_see("Your e-mail address is confirmed", retries=50)
    await sign_in(user, EMAIL, PASSWORD)
    await _generate(user, PROMPT)
    await _wait_for_generation()
    await user.open("/gallery")
    user.find(kind=ui.input, content="Search prompts").type(SEARCH)
    await user.should_see(f"No images match “{SEARCH}”.", retries=50)
    user.http_client.cookies.clear()
    await submit_signin(user, EMAIL, PASSWORD + "-wrong")
    await user.should_see("Wrong e-mail address or password.", retries=50)

    recorder = techlog.current()
    assert recorder is not None
    recorder.flush()
    with session_scope() as session:
        rows = json.dumps([row.model_dump(mode="json") for row in session.exec(select(RequestLog)).all()])
    assert '"route": "/studio"' in rows and '"route": "/gallery"' in rows  # the journey was recorded
    # Lines of this test's own harness are not the app's: httpx is the test client (the app quiets httpx,
    # rupali.logs.QUIET) and mail.log is aiosmtpd, the loopback SMTP server standing in for the operator's relay.
    logged = "\n".join(f"{record.name} {record.getMessage()} {record.exc_text or ''}"
                       for record in caplog.records if record.name not in ("httpx", "mail.log"))
    assert "rupali.access" in logged  # and logged
    for marker in (NAME, "Quuxington", EMAIL, "zelda.quux", PASSWORD, "plover-marker", SEARCH):
        assert marker not in logged, f"{marker!r} reached a log line"
        assert marker not in rows, f"{marker!r} reached the technical log"
