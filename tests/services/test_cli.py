"""The ``rupali`` command: real processes, one clear line on every operator mistake, never a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlmodel import select

from rupali.cli import main
from rupali.db import session_scope
from rupali.models import CreditEntry, EntryKind, ErasureRecord, OutboxMessage, Role
from rupali.models import User as Account
from rupali.privacy import erasure
from rupali.services import ledger, users
from tests.utils.factories import make_user


def _rupali(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rupali", *args], input=stdin, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60, check=False)


def _one_clear_line(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr


@pytest.mark.sqlite_only
@pytest.mark.parametrize(("args", "env", "fragment"), [
    (["frobnicate"], {}, "invalid choice: 'frobnicate'"),
    (["serve", "--port", "many"], {}, "invalid int value: 'many'"),
    (["db", "upgrade"], {"RUPALI_DATABASE_URL": "mysql://root@localhost/db"}, "unsupported database 'mysql'"),
    (["db", "upgrade"], {"RUPALI_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}, "cannot use database"),
    (["db", "upgrade"], {"RUPALI_DATA_DIR": "/proc/rupali-cannot-write-here"}, "is not writable"),
    (["serve"], {"RUPALI_ENV": "production"}, "refusing to start in production: RUPALI_PUBLIC_URL"),
    (["serve"], {"PORT": "eighty"}, "PORT Input should be a valid integer"),
    (["jobs", "run", "nope"], {}, "no job named 'nope'"),
])
def test_operator_mistakes_end_in_one_clear_line(args, env, fragment):
    _one_clear_line(_rupali(*args, **env), fragment)


@pytest.mark.sqlite_only
def test_db_upgrade_reports_the_revision(tmp_path):
    result = _rupali("db", "upgrade", RUPALI_DATABASE_URL=f"sqlite:///{tmp_path / 'new.db'}")
    assert result.returncode == 0 and re.search(r"is at revision \d{4} \(head\)", result.stdout)


def test_admin_create_reads_the_password_and_promotes_existing_accounts(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", _Stdin("a very long passphrase\n"))
    assert main(["admin", "create", "--email", "Boss@Example.com", "--name", "The Boss"]) == 0
    assert "created admin boss@example.com" in capsys.readouterr().out
    with session_scope() as session:
        boss = users.by_email(session, "boss@example.com")
        assert boss.role == Role.ADMIN and boss.password_hash.startswith("$argon2id$")
        users.create(session, email="later@example.com", full_name="Later", password="another passphrase")
    assert main(["admin", "create", "--email", "later@example.com"]) == 0
    with session_scope() as session:
        assert users.by_email(session, "later@example.com").role == Role.ADMIN


def test_admin_create_refuses_a_weak_password(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", _Stdin("short\n"))
    assert main(["admin", "create", "--email", "boss@example.com"]) == 1
    assert "at least 10 characters" in capsys.readouterr().err


def test_jobs_run_and_list(capsys):
    assert main(["jobs", "run", "heartbeat"]) == 0
    assert "heartbeat: succeeded — alive" in capsys.readouterr().out
    assert main(["jobs", "list"]) == 0
    listing = capsys.readouterr().out
    assert "heartbeat" in listing and "succeeded" in listing and "apply_retention" in listing


@pytest.mark.sqlite_only
def test_config_check_masks_secrets(monkeypatch, capsys):
    monkeypatch.setenv("RUPALI_STORAGE_SECRET", "a-secret-value-that-is-long-enough-to-use")
    assert main(["config", "check"]) == 0
    out = capsys.readouterr().out
    assert "storage_secret" in out and "a-secret-value" not in out and "configuration OK" in out
    assert "would be refused in production" in out


class _Stdin:
    """A non-interactive standard input, as when a password is piped in."""

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines(keepends=True)

    def isatty(self) -> bool:
        return False

    def readline(self) -> str:
        return self._lines.pop(0) if self._lines else ""


def test_users_erase_schedules_with_the_grace_period_and_now_erases_at_once(capsys):
    member = make_user(email="ada@example.com")
    assert main(["users", "erase", "Ada@Example.com"]) == 0
    out = capsys.readouterr().out
    assert "ada@example.com is scheduled for deletion on" in out
    with session_scope() as session:
        stored = session.get(Account, member.id)
        assert stored.deletion_due_at - stored.deletion_requested_at == timedelta(days=30)
        assert session.exec(select(OutboxMessage.subject)).all() == ["Your account will be deleted"]
    assert main(["users", "erase", "ada@example.com"]) == 1  # already scheduled: said in one line
    assert "already scheduled for deletion" in capsys.readouterr().err
    assert main(["users", "erase", "ada@example.com", "--now"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("erased the account: ") and "user 1" in out and "ada@example.com" not in out
    with session_scope() as session:
        assert session.get(Account, member.id) is None
        [record] = session.exec(select(ErasureRecord)).all()
        assert record.reason == "administrator" and erasure.counts_of(record)["user"] == 1


def test_users_erase_of_an_unknown_address_is_one_clear_line():
    result = _rupali("users", "erase", "nobody@example.com", "--now")
    _one_clear_line(result, "no account has the e-mail address 'nobody@example.com'")


def test_mail_send_queues_opt_in_mail_with_unsubscribe_links_only_to_those_who_opted_in(tmp_path, capsys):
    from rupali.config import get_settings
    from rupali.models import ConsentKind, MailKind
    from rupali.services import preferences

    keen, _quiet = make_user(email="keen@example.com"), make_user(email="quiet@example.com")
    with session_scope() as session:
        preferences.set_preference(session, get_settings(), session.get(Account, keen.id), ConsentKind.PRODUCT_UPDATES,
                                   True, source="test")
    body = tmp_path / "news.txt"
    body.write_text("Styles are here.\n\nTry them in the studio.", encoding="utf-8")
    assert main(["mail", "send", "--topic", "product", "--subject", "New: styles", "--file", str(body)]) == 0
    assert "queued 1 mail(s)" in capsys.readouterr().out
    with session_scope() as session:
        [message] = session.exec(select(OutboxMessage).where(OutboxMessage.kind == MailKind.PRODUCT)).all()
    assert message.recipient == "keen@example.com" and "/unsubscribe?t=" in message.unsubscribe_url
    assert main(["mail", "send", "--topic", "product", "--subject", "x", "--file", str(tmp_path / "none")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_credits_grant_records_the_reason_and_revokes_with_a_negative_number(capsys):
    member = make_user(email="ada@example.com")
    assert main(["credits", "grant", "Ada@Example.com", "25", "--reason", "Workshop \"quota\" \\ week 1"]) == 0
    assert "granted 25 credits to ada@example.com; balance now" in capsys.readouterr().out
    assert main(["credits", "grant", "ada@example.com", "-5", "--reason", "Typo"]) == 0
    assert "revoked 5 credits from ada@example.com" in capsys.readouterr().out
    with session_scope() as session:
        grants = session.exec(select(CreditEntry).where(CreditEntry.user_id == member.id,
                                                        CreditEntry.kind == EntryKind.GRANT)
                              .order_by(CreditEntry.created_at)).all()
        assert [(entry.delta, entry.reference, entry.actor_id) for entry in grants] == [
            (25, 'Workshop "quota" \\ week 1', None), (-5, "Typo", None)]
        assert ledger.ledger_sum(session, member.id) == grants[-1].balance_after
    assert main(["credits", "balance", "ada@example.com"]) == 0
    assert f"ada@example.com: {grants[-1].balance_after} credits" in capsys.readouterr().out


@pytest.mark.sqlite_only
@pytest.mark.parametrize(("args", "fragment"), [
    (["credits", "grant", "nobody@example.com", "5", "--reason", "x"], "no account has the e-mail address"),
    (["credits", "grant", "ada@example.com", "5", "--reason", "  "], "Give a reason"),
    (["credits", "grant", "ada@example.com", "5", "--reason", "bad\x01reason"], "reason"),
    (["credits", "grant", "ada@example.com", "0", "--reason", "nothing"], "between 1 and 10,000,000"),
    (["credits", "grant", "ada@example.com", "-100000", "--reason", "too much"], "Cannot revoke"),
    (["credits", "grant", "ada@example.com", "many", "--reason", "x"], "invalid int value: 'many'"),
    (["credits", "grant", "ada@example.com", "5"], "--reason"),
])
def test_credits_grant_mistakes_are_one_clear_line(args, fragment):
    make_user(email="ada@example.com")
    _one_clear_line(_rupali(*args), fragment)
