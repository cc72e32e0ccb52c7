"""Purging 1,000,000 technical-log rows on the embedded default (a SQLite file), while the gallery keeps answering.

Run explicitly (the default test run deselects it)::

    .venv/bin/pytest tests/bench/test_retention_bench.py -m bench -s -p no:cacheprovider

The data: 1,000,000 ``auth_attempt`` rows (the largest technical-log table: two rows, e-mail key and IP key, per
sign-in attempt) as ``rupali.services.ratelimit`` writes them: ``e:``/``i:`` plus 64 hex characters of a keyed hash
drawn from 20,000 addresses and 50,000 IPs, so the ``key`` index is in no order of time. They were made 190 to 100
days ago (past the 90-day period), ids rising with time as in real life; 10,000 younger rows must survive. One
person has a gallery of 2,000 images in 500 generations. Rows go in through plain INSERTs in 100,000-row
transactions, before the server starts.

Then ``rupali serve`` runs in its own process on the same file, and a load process (another interpreter, so it
shares no GIL with the purge) asks for the gallery page (``GET /gallery``, the NiceGUI page, signed in with a real
session cookie; its shell, since the person's images reach the page over its socket) and then for its data through
the API (``GET /api/v1/images``, a read key, with the per-person API limit raised), checking each answer, again and
again with 0.1 s between one pair and the next (someone paging as fast as they click); a second thread of
it makes a small write every 100 ms (the kind a sign-in makes) to show whether other writers get through. For 3 s
before the purge this gives the baseline; then ``retention.apply`` runs in the test process (a big heap, like the
server's: the module keeps full garbage collections out of its transactions) as the scheduler's job would.

Measured: the purge's wall time; its longest transaction (each batch, timed around the whole transaction from the
first statement to the end of its commit, by the retention module, and independently from the engine's begin to
commit events); its longest WAL checkpoint (run between transactions, for information); the gallery's answers and
their worst latency during the purge against the baseline; the worst wait of the concurrent writer. Every
measurement runs before any target is checked; then the table is printed and missed targets fail the test.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, insert, select

from rupali.clock import now
from rupali.config import get_settings
from rupali.db import dispose_engines, get_engine, session_scope, transact
from rupali.gate import AUTH_COOKIE
from rupali.models import ApiKeyScope, AuthAttempt, Generation, GenerationStatus, Image, User
from rupali.privacy import retention
from rupali.services import api_keys, sessions
from rupali.storage import LocalStorage
from tests.utils.factories import make_user
from tests.utils.serve import serve

pytestmark = [pytest.mark.bench, pytest.mark.sqlite_only]

ROOT = Path(__file__).resolve().parents[2]
OLD_ROWS = 1_000_000
YOUNG_ROWS = 10_000
CHUNK = 100_000
GENERATIONS, PER_GENERATION = 500, 4
BASELINE_SECONDS = 3.0
THINK_SECONDS = 0.1  # between one page-and-API pair and the next: a person paging through as fast as they click
PURGE_TARGET_S = 30.0
TRANSACTION_TARGET_MS = 200.0

LOAD = r"""
import json, sqlite3, sys, threading, time
import httpx

base, cookie_name, cookie, key, database, user_id, first_image, think = sys.argv[1:9]
think = float(think)
samples, writes, stop = [], [], threading.Event()

def read():
    with httpx.Client(base_url=base, timeout=60) as client:
        while not stop.is_set():
            time.sleep(think)
            for kind, path, headers, cookies, expect in (
                    ("page", "/gallery", {}, {cookie_name: cookie}, "<title>Gallery · Rupali</title>"),
                    ("api", "/api/v1/images?limit=60", {"Authorization": f"Bearer {key}"}, {}, first_image)):
                started = time.perf_counter()
                try:
                    response = client.get(path, headers=headers, cookies=cookies)
                    ok = response.status_code == 200 and expect in response.text
                    why = "" if ok else f"{response.status_code}: {response.text[:120]}"
                except httpx.HTTPError as exc:
                    ok, why = False, repr(exc)
                samples.append((time.time(), kind, (time.perf_counter() - started) * 1000, ok, why))

def write():
    connection = sqlite3.connect(database, timeout=60, isolation_level=None)
    connection.execute("PRAGMA busy_timeout=60000")
    while not stop.is_set():
        started = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        connection.execute('UPDATE "user" SET updated_at = updated_at WHERE id = ?', (user_id,))
        connection.execute("COMMIT")
        writes.append((time.time(), (time.perf_counter() - started) * 1000))
        time.sleep(0.1)

threads = [threading.Thread(target=read), threading.Thread(target=write)]
for thread in threads:
    thread.start()
print("running", flush=True)
sys.stdin.readline()
stop.set()
for thread in threads:
    thread.join()
print(json.dumps({"samples": samples, "writes": writes}), flush=True)
"""


# --- the data ------------------------------------------------------------------------------------------------------

def fill_technical_logs(database: str) -> None:
    """1,000,000 old and 10,000 young sign-in attempts, the way the rate limiter writes them."""
    rng = random.Random(2026)
    emails = ["e:" + hashlib.sha256(f"email-{n}".encode()).hexdigest() for n in range(20_000)]
    ips = ["i:" + hashlib.sha256(f"ip-{n}".encode()).hexdigest() for n in range(50_000)]
    oldest, newest = now() - timedelta(days=190), now() - timedelta(days=100)
    step = (newest - oldest) / (OLD_ROWS // 2)

    def attempts(count: int, start, spacing) -> Iterator[tuple[str, str, bool, str]]:
        for n in range(count // 2):
            stamp = (start + spacing * n).replace(tzinfo=None).isoformat(sep=" ")  # as UTCDateTime stores it
            action = rng.choice(("signin", "signin", "signin", "signup", "reset"))
            succeeded = rng.random() < 0.8
            yield action, rng.choice(emails), succeeded, stamp
            yield action, rng.choice(ips), succeeded, stamp

    connection = sqlite3.connect(database, timeout=60)
    try:
        rows = list(attempts(OLD_ROWS, oldest, step)) + list(
            attempts(YOUNG_ROWS, now() - timedelta(days=80), timedelta(minutes=10)))
        for start in range(0, len(rows), CHUNK):
            with connection:
                connection.executemany("INSERT INTO auth_attempt (action, key, succeeded, created_at) "
                                       "VALUES (?, ?, ?, ?)", rows[start:start + CHUNK])
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def fill_gallery(user: User) -> uuid.UUID:
    """2,000 images in 500 generations (rows only: the page and the API list them, nothing reads the files)."""
    rng = random.Random(7)
    generations, images = [], []
    start = now() - timedelta(days=60)
    newest: tuple | None = None
    for n in range(GENERATIONS):
        generation_id, made = uuid.uuid4(), start + timedelta(minutes=90 * n)
        generations.append(dict(
            id=generation_id, user_id=user.id, status=GenerationStatus.SUCCEEDED, provider="offline",
            model="sketch-v1", model_label="Offline sketch", model_version="", prompt=f"a quiet harbour number {n}",
            negative_prompt="", width=512, height=512, steps=20, guidance=7.0, count=PER_GENERATION,
            seed=rng.randrange(2**32), scheduler=None, upload_id=None, strength=None, error="", provider_cost=None,
            credits=0, created_at=made, started_at=made, finished_at=made, duration_ms=1000))
        for position in range(PER_GENERATION):
            image_id = uuid.uuid4()
            images.append(dict(
                id=image_id, user_id=user.id, generation_id=generation_id, position=position, seed=position,
                width=512, height=512, format="PNG", bytes=1000,
                original_key=f"images/{user.id.hex}/{generation_id.hex}/{image_id.hex}.png",
                thumbnail_key=f"thumbnails/{user.id.hex}/{generation_id.hex}/{image_id.hex}.webp",
                nsfw_score=0.01, provider_nsfw=None, nsfw=False, favourite=False, created_at=made, expires_at=None))
            newest = max(newest or (made, image_id), (made, image_id))
    with session_scope() as session:
        session.execute(insert(Generation), generations)
        session.execute(insert(Image), images)
    assert newest is not None
    return newest[1]


def sign_in(user: User) -> str:
    code = transact(sessions.start, get_settings(), user, method="password", ip="127.0.0.1",
                    user_agent="Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0",
                    visitor_id="bench-visitor")
    return transact(sessions.complete_handoff, code, "bench-visitor")


# --- processes -----------------------------------------------------------------------------------------------------

@contextmanager
def load(base: str, cookie: str, key: str, database: str, user: User, first_image: uuid.UUID) -> Iterator[dict]:
    """The gallery reader and the small writer, in a process of their own; yields their samples once stopped."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    process = subprocess.Popen([sys.executable, "-c", LOAD, base, AUTH_COOKIE, cookie, key, database, str(user.id),
                                str(first_image), str(THINK_SECONDS)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None and process.stdin is not None
    assert process.stdout.readline().strip() == "running"
    result: dict = {}
    try:
        yield result
    finally:
        process.stdin.write("stop\n")
        process.stdin.flush()
        result.update(json.loads(process.stdout.readline()))
        process.wait(timeout=30)


# --- measuring -----------------------------------------------------------------------------------------------------

@contextmanager
def transaction_clock() -> Iterator[list[float]]:
    """Milliseconds of every write transaction this process commits: from its first INSERT, UPDATE or DELETE (when
    SQLite takes the write lock) to the end of its commit."""
    engine = get_engine()
    durations: list[float] = []
    writing: dict[int, float] = {}

    def on_statement(connection, _cursor, statement: str, *_: object) -> None:
        if statement.lstrip()[:6].upper() in {"INSERT", "UPDATE", "DELETE"}:
            writing.setdefault(id(connection.connection.dbapi_connection), time.perf_counter())

    def on_commit(connection) -> None:
        dbapi = connection.connection.dbapi_connection
        started = writing.pop(id(dbapi), None)
        if started is not None:
            dbapi.commit()  # the engine announces a commit before the driver's: commit here to see its end
            durations.append((time.perf_counter() - started) * 1000)

    def on_rollback(connection) -> None:
        writing.pop(id(connection.connection.dbapi_connection), None)

    hooks = (("before_cursor_execute", on_statement), ("commit", on_commit), ("rollback", on_rollback))
    for name, hook in hooks:
        event.listen(engine, name, hook)
    try:
        yield durations
    finally:
        for name, hook in hooks:
            event.remove(engine, name, hook)


def worst(values: list[float]) -> float:
    return max(values) if values else float("nan")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def test_purging_a_million_technical_log_rows(tmp_path: Path):
    settings = get_settings()
    database = settings.effective_database_url.removeprefix("sqlite:///")
    user = make_user()
    filling = time.perf_counter()
    fill_technical_logs(database)
    first_image = fill_gallery(user)
    filled_s = time.perf_counter() - filling
    cookie = sign_in(user)
    with session_scope() as session:
        _, key = api_keys.create(session, user, "bench", scope=ApiKeyScope.READ)
    dispose_engines()  # the purge starts on fresh connections, as a scheduled run would

    # A million rows to look through at start-up: more time to become healthy than a fresh database needs. The load
    # reads the API ten times a second, over the per-person limit of a real deployment: this measures the purge.
    unlimited = {"RUPALI_RATE_LIMIT_API_PER_MINUTE": "100000"}
    with serve(tmp_path, extra=unlimited, timeout=90) as base, \
            load(base, cookie, key, database, user, first_image) as measured:
        time.sleep(BASELINE_SECONDS)
        began = time.time()
        with transaction_clock() as transactions:
            report = retention.apply(settings, LocalStorage.from_settings(settings))
        ended = time.time()
        time.sleep(1.0)

    with session_scope() as session:
        left = session.execute(select(func.count()).select_from(AuthAttempt)).scalar_one()

    samples, writes = measured["samples"], measured["writes"]
    during = [s for s in samples if began <= s[0] <= ended]
    before = [s for s in samples if s[0] < began]
    rows = [
        ("rows deleted", f"{report.counts()['auth_attempt']:,}", f"{left:,} young rows left", f"{OLD_ROWS:,}",
         report.counts()["auth_attempt"] == OLD_ROWS and left == YOUNG_ROWS),
        ("purge wall time", f"{report.seconds:.1f} s", f"{OLD_ROWS / report.seconds:,.0f} rows/s; "
         f"{report.batches} batches", f"<= {PURGE_TARGET_S:g} s", report.seconds <= PURGE_TARGET_S),
        ("longest transaction (retention's own timing)", f"{report.longest_batch_seconds * 1000:.0f} ms",
         f"median batch {statistics.median(transactions):.0f} ms" if transactions else "",
         f"<= {TRANSACTION_TARGET_MS:g} ms", report.longest_batch_seconds * 1000 <= TRANSACTION_TARGET_MS),
        ("longest transaction (first write..commit)", f"{worst(transactions):.0f} ms",
         f"{len(transactions)} transactions, {sum(ms > TRANSACTION_TARGET_MS for ms in transactions)} over "
         f"{TRANSACTION_TARGET_MS:g} ms, p99 {percentile(transactions, 0.99):.0f} ms; slowest: "
         + ", ".join(f"#{n + 1} {ms:.0f}" for n, ms in sorted(enumerate(transactions), key=lambda t: -t[1])[:3]),
         f"<= {TRANSACTION_TARGET_MS:g} ms", worst(transactions) <= TRANSACTION_TARGET_MS),
        ("longest WAL checkpoint (between transactions)", f"{report.longest_checkpoint_seconds * 1000:.0f} ms",
         f"every {retention.CHECKPOINT_ROWS:,} rows, PASSIVE", "-", None),
    ]
    for kind, label in (("page", "GET /gallery (page)"), ("api", "GET /api/v1/images (60)")):
        base_ms = [s[2] for s in before if s[1] == kind]
        purge_ms = [s[2] for s in during if s[1] == kind]
        failed = [s for s in during + before if s[1] == kind and not s[3]]
        rows.append((f"{label}: worst during purge", f"{worst(purge_ms):.0f} ms",
                     f"p50 {percentile(purge_ms, 0.5):.0f} / p99 {percentile(purge_ms, 0.99):.0f} ms, "
                     f"{len(purge_ms)} answers; before: p50 {percentile(base_ms, 0.5):.0f}, worst "
                     f"{worst(base_ms):.0f} ms"
                     + (f"; {len(failed)} failed, first: {failed[0][4]!r}" if failed else ""),
                     "all answered", bool(purge_ms) and not failed))
    write_ms = [w[1] for w in writes if began <= w[0] <= ended]
    rows.append(("concurrent small write: worst wait", f"{worst(write_ms):.0f} ms",
                 f"p50 {percentile(write_ms, 0.5):.1f} ms, {len(write_ms)} writes", "-", None))

    widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
    lines = [f"{'benchmark':<{widths[0]}}  {'value':>{widths[1]}}  {'extra':<{widths[2]}}  {'target':<{widths[3]}}  "
             "verdict"]
    lines.append("-" * (len(lines[0]) + 2))
    for name, value, extra, target, passed in rows:
        verdict = "info" if passed is None else "PASS" if passed else "FAIL"
        lines.append(f"{name:<{widths[0]}}  {value:>{widths[1]}}  {extra:<{widths[2]}}  {target:<{widths[3]}}  "
                     f"{verdict}")
    lines.append(f"({os.cpu_count()} CPUs; SQLite {sqlite3.sqlite_version}; {OLD_ROWS:,} + {YOUNG_ROWS:,} rows "
                 f"filled in {filled_s:.0f} s; gallery {GENERATIONS * PER_GENERATION:,} images)")
    print("\n" + "\n".join(lines))
    assert all(row[4] is not False for row in rows), "missed targets:\n" + "\n".join(lines)
