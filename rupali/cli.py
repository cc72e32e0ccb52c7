"""The ``rupali`` command: serve, migrate, create admins, erase accounts, run jobs, send opt-in mail, check settings
and what the app depends on (``doctor``).

Every failure an operator can cause (bad arguments, a malformed database URL, an unwritable data directory, an
unreachable database) ends in one clear line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from rupali import __version__, doctor, jobs, logs, migrate, provenance
from rupali.clock import now
from rupali.config import ConfigError, Settings, ensure_data_dir, get_settings, masked, reset_settings
from rupali.db import database_reachable, get_engine, session_scope
from rupali.imaging import InvalidImage
from rupali.models import RequestSource, User
from rupali.privacy import erasure, retention
from rupali.services import deletion, ledger, users
from rupali.storage import from_settings as storage_from_settings

EXIT_FAILURE = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A failure to report in one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line instead of argparse's usage block; `--help` still shows everything.
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rupali`` console script."""
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = getattr(args, "handler", _serve)
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"rupali: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CliError as exc:
        print(f"rupali: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("rupali: interrupted", file=sys.stderr)
        return 130


def _parser() -> _Parser:
    parser = _Parser(prog="rupali", description="Rupali, the self-hostable AI image studio.")
    parser.add_argument("--version", action="version", version=f"rupali {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)

    serve = commands.add_parser("serve", help="apply migrations and serve the app (the default)")
    serve.add_argument("--host", help="interface to listen on (default: RUPALI_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: PORT, RUPALI_PORT or 8080)")
    serve.set_defaults(handler=_serve)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser, required=True)
    db_commands.add_parser("upgrade", help="apply pending migrations").set_defaults(handler=_db_upgrade)

    admin = commands.add_parser("admin", help="administrator accounts")
    admin_commands = admin.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser, required=True)
    create = admin_commands.add_parser("create", help="create an admin account (asks for the password)")
    create.add_argument("--email", required=True, help="the admin's e-mail address")
    create.add_argument("--name", default="Administrator", help="the admin's full name")
    create.set_defaults(handler=_admin_create)

    user = commands.add_parser("users", help="accounts")
    user_commands = user.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser, required=True)
    erase = user_commands.add_parser(
        "erase", help="delete an account after the grace period (RUPALI_RETENTION_ACCOUNT_GRACE_DAYS), or at once")
    erase.add_argument("email", metavar="EMAIL", help="the account's e-mail address")
    erase.add_argument("--now", action="store_true",
                       help="erase at once, skipping the grace period (e.g. the account of a person under 18)")
    erase.set_defaults(handler=_users_erase)

    credit = commands.add_parser("credits", help="credit balances")
    credit_commands = credit.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser, required=True)
    give = credit_commands.add_parser("grant", help="grant credits to an account (a negative number revokes them)")
    give.add_argument("email", metavar="EMAIL", help="the account's e-mail address")
    give.add_argument("amount", metavar="N", type=int, help="credits to grant; negative to revoke")
    give.add_argument("--reason", required=True, help="why: recorded in the person's credit history")
    give.set_defaults(handler=_credits_grant)
    show = credit_commands.add_parser("balance", help="show an account's balance")
    show.add_argument("email", metavar="EMAIL", help="the account's e-mail address")
    show.set_defaults(handler=_credits_balance)

    job = commands.add_parser("jobs", help="scheduled jobs")
    job_commands = job.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser, required=True)
    job_commands.add_parser("list", help="list jobs and their last run").set_defaults(handler=_jobs_list)
    run = job_commands.add_parser("run", help="run a job now")
    run.add_argument("name", help="job name (see `rupali jobs list`)")
    run.add_argument("--dry-run", action="store_true",
                     help="apply_retention only: print what would be deleted, per table, and delete nothing")
    run.set_defaults(handler=_jobs_run)

    mailing = commands.add_parser("mail", help="opt-in mail")
    mail_commands = mailing.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser, required=True)
    send = mail_commands.add_parser(
        "send", help="queue a product-update or marketing mail to everyone who opted in (with one-click unsubscribe)")
    send.add_argument("--topic", choices=("product", "marketing"), required=True, help="which opt-in list")
    send.add_argument("--subject", required=True, help="the subject line")
    send.add_argument("--file", required=True, metavar="PATH", help="plain-text body (paragraphs split by blank lines)")
    send.set_defaults(handler=_mail_send)

    config = commands.add_parser("config", help="configuration")
    config_commands = config.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser, required=True)
    config_commands.add_parser("check", help="show effective settings (secrets masked)").set_defaults(
        handler=_config_check)

    picture = commands.add_parser("image", help="images")
    picture_commands = picture.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser,
                                              required=True)
    inspect = picture_commands.add_parser(
        "inspect", help="check a file's Content Credentials and digital source type (exit 0 only when intact)")
    inspect.add_argument("file", type=Path, help="a PNG, JPEG or WebP")
    inspect.add_argument("--json", action="store_true", help="print the result as JSON")
    inspect.set_defaults(handler=_image_inspect)

    media = commands.add_parser("storage", help="media storage")
    media_commands = media.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser, required=True)
    move = media_commands.add_parser(
        "migrate", help="copy the local media folder into the configured S3 bucket (resumable, verified)")
    move.add_argument("--to", choices=["s3"], required=True, help="the backend to copy to")
    move.add_argument("--dry-run", action="store_true", help="list what would be copied and skipped; copy nothing")
    move.set_defaults(handler=_storage_migrate)

    checkup = commands.add_parser(
        "doctor", help="check settings, database, storage, SMTP and each image service; one line each")
    checkup.add_argument("--timeout", type=float, default=doctor.NETWORK_TIMEOUT, metavar="SECONDS",
                         help=f"how long each network check may take (default {doctor.NETWORK_TIMEOUT:g})")
    checkup.set_defaults(handler=_doctor)
    return parser


# --- commands ------------------------------------------------------------------------------------------------------

def _serve(args: argparse.Namespace) -> int:
    # Flags win over the environment. Putting them there keeps one source of truth: every later get_settings(),
    # including the public URL derived from host and port in development, sees the address really served.
    host, port = getattr(args, "host", None), getattr(args, "port", None)
    if port is not None and not 1 <= port <= 65535:
        raise CliError(f"port {port} is out of range (1-65535)")
    if host:
        os.environ["RUPALI_HOST"] = host
    if port is not None:
        os.environ["RUPALI_PORT"] = str(port)
    reset_settings()
    settings = _settings(server=True)
    host, port = settings.host, settings.port
    ensure_data_dir(settings)
    # NiceGUI reads its storage location when first imported: keep it inside the data directory.
    os.environ.setdefault("NICEGUI_STORAGE_PATH", str((settings.data_dir / "sessions").resolve()))
    from rupali import web  # the web stack loads only for the command that needs it

    with _database(settings):
        web.prepare(settings)
    logging.getLogger("rupali").info("Rupali %s listening on http://%s:%s", __version__, host, port)
    web.serve(settings, host=host, port=port)
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    settings = _settings()
    engine = get_engine(settings)
    with _database(settings):
        migrate.upgrade(engine)
        revision = migrate.current_revision(engine)
    print(f"database {_shown_url(settings)} is at revision {revision} (head)")
    return 0


def _admin_create(args: argparse.Namespace) -> int:
    settings = _settings()
    with _database(settings):
        migrate.upgrade(get_engine(settings))
        with session_scope(settings) as session:
            existing = users.by_email(session, args.email)
            if existing is not None:
                users.make_admin(session, existing)
                print(f"{existing.email} already had an account; it is now an admin")
                return 0
        password = _ask_password()
        try:
            with session_scope(settings) as session:
                user = users.create(session, email=args.email, full_name=args.name, password=password,
                                    role=users.Role.ADMIN)
                # The operator vouches for the admin they create: no verification mail, no age gate.
                user.email_verified_at = user.age_confirmed_at = now()
        except users.InvalidAccount as exc:
            raise CliError(str(exc)) from None
    print(f"created admin {user.email}")
    return 0


def _users_erase(args: argparse.Namespace) -> int:
    settings = _settings()
    with _database(settings):
        migrate.upgrade(get_engine(settings))
        with session_scope(settings) as session:
            user = _account(session, args.email)
            try:
                if args.now:
                    record = deletion.erase_now(session, settings, storage_from_settings(settings), user)
                else:
                    user = deletion.schedule_deletion(session, settings, user, source=RequestSource.ADMIN)
            except deletion.DeletionError as exc:
                raise CliError(str(exc)) from None
    if args.now:
        counts = ", ".join(f"{table} {count}" for table, count in erasure.counts_of(record).items())
        print(f"erased the account: {counts}")
    else:
        print(f"{user.email} is scheduled for deletion on {user.deletion_due_at:%Y-%m-%d %H:%M} UTC; the person was "
              "mailed a link to cancel it (use --now to erase at once)")
    return 0


def _account(session: Session, email: str) -> User:
    """The account with ``email``, or one clear line saying there is none."""
    user = users.by_email(session, email)
    if user is None:
        raise CliError(f"no account has the e-mail address {email.strip()!r}")
    return user


def _credits_grant(args: argparse.Namespace) -> int:
    settings = _settings()
    with _database(settings):
        migrate.upgrade(get_engine(settings))
        with session_scope(settings) as session:
            user = _account(session, args.email)
            try:
                entry = ledger.grant(session, settings, user, args.amount, reason=args.reason, actor=None)
            except ledger.LedgerError as exc:
                raise CliError(str(exc)) from None
            email, balance = user.email, entry.balance_after
    done = "granted" if args.amount > 0 else "revoked"
    print(f"{done} {abs(args.amount)} credits {'to' if args.amount > 0 else 'from'} {email}; balance now {balance}")
    return 0


def _credits_balance(args: argparse.Namespace) -> int:
    settings = _settings()
    with _database(settings):
        migrate.upgrade(get_engine(settings))
        with session_scope(settings) as session:
            user = _account(session, args.email)
            balance, email = ledger.balance(session, settings, user.id), user.email
    print(f"{email}: {balance} credits")
    return 0


def _image_inspect(args: argparse.Namespace) -> int:
    settings = _settings()
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.file} ({exc.strerror or exc})") from None
    try:
        found = provenance.examine(provenance.Verifier.from_settings(settings), data,
                                   max_bytes=settings.upload_max_mb * 1024 * 1024,
                                   max_pixels=settings.upload_max_megapixels * 1_000_000)
    except InvalidImage as exc:
        raise CliError(f"{args.file}: {exc}") from None
    public = found.public()
    if args.json:
        print(json.dumps(public, indent=2, ensure_ascii=False))
    else:
        print(found.verdict())
        for key, value in public.items():
            if key != "verdict" and value not in (None, [], ""):
                print(f"  {key.replace('_', ' ')}: {'; '.join(value) if isinstance(value, list) else value}")
    return 0 if found.has_credentials and found.intact else 1


def _jobs_list(args: argparse.Namespace) -> int:
    settings = _settings()
    with _database(settings):
        migrate.upgrade(get_engine(settings))
        with session_scope(settings) as session:
            latest = jobs.last_runs(session)
    print(f"{'JOB':<24} {'EVERY':<10} {'LAST RUN':<22} {'STATUS':<10} DETAIL")
    for job in jobs.JOBS.values():
        record = latest.get(job.name)
        when = f"{record.started_at:%Y-%m-%d %H:%M:%S}Z" if record else "never"
        status = record.status if record else ""
        detail = record.detail if record else job.description
        print(f"{job.name:<24} {_every(job.interval(settings).total_seconds()):<10} {when:<22} {status:<10} {detail}")
    return 0


def _jobs_run(args: argparse.Namespace) -> int:
    settings = _settings()
    try:
        jobs.get(args.name)
    except jobs.UnknownJob as exc:
        raise CliError(exc.args[0]) from None
    if args.dry_run:
        return _retention_dry_run(args.name, settings)
    with _database(settings):
        migrate.upgrade(get_engine(settings))
        record = jobs.run(args.name, settings=settings)
    print(f"{record.job}: {record.status} — {record.detail}")
    return 0 if record.status == jobs.JobRunStatus.SUCCEEDED else EXIT_FAILURE


def _retention_dry_run(name: str, settings: Settings) -> int:
    """What ``apply_retention`` would delete now, per table; nothing is deleted and no run is recorded."""
    if name != retention.LOCK_NAME:
        raise CliError(f"--dry-run only applies to {retention.LOCK_NAME} ({name} has no dry run)")
    with _database(settings):
        migrate.upgrade(get_engine(settings))
        report = retention.apply(settings, storage_from_settings(settings), dry_run=True)
    width = max(len(outcome.name) for outcome in report.outcomes)
    print(f"{name} (dry run): nothing was deleted; a run now would delete")
    print(f"{'TABLE':<{width}}  {'ROWS':>9}  {'FILES':>7}  RULE")
    for outcome in report.outcomes:
        print(f"{outcome.name:<{width}}  {outcome.rows:>9}  {outcome.files:>7}  {outcome.rule}")
    print(f"{'total':<{width}}  {sum(report.counts().values()):>9}  {report.files:>7}")
    return 0


def _mail_send(args: argparse.Namespace) -> int:
    from rupali.models import MailKind
    from rupali.services import preferences
    from rupali.text import InvalidText, clean

    try:
        body = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {args.file}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        subject = clean(args.subject, field="subject", label="The subject", max_length=200)
        body = clean(body, field="body", label="The text", max_length=20_000, multiline=True)
    except InvalidText as exc:
        raise CliError(str(exc)) from None
    if not subject or not body:
        raise CliError("the subject and the text must not be empty")
    settings = _settings()
    with _database(settings):
        migrate.upgrade(get_engine(settings))
        with session_scope(settings) as session:
            count = preferences.enqueue_newsletter(session, settings, MailKind(args.topic), subject=subject,
                                                   text=body)
    print(f"queued {count} mail(s) to the people who opted in to {args.topic} mail; the deliver_mail job sends them")
    return 0


def _config_check(args: argparse.Namespace) -> int:
    settings = _settings()
    width = max(len(name) for name in Settings.model_fields)
    for name, value in masked(settings).items():
        print(f"{name:<{width}}  {value}")
    problems = []
    try:
        ensure_data_dir(settings)
    except ConfigError as exc:
        problems.append(str(exc))
    if not database_reachable(settings):
        problems.append(f"database {_shown_url(settings)} is not reachable")
    if not settings.is_production and (unsafe := settings.production_problems()):
        print("\nwould be refused in production: " + "; ".join(unsafe))
    if problems:
        print("\nproblems: " + "; ".join(problems))
        return EXIT_FAILURE
    print("\nconfiguration OK")
    return 0


def _storage_migrate(args: argparse.Namespace) -> int:
    from rupali import media_migrate
    from rupali.storage import LocalStorage
    from rupali.storage_s3 import S3Storage

    settings = _settings()
    if not (settings.s3_bucket and settings.s3_access_key_id and settings.s3_secret_access_key):
        raise CliError("set RUPALI_S3_BUCKET, RUPALI_S3_ACCESS_KEY_ID and RUPALI_S3_SECRET_ACCESS_KEY (and "
                       "RUPALI_S3_ENDPOINT_URL unless the bucket is on AWS) to migrate")
    source = LocalStorage(settings.effective_media_dir)
    if not source.root.is_dir():
        raise CliError(f"no media folder at {source.root}")
    target = S3Storage.from_settings(settings)
    print(f"{'dry run: ' if args.dry_run else ''}{source.describe()} -> {target.describe()}")
    report = media_migrate.migrate(source, target, dry_run=args.dry_run, say=print)
    print(report.summary())
    if report.failed:
        print("rupali: not copied: " + ", ".join(sorted(report.failed)), file=sys.stderr)
        return EXIT_FAILURE
    if not args.dry_run and settings.media_backend != "s3":
        print("every file is in the bucket; set RUPALI_MEDIA_BACKEND=s3 and restart to use it")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    # Settings are one of the checks: a broken configuration is a FAIL line like any other, not a usage error.
    if not 0 < args.timeout <= 300:
        raise CliError(f"--timeout {args.timeout:g} is out of range (more than 0, at most 300 seconds)")
    checks = doctor.run(timeout=args.timeout)
    for line in doctor.lines(checks):
        print(line)
    return EXIT_FAILURE if doctor.failed(checks) else 0


# --- helpers -------------------------------------------------------------------------------------------------------

def _settings(*, server: bool = False) -> Settings:
    settings = get_settings()
    # The server logs to stdout, where Railway and log shippers read; other commands keep stdout for their answer.
    logs.configure(settings, sys.stdout if server else sys.stderr)
    return settings


@contextmanager
def _database(settings: Settings) -> Iterator[None]:
    """Turn database failures into one line naming the (password-masked) URL."""
    try:
        yield
    except DBAPIError as exc:
        lines = str(exc.orig).strip().splitlines()
        reason = lines[0] if lines else type(exc.orig).__name__
        raise CliError(f"cannot use database {_shown_url(settings)}: {reason}") from None


def _shown_url(settings: Settings) -> str:
    return make_url(settings.effective_database_url).render_as_string(hide_password=True)


def _ask_password() -> str:
    if not sys.stdin.isatty():  # scripted use: the password arrives on standard input
        password = sys.stdin.readline().rstrip("\n")
        if not password:
            raise CliError("no password on standard input")
        return password
    password = getpass.getpass("Password: ")
    if password != getpass.getpass("Repeat password: "):
        raise CliError("the passwords do not match")
    return password


def _every(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{int(seconds)}s"
