"""Data exports ("download my data"): asking for one, building it in the background, handing it to its owner.

A request is a :class:`~rupali.models.DataExport` row (queued) and an ACCESS entry in the request log. The build
(:func:`build`) claims the row with a conditional update, so the worker thread started at once by
:func:`start_soon` and the ``build_exports`` job never build the same export twice. It writes the ZIP
(:mod:`rupali.privacy.export`), marks it ready for :data:`rupali.policy.EXPORT_DAYS` days, closes the ACCESS
request and mails the person.

**Restarts.** Before claiming, a builder records an intent for the export's key in the storage journal and holds
its lock until the build has ended (:mod:`rupali.storage`). A row that is ``running`` while no live process holds
that lock was left by a crash or a restart: the job puts it back in the queue and it is rebuilt from scratch, at
most :data:`MAX_ATTEMPTS` times in all; then it is failed with a message. The interruptions are counted in the row's
``error`` text (the model has no column for them), which is cleared when the export is ready.

**One per day.** A person may ask once per :data:`MIN_INTERVAL`; a failed export, or a ready one whose file is
gone, does not count.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlmodel import Session, col, select, update
from starlette.responses import Response, StreamingResponse

from rupali import mail_templates
from rupali.clock import now
from rupali.config import Settings
from rupali.db import session_scope
from rupali.errors import reference_for
from rupali.models import DataExport, ExportStatus, MailKind, RequestKind, User
from rupali.policy import EXPORT_DAYS
from rupali.privacy import export as archive
from rupali.services import mail, privacy_requests, users
from rupali.storage import TEMPORARY_PREFIX, InvalidKey, LocalStorage, MediaStorage
from rupali.storage import from_settings as storage_from_settings

log = logging.getLogger(__name__)

MIN_INTERVAL = timedelta(hours=24)
VALID_FOR = timedelta(days=EXPORT_DAYS)
MAX_ATTEMPTS = 3  # builds of one export, the first included; after that an interrupted export is failed
PROGRESS_SECONDS = 0.5  # at most this often is progress written to the database
CONCURRENT_BUILDS = 2  # builds started by start_soon that run at once (the rest wait for a slot)
PRIVACY_PATH = "/privacy"
_INTERRUPTED = re.compile(r"^Interrupted (\d+) times?\b")


class ExportError(ValueError):
    """An export cannot be requested now; the message says why and when, for the person."""

    def __init__(self, message: str, *, retry_at: datetime | None = None) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class Unavailable(StrEnum):
    """Why an export cannot be downloaded."""

    NOT_FOUND = "not_found"  # no such export, or someone else's
    NOT_READY = "not_ready"  # queued, running or failed
    GONE = "gone"  # expired, or its file is no longer in storage


@dataclass(frozen=True)
class Download:
    """A ready export's file, opened for a response to stream."""

    chunks: Iterator[bytes]
    filename: str
    size: int


def response(found: Download) -> Response:
    """The download as a streamed ZIP attachment, whatever the media backend."""
    return StreamingResponse(found.chunks, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{found.filename}"', "Content-Length": str(found.size),
        "Cache-Control": "private, no-store"})


def storage_key(user_id: uuid.UUID, export_id: uuid.UUID) -> str:
    return f"exports/{user_id.hex}/{export_id.hex}.zip"


# --- asking and looking --------------------------------------------------------------------------------------------

def request_export(session: Session, settings: Settings, user: User) -> DataExport:
    """Queue an export of everything about ``user`` and log the ACCESS request; raises :class:`ExportError` when
    the person already asked within :data:`MIN_INTERVAL`. Start the build with :func:`start_soon` after commit."""
    # The file checks first, without the turn: on a bucket they are network requests, which must not hold the lock.
    excused: set[uuid.UUID] = set()
    retry_at = next_allowed(session, user, excused=excused)
    if retry_at is None:
        users.take_turn(session, user.id)  # two clicks at once make one export: the second sees the first's row
        retry_at = _next_allowed_by_rows(session, user, excused)
    if retry_at is not None:
        raise ExportError(f"You asked for a copy of your data less than 24 hours ago. You can ask for the next one "
                          f"from {retry_at:%Y-%m-%d %H:%M} UTC; until then, download the one you have.",
                          retry_at=retry_at)
    privacy_requests.log(session, settings, kind=RequestKind.ACCESS, user_id=user.id)
    export = DataExport(user_id=user.id, requested_at=now())
    session.add(export)
    session.flush()
    return _typed(export)


def next_allowed(session: Session, user: User, *, excused: set[uuid.UUID] | None = None) -> datetime | None:
    """When the person may ask for the next export, or None when they may ask now. The recent exports that do not
    count (ready, but their file is gone) are added to ``excused``."""
    storage = None
    for export in _recent(session, user):
        if export.status == ExportStatus.READY:
            storage = storage or _storage()
            if not _file_present(storage, export):
                if excused is not None:
                    excused.add(export.id)
                continue  # its file is gone: that is no reason to make the person wait
        return export.requested_at + MIN_INTERVAL
    return None


def _next_allowed_by_rows(session: Session, user: User, excused: set[uuid.UUID]) -> datetime | None:
    """:func:`next_allowed` for what was recorded since it looked (rows only: a file cannot appear meanwhile)."""
    recent = [export for export in _recent(session, user) if export.id not in excused]
    return recent[0].requested_at + MIN_INTERVAL if recent else None


def _recent(session: Session, user: User) -> Sequence[DataExport]:
    """The person's exports asked for within :data:`MIN_INTERVAL` that did not fail, newest first."""
    return session.exec(select(DataExport).where(
        DataExport.user_id == user.id, col(DataExport.requested_at) > now() - MIN_INTERVAL,
        DataExport.status != ExportStatus.FAILED).order_by(col(DataExport.requested_at).desc())).all()


def latest(session: Session, user: User) -> DataExport | None:
    """The person's most recent export. A ready one past its expiry or without its file is reported as expired
    (the returned row is detached, so that report is not written back; the retention job deletes it)."""
    export = session.exec(select(DataExport).where(DataExport.user_id == user.id)
                          .order_by(col(DataExport.requested_at).desc()).limit(1)).first()
    return _reported(session, export)


def for_owner(session: Session, user: User, export_id: object) -> DataExport | None:
    """The export ``export_id`` if it is the person's; None for someone else's, an unknown or a malformed id."""
    try:
        parsed = export_id if isinstance(export_id, uuid.UUID) else uuid.UUID(str(export_id))
    except ValueError:
        return None
    export = session.get(DataExport, parsed)
    if export is None or export.user_id != user.id:
        return None
    return _reported(session, export)


def download(session: Session, user: User, export_id: object, storage: MediaStorage | None = None
             ) -> Download | Unavailable:
    """The file of the person's ready export, or why there is none (others' exports are simply not found)."""
    export = for_owner(session, user, export_id)
    if export is None:
        return Unavailable.NOT_FOUND
    if export.status == ExportStatus.EXPIRED:
        return Unavailable.GONE
    if export.status != ExportStatus.READY or not export.storage_key:
        return Unavailable.NOT_READY
    storage = storage or _storage()
    try:
        size = storage.size(export.storage_key)
        chunks = storage.stream(export.storage_key)
    except (OSError, InvalidKey):
        return Unavailable.GONE
    return Download(chunks, archive.archive_name(export.finished_at), size)


def _reported(session: Session, export: DataExport | None) -> DataExport | None:
    if export is None:
        return None
    export = _typed(export)
    if export.status == ExportStatus.READY and (
            (export.expires_at is not None and export.expires_at <= now()) or not _file_present(_storage(), export)):
        session.expunge(export)
        export.status = ExportStatus.EXPIRED
    return export


def _typed(export: DataExport) -> DataExport:
    # The column holds a plain string; callers compare with the enum, ``is`` included. Equal values: no UPDATE.
    export.status = ExportStatus(export.status)
    return export


def _file_present(storage: MediaStorage, export: DataExport) -> bool:
    try:
        return bool(export.storage_key) and storage.exists(export.storage_key)  # type: ignore[arg-type]
    except InvalidKey:
        return False


def _storage() -> MediaStorage:
    from rupali.config import get_settings

    return storage_from_settings(get_settings())


# --- building ------------------------------------------------------------------------------------------------------

_slots = threading.BoundedSemaphore(CONCURRENT_BUILDS)


def start_soon(settings: Settings, export_id: uuid.UUID) -> threading.Thread:
    """Build the export in a worker thread now, so nobody waits for the job's interval; returns at once.

    Call it after the request's transaction has committed. Should the process stop meanwhile, the
    ``build_exports`` job picks the export up again.
    """
    def work() -> None:
        with _slots:
            try:
                build(settings, export_id)
            except Exception:  # build records its own failures; this is the last line for the unexpected
                log.exception("data export %s: the build thread failed", export_id)

    thread = threading.Thread(target=work, name=f"export-{export_id.hex[:8]}", daemon=True)
    thread.start()
    return thread


def build(settings: Settings, export_id: uuid.UUID) -> bool:
    """Build a queued export now (in this thread); False when it is not queued (built, or claimed elsewhere).

    Opens short sessions of its own. On failure the export is marked failed with a short text and a reference
    to the log, and no file stays behind.
    """
    storage = storage_from_settings(settings)
    with session_scope(settings) as session:
        export = session.get(DataExport, export_id)
        if export is None or export.status != ExportStatus.QUEUED:
            return False
        user_id = export.user_id
    key = storage_key(user_id, export_id)
    # Held until the build has ended: while it is, no job takes this export for abandoned.
    intent = storage.intend([key])
    try:
        if not _claim(settings, export_id, key):
            return False
        _clear_temporaries(storage, key)  # what an interrupted build of this export left half-written
        try:
            result = archive.write_archive(settings, storage, user_id, key,
                                           progress=_ProgressWriter(settings, export_id))
        except Exception as exc:
            reference = reference_for(exc, f"data export {export_id}")
            _fail(settings, storage, export_id, key, "The download could not be built. Please ask again; if it "
                                                     f"fails again, tell the operator this reference: {reference}.")
            return True
        _finish(settings, storage, export_id, key, result)
        return True
    finally:
        intent.forget()  # never rollback: that would delete the file of a finished export


def build_pending(settings: Settings) -> str:
    """The ``build_exports`` job: requeue exports a crash left running (or fail them after :data:`MAX_ATTEMPTS`),
    then build every queued one, oldest first. Returns a one-line summary."""
    storage = storage_from_settings(settings)
    requeued, failed = _recover(settings, storage)
    with session_scope(settings) as session:
        queued = session.exec(select(DataExport.id).where(DataExport.status == ExportStatus.QUEUED)
                              .order_by(col(DataExport.requested_at))).all()
    built = sum(build(settings, export_id) for export_id in queued)
    return f"built {built}, restarted {requeued}, failed after interruptions {failed}"


def _claim(settings: Settings, export_id: uuid.UUID, key: str) -> bool:
    with session_scope(settings) as session:
        result = session.exec(update(DataExport).where(  # type: ignore[call-overload]
            col(DataExport.id) == export_id, col(DataExport.status) == ExportStatus.QUEUED,
        ).values(status=ExportStatus.RUNNING, started_at=now(), progress=0.0, storage_key=key))
        return bool(result.rowcount == 1)


def _recover(settings: Settings, storage: MediaStorage) -> tuple[int, int]:
    """Exports left running by a process that is gone: back to the queue, or failed after too many attempts."""
    with session_scope(settings) as session:
        running = session.exec(select(DataExport).where(DataExport.status == ExportStatus.RUNNING)).all()
    if not running:
        return 0, 0
    abandoned, live = storage.abandoned_intents()
    for intent in abandoned:
        intent.release()  # not ours to resolve: the media sweep does that
    requeued = failed = 0
    for export in running:
        if export.storage_key in live:
            continue  # its builder is alive (in this process or another)
        attempts = _attempts(export.error) + 1  # the interrupted one
        with session_scope(settings) as session:
            # Only if nobody has touched it since it was read (its builder finishing, another job recovering it).
            unchanged = (col(DataExport.id) == export.id, col(DataExport.status) == ExportStatus.RUNNING,
                         col(DataExport.started_at) == export.started_at)
            if attempts >= MAX_ATTEMPTS:
                result = session.exec(update(DataExport).where(*unchanged).values(  # type: ignore[call-overload]
                    status=ExportStatus.FAILED, finished_at=now(), storage_key=None, progress=0.0,
                    error=f"The download was interrupted {attempts} times and has been given up. Please ask again "
                          "later; if it keeps failing, tell the operator."))
                if result.rowcount == 1:
                    failed += 1
                    _delete(storage, export.storage_key)
            else:
                result = session.exec(update(DataExport).where(*unchanged).values(  # type: ignore[call-overload]
                    status=ExportStatus.QUEUED, started_at=None, progress=0.0,
                    error=f"Interrupted {attempts} time{'s' if attempts > 1 else ''} by a restart; building again."))
                requeued += result.rowcount == 1
    if failed or requeued:
        log.warning("data exports: %d interrupted builds restarted, %d given up", requeued, failed)
    return requeued, failed


def _attempts(error: str) -> int:
    """How many builds of an export were interrupted so far (counted in its error text while it is not done)."""
    match = _INTERRUPTED.match(error or "")
    return int(match.group(1)) if match else 0


class _ProgressWriter:
    """Writes the fraction done to the row, at most every :data:`PROGRESS_SECONDS` (the page polls it)."""

    def __init__(self, settings: Settings, export_id: uuid.UUID) -> None:
        self.settings, self.export_id = settings, export_id
        self.last = time.monotonic()
        self.written = 0.0

    def __call__(self, fraction: float) -> None:
        moment = time.monotonic()
        if moment - self.last < PROGRESS_SECONDS or fraction - self.written < 0.005:
            return
        self.last, self.written = moment, fraction
        with session_scope(self.settings) as session:
            session.exec(update(DataExport).where(  # type: ignore[call-overload]
                col(DataExport.id) == self.export_id, col(DataExport.status) == ExportStatus.RUNNING,
            ).values(progress=round(min(fraction, 0.99), 4)))


def _finish(settings: Settings, storage: MediaStorage, export_id: uuid.UUID, key: str,
            result: archive.ArchiveResult) -> None:
    finished = now()
    expires = finished + VALID_FOR
    with session_scope(settings) as session:
        export = session.get(DataExport, export_id)
        user = session.get(User, export.user_id) if export is not None else None
        if export is None or user is None or export.status != ExportStatus.RUNNING:
            # Erased meanwhile (the account, or this export): the file must not outlive its row.
            _delete(storage, key)
            return
        export.status, export.progress, export.error = ExportStatus.READY, 1.0, ""
        export.finished_at, export.expires_at = finished, expires
        export.bytes, export.files, export.storage_key = result.bytes, result.files, key
        session.add(export)
        privacy_requests.close_open(
            session, user.id, RequestKind.ACCESS,
            outcome=f"Copy of the data provided as a download ({result.files} files), available until "
                    f"{expires:%Y-%m-%d %H:%M} UTC.")
        mail.enqueue(session, to=user.email, user_id=user.id, kind=MailKind.TRANSACTIONAL,
                     mail=mail_templates.export_ready(user.full_name, settings.public_url.rstrip("/") + PRIVACY_PATH,
                                                      f"{expires:%Y-%m-%d %H:%M} UTC"))
    log.info("data export %s ready: %d files, %d bytes", export_id, result.files, result.bytes)


def _fail(settings: Settings, storage: MediaStorage, export_id: uuid.UUID, key: str, message: str) -> None:
    _delete(storage, key)
    with session_scope(settings) as session:
        session.exec(update(DataExport).where(col(DataExport.id) == export_id).values(  # type: ignore[call-overload]
            status=ExportStatus.FAILED, finished_at=now(), storage_key=None, progress=0.0, error=message[:500]))


def _delete(storage: MediaStorage, key: str | None) -> None:
    if not key:
        return
    try:
        storage.delete(key)
    except (OSError, InvalidKey):
        log.exception("data export: could not delete %s; the media sweep will", key)
    _clear_temporaries(storage, key)


def _clear_temporaries(storage: MediaStorage, key: str) -> None:
    """Delete the ``.tmp-`` files beside ``key``: only its claimed builder writes them, so they are leftovers.

    Only a local folder has them: an object store writes an object whole or not at all."""
    if not isinstance(storage, LocalStorage):
        return
    try:
        target = storage.path(key)
        leftovers = list(target.parent.glob(f"{TEMPORARY_PREFIX}{target.name}.*"))
    except (OSError, InvalidKey):
        return
    for path in leftovers:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            log.warning("data export: could not delete the leftover %s; the media sweep will", path.name)
