"""What the credit ledger adds to a generation: reserve at submission plus settle at the end.

Run explicitly (the default test run deselects it)::

    .venv/bin/pytest tests/bench/test_ledger_bench.py -m bench -s

On the embedded default (a SQLite file in WAL mode, as ``rupali serve`` runs it), one round is the two transactions
the ledger joins in a real generation: ``generations.submit`` (insert the generation, reserve its credits, commit)
and the ending (``settle`` for the delivered images, mark the generation succeeded, commit). Rounds alternate between
the ledger's hook and the free hook of ``RUPALI_BILLING=off``, so both see the same disk and a database of the same
size; the ledger's cost is the difference of the medians. The time spent inside ``reserve`` and ``settle``
themselves is reported too. The person's ledger already holds 20,000 entries (a busy year), so no index lookup is
flattered by a tiny table. Every measurement runs before the target is checked.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import time

import pytest

from rupali.clock import now
from rupali.config import get_settings
from rupali.db import session_scope
from rupali.models import Generation, GenerationStatus, Role
from rupali.runtime import Runtime
from rupali.services import generation as generations
from rupali.services import ledger
from rupali.services.credits import CreditHook, FreeGeneration
from rupali.services.ledger import LedgerCredits
from tests.bench.test_gallery_bench import Row, ms_row, nearest_rank
from tests.utils.factories import make_user

pytestmark = [pytest.mark.bench, pytest.mark.sqlite_only]

OFFLINE = "offline:sketch-v1"
HISTORY = 10_000  # generations already reserved and settled: 20,000 entries
WARM_UP = 20
ROUNDS = 400
TARGET_MS = 2.0


class _Timed:
    """A hook that times the calls of the hook it wraps (reserve and settle only)."""

    def __init__(self, inner: CreditHook) -> None:
        self.inner, self.spent = inner, 0.0
        self.charges = inner.charges

    def quote(self, **kwargs: object) -> int:
        return self.inner.quote(**kwargs)  # type: ignore[arg-type]

    def balance(self, session, user):  # type: ignore[no-untyped-def]
        return self.inner.balance(session, user)

    def reserve(self, session, user, generation) -> None:  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        self.inner.reserve(session, user, generation)
        self.spent += time.perf_counter() - started

    def settle(self, session, generation, delivered: int) -> None:  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        self.inner.settle(session, generation, delivered)
        self.spent += time.perf_counter() - started

    def release(self, session, generation) -> None:  # type: ignore[no-untyped-def]
        self.inner.release(session, generation)


def test_reserve_plus_settle_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUPALI_BILLING", "credits")
    monkeypatch.setenv("RUPALI_GENERATION_QUEUE_PER_USER", "100")
    from rupali.config import reset_settings

    reset_settings()
    settings = get_settings()
    admin, person = make_user(role=Role.ADMIN), make_user()
    choice = asyncio.run(Runtime.build(settings).providers.find(OFFLINE))
    form = generations.GenerationForm(prompt="a paper boat on a pond", model=OFFLINE, width=512, height=512, count=4)
    paid, free = LedgerCredits(settings), FreeGeneration()
    with session_scope() as session:
        ledger.grant(session, settings, person, 5_000_000, reason="benchmark", actor=admin)
    started = time.perf_counter()
    with session_scope() as session:
        for _ in range(HISTORY):
            generation = Generation(user_id=person.id, provider="offline", model="sketch-v1", prompt="history",
                                    width=512, height=512, steps=20, guidance=7.0, count=4, seed=1,
                                    status=GenerationStatus.SUCCEEDED)
            session.add(generation)
            session.flush()
            paid.reserve(session, person, generation)
            paid.settle(session, generation, delivered=4)
    print(f"\nbuilt a ledger of {2 * HISTORY + 2:,} entries in {time.perf_counter() - started:.1f} s")

    def round_trip(hook: _Timed) -> float:
        begun = time.perf_counter()
        with session_scope() as session:
            generation = generations.submit(session, settings, person, choice, form, hook)  # type: ignore[arg-type]
        with session_scope() as session:
            generation = session.get(Generation, generation.id)
            hook.settle(session, generation, delivered=4)
            generation.status, generation.finished_at = GenerationStatus.SUCCEEDED, now()
            session.add(generation)
        return (time.perf_counter() - begun) * 1000

    timed = {"ledger": _Timed(paid), "free": _Timed(free)}
    samples: dict[str, list[float]] = {"ledger": [], "free": []}
    inside: list[float] = []
    for number in range(WARM_UP + ROUNDS):
        for name in ("ledger", "free") if number % 2 else ("free", "ledger"):
            hook = timed[name]
            hook.spent = 0.0
            elapsed = round_trip(hook)
            if number >= WARM_UP:
                samples[name].append(elapsed)
                if name == "ledger":
                    inside.append(hook.spent * 1000)
    with session_scope() as session:
        exact = ledger.ledger_sum(session, person.id) == ledger.balance(session, settings, person.id)
    added = statistics.median(samples["ledger"]) - statistics.median(samples["free"])
    rows = [
        ms_row("submit + settle, free hook (billing off)", samples["free"]),
        ms_row("submit + settle, ledger hook", samples["ledger"]),
        ms_row("inside reserve() + settle()", inside),
        Row("added by the ledger (difference of medians)", f"{added:.2f} ms",
            f"p90 diff {nearest_rank(samples['ledger'], 0.9) - nearest_rank(samples['free'], 0.9):.2f} ms",
            f"<= {TARGET_MS:g} ms", added <= TARGET_MS),
        Row("ledger sum equals the balance", "yes" if exact else "NO", f"{2 * (HISTORY + WARM_UP + ROUNDS):,} "
            "entries", "yes", exact),
    ]
    print("\n" + _table(rows))
    assert all(row.passed is not False for row in rows), "a ledger benchmark target was missed"


def _table(rows: list[Row]) -> str:
    widths = [max(len(getattr(row, field)) for row in rows) for field in ("name", "value", "extra", "target")]
    lines = [f"{'benchmark':<{widths[0]}}  {'median':>{widths[1]}}  {'p90 / extra':<{widths[2]}}  "
             f"{'target':<{widths[3]}}  verdict"]
    lines.append("-" * len(lines[0]))
    lines += [f"{row.name:<{widths[0]}}  {row.value:>{widths[1]}}  {row.extra:<{widths[2]}}  "
              f"{row.target:<{widths[3]}}  {row.verdict}" for row in rows]
    lines.append(f"({os.cpu_count()} CPUs; SQLite {sqlite3.sqlite_version}; a ledger of {2 * HISTORY:,} entries "
                 f"before the {ROUNDS} measured rounds of each hook)")
    return "\n".join(lines)
