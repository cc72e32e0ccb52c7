"""The "download my data" archive: everything the personal-data inventory ties to one account, in one ZIP.

What goes in is decided by the inventory alone, so a table added later is exported as soon as it declares itself:

* ``data/<table>.json`` for every declaration with ``export=True`` and a :attr:`~Subject.USER` subject: the
  person's rows (``subject_column == user.id``), every column, as a list of objects; and ``data/<table>.csv`` with
  the same rows when every column is a plain scalar. Rows about anonymous browsers (``Subject.VISITOR``) are not
  linked to the account, so they are not the person's to download.
* Every file the exported rows name through their declaration's ``file_columns``: image originals (PNGs carry the
  A1111 ``parameters`` text exactly as downloads do; when the person chose downloads without it, or the format
  cannot carry it, it is a ``.txt`` beside the image), uploads, the profile picture. Thumbnails are copies made
  from the originals and are left out (:data:`DERIVED_FILES`).
* ``receipts/<name>.pdf``: the receipt of each of the person's credit orders that has one
  (:func:`rupali.receipts.has_receipt`), made from the order as it is when the archive is built, exactly as the
  billing page's download gives it.
* ``README.txt`` last, describing every file and every field, derived from the declarations' ``holds`` texts and
  the columns' names, types and allowed values.

**Secrets never leave** (:func:`is_secret`): a column named ``password``, ``secret`` or ``token``, or ending in
``_hash``, ``_secret`` or ``_token`` (today: the password hash and the hashes of session tokens, sign-in handoff
codes, API keys and mailed one-time tokens) is left out of every table, exported or not. One-time codes inside
links to Rupali itself (``token``, ``code``, ``t``, ... query parameters, as in the password-reset mails kept in the
outbox) are replaced by ``removed`` (:func:`redact_links`): an export, which an API key may request, must not be a
way to take over the account.

The archive is streamed with zipstream-ng into a temporary file beside its key and renamed into place, so memory
holds one file at a time and the key never names half an archive. Each table is read in a short session of its
own, in batches.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import enum
import io
import json
import re
import textwrap
import typing
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as clock_time
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import ARRAY, JSON, Column, Table, TypeDecorator, func, select
from sqlmodel import Session
from zipstream import ZipStream

from rupali import media, receipts
from rupali.clock import as_utc, now
from rupali.config import Settings
from rupali.db import session_scope
from rupali.models import CreditOrder, Generation, Image, User
from rupali.privacy import inventory
from rupali.privacy.inventory import InventoryEntry, Subject
from rupali.storage import InvalidKey, MediaStorage

README = "README.txt"
BATCH = 500  # rows per database round trip
_CHUNK = 256 * 1024  # bytes of JSON or CSV handed to the ZIP at a time
# Copies derived from another file of the same row: the original is exported instead (for a PNG, the signed copy
# with or without its prompt, as the person's download setting says).
DERIVED_FILES = frozenset({("image", "thumbnail_key"), ("image", "plain_key")})
# Where a table's files go in the archive (others: ``files/<table>/``).
FOLDERS = {"image": "images", "upload": "uploads", "user": "profile"}
RECEIPTS = "receipts"  # the folder of the receipts of credit orders
_SECRET_NAMES = frozenset({"password", "secret", "token"})
_SECRET_SUFFIXES = ("_hash", "_secret", "_token")
SECRET_RULE = ("a field named password, secret or token, or whose name ends in _hash, _secret or _token, is never "  # noqa: S105
               "included")
# Query parameters that carry one-time codes or signatures in the links Rupali mails.
_SECRET_PARAMETERS = frozenset({"token", "t", "code", "key", "secret", "sig", "signature"})
_LINK = re.compile(r"https?://[^\s<>\"']+")
_PARAMETER = re.compile(r"(?P<lead>[?&;](?:amp;)?)(?P<name>[A-Za-z_]+)=(?P<value>[^&#\s<>\"']*)")
REMOVED = "removed"

Progress = Callable[[float], None]


def is_secret(column: str) -> bool:
    """Whether a column holds a secret (or its hash) that an export must never contain."""
    name = column.lower()
    return name in _SECRET_NAMES or name.endswith(_SECRET_SUFFIXES)


def redact_links(text: str, site: str) -> str:
    """``text`` with the one-time codes in its links to ``site`` (Rupali's public address) replaced by
    ``removed``, the rest of each link kept. Links elsewhere (in a prompt, say) are the person's own words."""
    site = site.rstrip("/")
    if not site or site not in text:
        return text

    def parameters(match: re.Match[str]) -> str:
        link = match[0]
        if not (link == site or link.startswith((site + "/", site + "?"))):
            return link
        return _PARAMETER.sub(lambda p: f"{p['lead']}{p['name']}={REMOVED}"
                              if p["name"].lower() in _SECRET_PARAMETERS and p["value"] else p[0], link)

    return _LINK.sub(parameters, text)


def exported_entries() -> list[InventoryEntry]:
    """The inventory's tables that go into a person's export: ``export=True`` and about an account holder."""
    return [entry for entry in inventory.entries()
            if entry.declaration.export and entry.declaration.subject is Subject.USER]


@dataclass(frozen=True)
class ArchiveResult:
    """What was written: the archive's size, the number of files in it, and files that could not be included."""

    bytes: int
    files: int
    missing: tuple[str, ...] = ()


@dataclass
class _TablePlan:
    entry: InventoryEntry
    columns: list[Column[Any]]
    rows: int
    tabular: bool

    @property
    def table(self) -> str:
        return self.entry.table


@dataclass
class _FilePlan:
    arcname: str
    key: str
    table: str
    column: str
    png: bool = False  # an image original whose parameters text is handled as downloads do
    parameters: str | None = None  # the A1111 infotext of an image original
    sibling: bool = False  # write ``parameters`` as a .txt beside the file


@dataclass
class _ReceiptPlan:
    arcname: str
    order_id: uuid.UUID


@dataclass
class _Plan:
    user_email: str
    strip: bool
    tables: list[_TablePlan] = field(default_factory=list)
    files: list[_FilePlan] = field(default_factory=list)
    receipts: list[_ReceiptPlan] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # keys named by rows whose file is gone
    held_back: list[InventoryEntry] = field(default_factory=list)  # declared, about accounts, not exported


def write_archive(settings: Settings, storage: MediaStorage, user_id: uuid.UUID, key: str, *,
                  progress: Progress | None = None) -> ArchiveResult:
    """Build the export of account ``user_id`` at storage ``key`` (replacing any file there); raises on failure,
    leaving no partial file behind. ``progress`` is called with the fraction done after each file of the archive."""
    plan = _plan(settings, storage, user_id)
    units = sum(2 if table.tabular else 1 for table in plan.tables) + \
        sum(2 if item.sibling else 1 for item in plan.files) + len(plan.receipts) + 1
    done = 0
    vanished: list[str] = []

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(min(done / units, 1.0))

    stream = ZipStream(compress_type=zipfile.ZIP_STORED)
    text_entry = {"compress_type": zipfile.ZIP_DEFLATED, "compress_level": 6}  # images are compressed already
    for table in plan.tables:
        stream.add(_counted(_json_rows(settings, user_id, table), tick), arcname=f"data/{table.table}.json",
                   **text_entry)
        if table.tabular:
            stream.add(_counted(_csv_rows(settings, user_id, table), tick), arcname=f"data/{table.table}.csv",
                       **text_entry)
    for item in plan.files:
        stream.add(_counted(_file(storage, item, plan.strip, vanished), tick), arcname=item.arcname)
        if item.sibling:
            stream.add(_counted(iter([(item.parameters or "").encode() + b"\n"]), tick),
                       arcname=str(PurePosixPath(item.arcname).with_suffix(".txt")), **text_entry)
    for receipt in plan.receipts:  # PDFs compress their own content: stored as they are
        stream.add(_counted(_receipt(settings, user_id, receipt, vanished), tick), arcname=receipt.arcname)
    stream.add(_counted(_readme(plan, vanished), tick), arcname=README, **text_entry)
    written = storage.put_stream(key, stream)
    return ArchiveResult(bytes=written, files=units, missing=tuple(plan.missing + vanished))


# --- what goes in ------------------------------------------------------------------------------------------------

def _plan(settings: Settings, storage: MediaStorage, user_id: uuid.UUID) -> _Plan:
    with session_scope(settings) as session:
        user = session.get(User, user_id)
        if user is None:
            raise LookupError("the account no longer exists")
        plan = _Plan(user_email=user.email, strip=user.strip_metadata)
        for entry in inventory.entries():
            if entry.declaration.subject is Subject.USER and not entry.declaration.export:
                plan.held_back.append(entry)
        for entry in exported_entries():
            table = _table(entry)
            columns = [column for column in table.columns if not is_secret(column.name)]
            subject = table.c[entry.declaration.subject_column]
            rows = session.execute(select(func.count()).select_from(table).where(subject == user_id)).scalar_one()
            plan.tables.append(_TablePlan(entry, columns, rows, all(_scalar(column) for column in columns)))
            _plan_files(session, storage, entry, user_id, plan)
        plan.receipts = [_ReceiptPlan(f"{RECEIPTS}/{receipts.receipt_filename(order)}", order.id)
                         for order in receipts.orders_with_receipts(session, user_id)]
    return plan


def _plan_files(session: Session, storage: MediaStorage, entry: InventoryEntry, user_id: uuid.UUID,
                plan: _Plan) -> None:
    """The files the person's rows of ``entry`` name, each checked to exist now."""
    columns = [name for name in entry.declaration.file_columns
               if (entry.table, name) not in DERIVED_FILES and not is_secret(name)]
    if not columns:
        return
    if entry.model is Image and columns == ["original_key"]:
        _plan_images(session, storage, user_id, plan)
        return
    table = _table(entry)
    folder = FOLDERS.get(entry.table, f"files/{entry.table}")
    primary = list(table.primary_key.columns)
    query = (select(*primary, *(table.c[name] for name in columns))
             .where(table.c[entry.declaration.subject_column] == user_id).order_by(*primary))
    for row in session.execute(query.execution_options(yield_per=BATCH)):
        row_id = "-".join(str(value) for value in row[:len(primary)])
        for name, key in zip(columns, row[len(primary):], strict=True):
            if not key:
                continue
            suffix = PurePosixPath(key).suffix
            stem = row_id if len(columns) == 1 else f"{row_id}-{name}"
            _add_file(storage, plan, _FilePlan(f"{folder}/{stem}{suffix}", key, entry.table, name))


def _plan_images(session: Session, storage: MediaStorage, user_id: uuid.UUID, plan: _Plan) -> None:
    query = (select(Image, Generation).join(Generation, Image.generation_id == Generation.id)  # type: ignore[arg-type]
             .where(Image.user_id == user_id).order_by(Image.created_at, Image.id))  # type: ignore[arg-type]
    for image, generation in session.execute(query.execution_options(yield_per=BATCH)):
        png = image.format == "PNG"
        # A signed file goes in exactly as stored (a rewrite would break its Content Credentials).
        key = image.plain_key if plan.strip and image.signed and image.plain_key else image.original_key
        item = _FilePlan(f"{FOLDERS['image']}/{image.id}{PurePosixPath(image.original_key).suffix}",
                         key, "image", "original_key", png=png and not image.signed,
                         parameters=media.infotext(generation, image), sibling=plan.strip or not png)
        _add_file(storage, plan, item)


def _add_file(storage: MediaStorage, plan: _Plan, item: _FilePlan) -> None:
    try:
        present = storage.exists(item.key)
    except InvalidKey:
        present = False
    if present:
        plan.files.append(item)
    else:
        plan.missing.append(item.arcname)


def _table(entry: InventoryEntry) -> Table:
    return entry.model.__table__  # type: ignore[attr-defined,no-any-return]


def _scalar(column: Column[Any]) -> bool:
    return not isinstance(column.type, (JSON, ARRAY)) and _python_type(column) not in (dict, list, tuple)


# --- writing -----------------------------------------------------------------------------------------------------

def _counted(chunks: Iterator[bytes], tick: Callable[[], None]) -> Iterator[bytes]:
    yield from chunks
    tick()


def _buffered(pieces: Iterable[str]) -> Iterator[bytes]:
    buffer: list[str] = []
    size = 0
    for piece in pieces:
        buffer.append(piece)
        size += len(piece)
        if size >= _CHUNK:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode()


def _rows(settings: Settings, user_id: uuid.UUID, table: _TablePlan) -> Iterator[dict[str, Any]]:
    """The person's rows of one table, secrets left out, in a short session of their own."""
    source = _table(table.entry)
    order = list(source.primary_key.columns) or table.columns
    query = (select(*table.columns).where(source.c[table.entry.declaration.subject_column] == user_id)
             .order_by(*order).execution_options(yield_per=BATCH))
    with session_scope(settings) as session:
        for row in session.execute(query):
            yield {column.name: _plain(value, settings.public_url)
                   for column, value in zip(table.columns, row, strict=True)}


def _json_rows(settings: Settings, user_id: uuid.UUID, table: _TablePlan) -> Iterator[bytes]:
    def pieces() -> Iterator[str]:
        yield "["
        for index, row in enumerate(_rows(settings, user_id, table)):
            yield ("," if index else "") + "\n  " + json.dumps(row, ensure_ascii=False, allow_nan=False)
        yield "\n]\n"
    return _buffered(pieces())


def _csv_rows(settings: Settings, user_id: uuid.UUID, table: _TablePlan) -> Iterator[bytes]:
    def pieces() -> Iterator[str]:
        line = io.StringIO()
        writer = csv.writer(line, lineterminator="\r\n")
        writer.writerow([column.name for column in table.columns])
        for row in _rows(settings, user_id, table):
            writer.writerow([_csv_value(value) for value in row.values()])
            yield line.getvalue()
            line.seek(0)
            line.truncate()
        yield line.getvalue()
    return _buffered(pieces())


def _plain(value: Any, site: str) -> Any:
    """A value JSON can carry: times in ISO 8601 UTC, ids and exact decimals as text, enums as their values."""
    if value is None or isinstance(value, (bool, int)):
        return value.value if isinstance(value, enum.Enum) else value
    if isinstance(value, enum.Enum):
        return _plain(value.value, site)
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, str):
        return redact_links(value, site)
    if isinstance(value, datetime):
        return as_utc(value).isoformat().replace("+00:00", "Z")
    if isinstance(value, (date, clock_time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {str(k): _plain(v, site) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v, site) for v in value]
    return str(value)


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _file(storage: MediaStorage, item: _FilePlan, strip: bool, vanished: list[str]) -> Iterator[bytes]:
    try:
        data = storage.read(item.key)
    except (OSError, InvalidKey):
        vanished.append(item.arcname)  # deleted while the export was being built: the entry stays empty
        return
    if item.png:
        # A file stored as PNG that is not one goes in as stored; the export does not fail for it.
        with contextlib.suppress(ValueError):
            data = media.png_with_parameters(data, None if strip else item.parameters)
    yield data


def _receipt(settings: Settings, user_id: uuid.UUID, item: _ReceiptPlan, vanished: list[str]) -> Iterator[bytes]:
    """The order's receipt, made from the order as it is now, in a short session of its own."""
    with session_scope(settings) as session:
        order = session.get(CreditOrder, item.order_id)
    if order is None or order.user_id != user_id or not receipts.has_receipt(order):
        vanished.append(item.arcname)  # erased or changed while the export was being built: the entry stays empty
        return
    yield receipts.receipt_pdf(settings, order)


# --- README ------------------------------------------------------------------------------------------------------

_WIDTH = 100
_ACRONYMS = {"ip": "IP", "nsfw": "NSFW", "url": "URL", "api": "API", "oidc": "OIDC", "ms": "(milliseconds)"}


def _readme(plan: _Plan, vanished: list[str]) -> Iterator[bytes]:
    # A generator: it runs when the archive reaches it (last), so it can name files that vanished meanwhile.
    yield readme_text(plan, vanished).encode()


def _item(text: str, *, indent: str = "", bullet: str = "* ") -> list[str]:
    return textwrap.wrap(text, _WIDTH, initial_indent=indent + bullet,
                         subsequent_indent=indent + " " * len(bullet), break_on_hyphens=False)


def readme_text(plan: _Plan, vanished: Iterable[str] = ()) -> str:
    """README.txt: what every file and every field of the archive is, and what is left out and why."""
    created = now().astimezone(UTC)
    lines = [
        "Your data from Rupali", "=====================", "",
        f"Account: {plan.user_email}", f"Created: {created:%Y-%m-%d %H:%M:%S} UTC", "",
        *textwrap.wrap("This archive holds everything Rupali keeps that is linked to your account, as its "
                       "personal-data inventory declares it: one data file per kind of record, every image you "
                       "generated, every image you uploaded, your profile picture and the receipt of every credit "
                       "pack you paid for.", _WIDTH),
        "", "How to read the data files", "--------------------------",
        *_item("data/<name>.json is a list of objects, one per record, with every field (UTF-8)."),
        *_item("data/<name>.csv holds the same records as a table where they fit one: the first line names the "
               "columns; UTF-8, comma separated, values with commas, quotes or line breaks in double quotes; an "
               "empty value means none."),
        *_item("Dates and times are ISO 8601 in UTC, for example 2026-11-28T14:05:00.123456Z."),
        *_item("Ids are UUIDs or whole numbers; records refer to each other by them (generation_id in "
               "data/image.json is the id of a record in data/generation.json)."),
        *_item("Exact decimal numbers are written as text, so no digit is lost. true/false are JSON booleans "
               "(true and false in the CSV files); a missing value is null in JSON."),
        "", "What is left out, and why", "-------------------------",
        *_item(f"Secrets: {SECRET_RULE}. That covers your password (only a hash of it is kept) and the hashes of "
               "your sign-in sessions, sign-in codes, API keys and e-mailed one-time links: of no use to you, and "
               "a help to anyone else trying to get into your account."),
        *_item(f"One-time codes in links to Rupali inside the e-mails we sent you are replaced by \"{REMOVED}\", "
               "for the same reason."),
        *_item("Records about anonymous browsers (such as cookie choices) are not linked to your account."),
        *_item("Thumbnails: small copies made from your images, which are all here in full."),
    ]
    for entry in plan.held_back:
        lines += _item(f"{entry.declaration.holds} (table {entry.table}): kept, but not in the download: it "
                       "holds nothing you could use (such as hashes of one-time codes), or is about this download.")
    lines += ["", "Files", "-----"]
    folders: dict[str, list[_FilePlan]] = {}
    for item in plan.files:
        folders.setdefault(item.arcname.rsplit("/", 1)[0], []).append(item)
    for table in plan.tables:
        lines += ["", *_describe_table(table, folders, len(plan.receipts))]
    gone = [*plan.missing, *vanished]
    lines += ["", "Files that could not be included", "--------------------------------"]
    lines += [line for name in gone for line in _item(f"{name}: the file was no longer in storage.")] or \
        ["None: every file is here."]
    lines += ["", f"{README}: this description.", ""]
    return "\n".join(lines)


def _folder(table: str) -> str:
    return FOLDERS.get(table, f"files/{table}")


def _describe_table(table: _TablePlan, folders: dict[str, list[_FilePlan]], receipt_count: int = 0) -> list[str]:
    entry = table.entry
    files = f"data/{table.table}.json" + (f" and data/{table.table}.csv" if table.tabular else "")
    count = f"{table.rows} record" + ("" if table.rows == 1 else "s")
    lines = [f"{files} ({count})", *_item(f"{entry.declaration.holds}.", indent="  ", bullet=""), "  Fields:"]
    for column in table.columns:
        lines += _item(f"{column.name} ({_type_of(entry, column)}): {_meaning(entry, column)}", indent="  ",
                       bullet="- ")
    folder = _folder(table.table)
    items = folders.get(folder, [])
    if entry.model is Image:
        lines += _item(f"Image files: {folder}/<id>.png (or .jpg, .webp), {len(items)} in all: the original of each "
                       "record, named by its id. PNG files carry their prompt and settings in a \"parameters\" "
                       "text chunk, as AUTOMATIC1111 writes it (PNG Info and similar tools read it). Where the "
                       "format cannot carry it, or you chose downloads without it, the same text is in <id>.txt "
                       "beside the image.", indent="  ", bullet="")
    elif items:
        lines += _item(f"Files: {folder}/, {len(items)} in all, named by the id of their record (and the field, "
                       "when a record has several).", indent="  ", bullet="")
    if entry.model is CreditOrder:
        lines += _item(f"Receipts: {RECEIPTS}/receipt-<date paid>-<id>.pdf, {receipt_count} in all: the receipt of "
                       "each order paid (refunded or disputed ones included), as PDF, named by the day it was paid "
                       "(UTC) and the order's id. Creem, the merchant of record, issued the tax invoice for each.",
                       indent="  ", bullet="")
    return lines


def _meaning(entry: InventoryEntry, column: Column[Any]) -> str:
    """What a field means: its declared description, else what its name and the declaration say."""
    name = column.name
    described = _field_info(entry, name)
    if described is not None and getattr(described, "description", None):
        return str(described.description)
    if column.comment:
        return column.comment
    words = " ".join(_ACRONYMS.get(word, word) for word in name.split("_"))
    if name == entry.declaration.subject_column:
        return "your account's id (links the record to you)"
    if column.primary_key:
        return "the id of this record"
    if name in entry.declaration.file_columns:
        return "where the file is kept in storage" + (
            "; this copy is not included" if (entry.table, name) in DERIVED_FILES else
            f"; the file itself is in {_folder(entry.table)}/")
    if name.endswith("_id"):
        return f"the id of the related {words.removesuffix(' id')}"
    if name == "at" or name.endswith("_at"):
        return "when" + (f": {words.removesuffix(' at')}" if name != "at" else "")
    return words[:1].upper() + words[1:]


def _python_type(column: Column[Any]) -> type:
    kind = column.type
    if isinstance(kind, TypeDecorator):
        kind = kind.impl_instance  # e.g. UTCDateTime: a DateTime underneath
    try:
        return kind.python_type
    except NotImplementedError:
        return str


def _type_of(entry: InventoryEntry, column: Column[Any]) -> str:
    python = _python_type(column)
    kinds = {bool: "true/false", int: "whole number", float: "number", Decimal: "exact decimal number as text",
             datetime: "date and time, UTC", date: "date", uuid.UUID: "id", dict: "object", list: "list",
             bytes: "binary data as base64 text"}
    kind = kinds.get(python, "text")
    if (values := _choices(entry, column.name)) is not None:
        kind = "one of: " + ", ".join(values)
    elif kind == "text" and getattr(column.type, "length", None):
        kind = f"text, at most {column.type.length} characters"  # type: ignore[attr-defined]
    return kind + ("; may be null" if column.nullable else "")


def _field_info(entry: InventoryEntry, name: str) -> Any:
    return getattr(entry.model, "model_fields", {}).get(name)


def _choices(entry: InventoryEntry, name: str) -> list[str] | None:
    """The allowed values when the model declares the field as an enumeration."""
    described = _field_info(entry, name)
    if described is None:
        return None
    for candidate in (described.annotation, *typing.get_args(described.annotation)):
        if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
            return [str(member.value) for member in candidate]
    return None


def archive_name(finished: datetime | None) -> str:
    """The file name a browser saves the export under."""
    return f"rupali-data-{(finished or now()):%Y-%m-%d}.zip"
