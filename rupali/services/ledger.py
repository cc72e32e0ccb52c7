"""The credit ledger: balances that change only together with an append-only entry, and the studio's credit hook.

**Exactness.** Every change is one ``UPDATE credit_account … RETURNING balance`` and one entry holding the delta and
the balance after it, in the caller's transaction: both land or neither does, so a person's entries always sum to
their balance. Spending is ``SET balance = balance - :n WHERE user_id = :u AND balance >= :n``, so of two requests
for the last credit exactly one finds its row (PostgreSQL re-checks the condition after waiting for the row lock;
SQLite has one writer at a time). Each entry has an idempotency key, unique in the database: posting it again
changes nothing.

**A generation's credits.** ``reserve`` is the conditional spend plus a ``reserve:<generation>`` entry, and records
the amount on the generation (``credits``). ``settle`` (charge the delivered images, give back the rest) and
``release`` (give back everything) share one key, ``end:<generation>``, so a reservation ends exactly once whichever
way: the entry is inserted with ``ON CONFLICT DO NOTHING`` and, when it was already there (a cancel racing the job's
completion, a retry), the balance change just made is reversed in the same transaction. Two statements each in the
common case: the hook adds about 1.5 ms to a generation (``tests/bench/test_ledger_bench.py``).

**Free credits.** The account is opened on the ledger's first touch (a reservation, a balance shown, a grant) with
the sign-up bonus, once: the row's primary key lets exactly one opening insert it. Operations other than the
reservation's fast path first take the account's row (an ``UPDATE`` of ``updated_at``: a row lock on PostgreSQL,
the write lock on SQLite) and then read what they decide on. The daily allowance is applied
lazily, when the balance is next read or spent on a new UTC day: it tops the balance up to the allowance (no
rollover: unspent free credits do not pile up; a balance already at or above it gets nothing). Lazily rather than
by a nightly job, because a job would write a row a day for every account, idle ones included, and a job that
did not run would leave people without their allowance. A negative balance (a refund after spending) is never
topped up: the debt is settled first, and no reservation is accepted until then.

**Restarts.** A reservation commits with its queued generation, and its settle or release with the generation's
outcome, so after a crash the ledger agrees with the generation rows. Start-up recovery
(``generations.recover_after_restart``) fails the generations that were running, which releases their credits
through the hook, and resumes the queued ones, whose reservation is still held and is settled when they finish.
:func:`reconcile` releases any reservation whose generation ended or vanished without an ending entry (say, ended
through a hook that was not the ledger); the recovery runs it after failing the running ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Insert, Integer, Table, and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from rupali import text
from rupali.clock import now
from rupali.config import Settings
from rupali.models import (
    PAYMENT_KINDS,
    CreditAccount,
    CreditEntry,
    CreditPurchaseEntry,
    EntryKind,
    Generation,
    GenerationStatus,
    User,
)
from rupali.models.types import new_id
from rupali.pricing import Pricing
from rupali.services.credits import CreditHook, FreeGeneration, InsufficientCredits

REASON_MAX = 200
LowBalance = Callable[[Session, uuid.UUID, int], None]  # (session, user id, balance) when it falls below the threshold

_ACCOUNT: Table = CreditAccount.__table__  # type: ignore[attr-defined]
_ENTRY: Table = CreditEntry.__table__  # type: ignore[attr-defined]
_PURCHASE: Table = CreditPurchaseEntry.__table__  # type: ignore[attr-defined]
_FINISHED = [status.value for status in GenerationStatus if status.finished]

# Statements built once: constructing and hashing a statement costs more than SQLite takes to run it.
_STATE = (_ACCOUNT.c.balance, _ACCOUNT.c.daily_allowance, _ACCOUNT.c.daily_on, _ACCOUNT.c.low_balance_alerted_at)
_LOCK = (update(_ACCOUNT).where(_ACCOUNT.c.user_id == bindparam("u")).values(updated_at=bindparam("t"))
         .returning(*_STATE))
_ADD = (update(_ACCOUNT).where(_ACCOUNT.c.user_id == bindparam("u"))
        .values(balance=_ACCOUNT.c.balance + bindparam("d", type_=Integer), updated_at=bindparam("t"))
        .returning(*_STATE))
# The spend: only when the balance covers all of it, decided by the database in the one statement.
_SPEND = (update(_ACCOUNT).where(_ACCOUNT.c.user_id == bindparam("u"),
                                  _ACCOUNT.c.balance >= bindparam("n", type_=Integer))
          .values(balance=_ACCOUNT.c.balance - bindparam("n", type_=Integer), updated_at=bindparam("t"))
          .returning(*_STATE))
_INSERT_ENTRY = insert(_ENTRY)
_INSERT_PURCHASE = insert(_PURCHASE)
_INSERT_ENDING: dict[str, Insert] = {}


class LedgerError(ValueError):
    """A ledger request that cannot be carried out; the message says why in plain words."""


@dataclass
class _Account:
    """An account's row as read under its lock."""

    user_id: uuid.UUID
    balance: int
    daily_allowance: int | None
    daily_on: date | None
    low_balance_alerted_at: datetime | None


# --- the account ---------------------------------------------------------------------------------------------------

def _lock(session: Session, user_id: uuid.UUID) -> _Account | None:
    row = session.connection().execute(_LOCK, {"u": user_id, "t": now()}).first()
    return None if row is None else _Account(user_id, row[0], row[1], row[2], row[3])


def _dialect_insert(session: Session) -> Callable[[Table], Insert]:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert  # type: ignore[return-value]


def _open(session: Session, settings: Settings, user_id: uuid.UUID) -> _Account:
    """The person's account, locked; opened (with the sign-up bonus) on first use; today's allowance applied."""
    account = _lock(session, user_id)
    if account is None:
        moment = now()
        values = {"user_id": user_id, "balance": 0, "created_at": moment, "updated_at": moment}
        maker = _dialect_insert(session)
        # RETURNING rather than rowcount: psycopg reports -1 for an INSERT … ON CONFLICT through SQLAlchemy.
        opened = session.execute(maker(_ACCOUNT).values(**values).on_conflict_do_nothing(  # type: ignore[attr-defined]
            index_elements=["user_id"]).returning(_ACCOUNT.c.user_id)).first() is not None
        account = _lock(session, user_id)
        assert account is not None
        # Only the transaction that inserted the row grants the bonus: a concurrent opening found the row there.
        if opened and settings.credits_signup_bonus > 0:
            _post(session, settings, account, settings.credits_signup_bonus, kind=EntryKind.BONUS,
                  key=f"bonus:{user_id}", reference="Sign-up bonus")
            session.execute(update(_ACCOUNT).where(_ACCOUNT.c.user_id == user_id).values(bonus_at=moment))
    _top_up(session, settings, account)
    return account


def _top_up(session: Session, settings: Settings, account: _Account, basis: int | None = None) -> None:
    """Apply today's allowance once: top the balance up to it. ``basis`` is the balance to top up from when a spend
    in this transaction came first (the allowance is due before the spend, whichever statement ran first)."""
    allowance = settings.credits_daily_allowance if account.daily_allowance is None else account.daily_allowance
    today = now().date()  # UTC: clock.now() is aware UTC
    if allowance <= 0 or account.daily_on == today:
        return
    session.execute(update(_ACCOUNT).where(_ACCOUNT.c.user_id == account.user_id).values(daily_on=today))
    account.daily_on = today
    basis = account.balance if basis is None else basis
    if 0 <= basis < allowance:
        _post(session, settings, account, allowance - basis, kind=EntryKind.DAILY,
              key=f"daily:{account.user_id}:{today.isoformat()}", reference=f"Daily allowance for {today.isoformat()}")


def _post(session: Session, settings: Settings, account: _Account, delta: int, *, kind: EntryKind, key: str,
          reference: str = "", generation_id: uuid.UUID | None = None, actor_id: uuid.UUID | None = None,
          spend: bool = False) -> dict[str, object] | None:
    """Change the balance by ``delta`` and append its entry; None when ``spend`` and the balance is too low.

    ``spend`` makes the update conditional on the balance covering the whole amount, in the statement itself.
    """
    moment = now()
    if spend:
        row = session.connection().execute(_SPEND, {"u": account.user_id, "n": -delta, "t": moment}).first()
    else:
        row = session.connection().execute(_ADD, {"u": account.user_id, "d": delta, "t": moment}).first()
    if row is None:
        return None
    before, account.balance = account.balance, row[0]
    values: dict[str, object] = {
        "id": new_id(), "user_id": account.user_id, "kind": kind.value, "delta": delta, "balance_after": row[0],
        "reference": reference[:300], "idempotency_key": key, "created_at": moment}
    if kind in PAYMENT_KINDS:
        session.connection().execute(_INSERT_PURCHASE, values)
    else:
        values |= {"generation_id": generation_id, "actor_id": actor_id}
        session.connection().execute(_INSERT_ENTRY, values)
    _watch_threshold(session, settings, account, before)
    return values


def _watch_threshold(session: Session, settings: Settings, account: _Account, before: int) -> None:
    """Record a fall below the alert threshold once per crossing, and re-arm when the balance is back above it."""
    threshold = settings.credits_alert_threshold
    if threshold <= 0:
        return
    if account.balance < threshold <= before and account.low_balance_alerted_at is None:
        account.low_balance_alerted_at = now()
        session.execute(update(_ACCOUNT).where(_ACCOUNT.c.user_id == account.user_id)
                        .values(low_balance_alerted_at=account.low_balance_alerted_at))
        for listener in _low_balance_listeners:
            listener(session, account.user_id, account.balance)
    elif account.balance >= threshold and account.low_balance_alerted_at is not None:
        account.low_balance_alerted_at = None
        session.execute(update(_ACCOUNT).where(_ACCOUNT.c.user_id == account.user_id)
                        .values(low_balance_alerted_at=None))


_low_balance_listeners: list[LowBalance] = []


def on_low_balance(listener: LowBalance) -> None:
    """Call ``listener(session, user_id, balance)`` in the transaction where a balance first falls below the alert
    threshold (once per crossing; re-armed when it is back at or above it). The balance-alert mail hooks in here."""
    if listener not in _low_balance_listeners:
        _low_balance_listeners.append(listener)


# --- reading -------------------------------------------------------------------------------------------------------

def balance(session: Session, settings: Settings, user_id: uuid.UUID) -> int:
    """The person's balance, with today's allowance. Read-only unless the account must be opened or topped up."""
    row = session.execute(select(_ACCOUNT.c.balance, _ACCOUNT.c.daily_allowance, _ACCOUNT.c.daily_on)
                          .where(_ACCOUNT.c.user_id == user_id)).first()
    if row is not None:
        allowance = settings.credits_daily_allowance if row[1] is None else row[1]
        if allowance <= 0 or row[2] == now().date():
            return int(row[0])
    return _open(session, settings, user_id).balance


def ledger_sum(session: Session, user_id: uuid.UUID) -> int:
    """The sum of every entry of the person's ledger (usage and purchases); equals their balance."""
    usage = session.execute(select(func.coalesce(func.sum(_ENTRY.c.delta), 0))
                            .where(_ENTRY.c.user_id == user_id)).scalar_one()
    bought = session.execute(select(func.coalesce(func.sum(_PURCHASE.c.delta), 0))
                             .where(_PURCHASE.c.user_id == user_id)).scalar_one()
    return int(usage) + int(bought)


def held(session: Session, generation_id: uuid.UUID) -> int:
    """Credits a generation still holds: its reservation until it is settled or released, else 0."""
    rows = session.execute(select(_ENTRY.c.kind, _ENTRY.c.delta)
                           .where(_ENTRY.c.generation_id == generation_id)).all()
    kinds = {kind for kind, _delta in rows}
    if EntryKind.SETTLE in kinds or EntryKind.RELEASE in kinds:
        return 0
    return sum(-delta for kind, delta in rows if kind == EntryKind.RESERVE)


# --- free credits and administration -------------------------------------------------------------------------------

def open_account(session: Session, settings: Settings, user_id: uuid.UUID) -> int:
    """Open the person's account (granting the sign-up bonus once) and apply today's allowance; the balance."""
    return _open(session, settings, user_id).balance


def grant(session: Session, settings: Settings, user: User, amount: int, *, reason: str, actor: User | None,
          key: str | None = None) -> CreditEntry:
    """An administrator grants (``amount`` > 0) or revokes (< 0) credits, with a reason that is recorded.

    ``actor`` None is the operator at the command line (``rupali credits grant``), who has the database anyway.
    A revocation never takes the balance below zero. ``key`` makes a repeated request (a form sent twice) a no-op:
    the entry already posted is returned.
    """
    if actor is not None and not actor.is_admin:
        raise LedgerError("Only an administrator can grant or revoke credits.")
    if amount == 0 or abs(amount) > 10_000_000:
        raise LedgerError("Grant or revoke between 1 and 10,000,000 credits.")
    try:
        cleaned = text.clean(reason, field="reason", label="The reason", max_length=REASON_MAX)
    except text.InvalidText as exc:
        raise LedgerError(exc.message) from None
    if not cleaned:
        raise LedgerError("Give a reason: it is recorded with the grant.")
    account = _open(session, settings, user.id)
    key = f"grant:{key or new_id()}"
    existing = session.execute(select(CreditEntry).where(CreditEntry.idempotency_key == key)).scalars().first()
    if existing is not None:
        return existing
    values = _post(session, settings, account, amount, kind=EntryKind.GRANT, key=key, reference=cleaned,
                   actor_id=actor.id if actor is not None else None, spend=amount < 0)
    if values is None:
        raise LedgerError(f"Cannot revoke {-amount} credits: the balance is {account.balance}.")
    return CreditEntry(**values)  # type: ignore[arg-type]


def set_daily_allowance(session: Session, settings: Settings, user_id: uuid.UUID, allowance: int | None) -> None:
    """Give one account its own daily allowance (None: the setting's). Applies from the next UTC day."""
    if allowance is not None and not 0 <= allowance <= 1_000_000:
        raise LedgerError("A daily allowance is between 0 and 1,000,000 credits.")
    account = _open(session, settings, user_id)
    session.execute(update(_ACCOUNT).where(_ACCOUNT.c.user_id == account.user_id)
                    .values(daily_allowance=allowance))


def post_payment(session: Session, settings: Settings, user_id: uuid.UUID, kind: EntryKind, delta: int, *,
                 reference: str, key: str) -> CreditPurchaseEntry | None:
    """Post a purchase (positive), refund or chargeback (negative) once per ``key``; None if already posted.

    A refund may take the balance below zero (the credits were spent): new reservations are refused until it is
    back at zero or above.
    """
    if kind not in PAYMENT_KINDS:
        raise LedgerError(f"{kind} is not a payment entry")
    if (kind is EntryKind.PURCHASE) != (delta > 0):
        raise LedgerError("A purchase adds credits; refunds and chargebacks take them back.")
    account = _open(session, settings, user_id)
    if session.execute(select(_PURCHASE.c.id).where(_PURCHASE.c.idempotency_key == key)).first() is not None:
        return None
    values = _post(session, settings, account, delta, kind=kind, key=key, reference=reference)
    assert values is not None
    return CreditPurchaseEntry(**values)  # type: ignore[arg-type]


# --- generations ---------------------------------------------------------------------------------------------------

def reserve(session: Session, settings: Settings, user_id: uuid.UUID, generation: Generation, amount: int) -> None:
    """Hold ``amount`` credits for a queued generation, or raise :class:`InsufficientCredits` saying why.

    Once per generation (the generation is created in the same transaction): a second reservation of the same
    generation violates the entry's unique key. The amount is recorded on the generation (``credits``) until it ends.
    """
    generation.credits = 0
    if amount <= 0:
        return  # free: nothing to hold (a free model stays usable whatever the balance)
    # The common case in two statements: the conditional spend, then its entry.
    row = session.connection().execute(_SPEND, {"u": user_id, "n": amount, "t": now()}).first()
    fast = row is not None
    if row is None:
        # No account yet, a new day's allowance due first, a negative balance, or simply too little.
        account = _open(session, settings, user_id)
        if account.balance < 0:
            raise InsufficientCredits(
                f"Your balance is {_plural(account.balance)} after a refund. New images can be made once it is back "
                "above zero.")
        row = session.connection().execute(_SPEND, {"u": user_id, "n": amount, "t": now()}).first()
        if row is None:
            raise InsufficientCredits(_too_low(settings, amount, account))
    account = _Account(user_id, row[0], row[1], row[2], row[3])
    session.connection().execute(_INSERT_ENTRY, {
        "id": new_id(), "user_id": user_id, "kind": EntryKind.RESERVE.value, "delta": -amount,
        "balance_after": account.balance, "reference": _describe(generation), "idempotency_key":
        f"reserve:{generation.id}", "created_at": now(), "generation_id": generation.id, "actor_id": None})
    _watch_threshold(session, settings, account, account.balance + amount)
    if fast:
        _top_up(session, settings, account, basis=account.balance + amount)
    generation.credits = amount


def settle(session: Session, settings: Settings, generation: Generation, delivered: int) -> None:
    """Charge for the ``delivered`` images and give back the rest of the reservation (once)."""
    _end(session, settings, generation, max(0, min(delivered, generation.count)))


def release(session: Session, settings: Settings, generation: Generation) -> None:
    """Give back the whole reservation (failed, blocked, cancelled, interrupted), once."""
    _end(session, settings, generation, None)


def _end(session: Session, settings: Settings, generation: Generation, delivered: int | None) -> None:
    """Settle or release: one entry keyed ``end:<generation>``, so a reservation ends exactly once, whichever way.

    The balance is changed first and the entry inserted with ``ON CONFLICT DO NOTHING``; if the generation had
    already ended, the change is reversed in the same transaction and nothing is recorded. Of two endings at once,
    the second waits on the account's row, then finds the first one's key (PostgreSQL waits for the first commit
    before deciding the conflict; SQLite runs one writer at a time).
    """
    held_credits = generation.credits  # the reservation, recorded on the generation at submission
    if held_credits <= 0:
        return
    if delivered is None:
        cost, kind = 0, EntryKind.RELEASE
    else:
        # Exact: the reservation is the per-image price times the count. Rounded down, in the person's favour.
        cost, kind = held_credits * delivered // max(generation.count, 1), EntryKind.SETTLE
    give_back, moment = held_credits - cost, now()
    row = session.connection().execute(_ADD, {"u": generation.user_id, "d": give_back, "t": moment}).first()
    if row is None:
        return  # the account is gone (erased): nothing to give back to
    account = _Account(generation.user_id, row[0], row[1], row[2], row[3])
    dialect = session.get_bind().dialect.name
    if dialect not in _INSERT_ENDING:
        _INSERT_ENDING[dialect] = _dialect_insert(session)(_ENTRY).on_conflict_do_nothing(  # type: ignore[attr-defined]
            index_elements=["idempotency_key"]).returning(_ENTRY.c.id)
    posted = session.connection().execute(_INSERT_ENDING[dialect], {
        "id": new_id(), "user_id": generation.user_id, "kind": kind.value, "delta": give_back,
        "balance_after": account.balance, "reference": _describe(generation, delivered),
        "idempotency_key": f"end:{generation.id}", "created_at": moment, "generation_id": generation.id,
        "actor_id": None}).first()
    if posted is None:  # already settled or released: undo the change; the recorded charge stands
        session.connection().execute(_ADD, {"u": generation.user_id, "d": -give_back, "t": moment})
        return
    _watch_threshold(session, settings, account, account.balance - give_back)
    generation.credits = cost


def reconcile(session: Session, settings: Settings) -> int:
    """Release every reservation whose generation has ended, or is gone, without a settle or release; the count."""
    generation = Generation.__table__  # type: ignore[attr-defined]
    ending = _ENTRY.alias("ending")
    open_reservations = session.execute(
        select(_ENTRY.c.generation_id, _ENTRY.c.user_id, _ENTRY.c.delta)
        .outerjoin(generation, generation.c.id == _ENTRY.c.generation_id)
        .where(_ENTRY.c.kind == EntryKind.RESERVE.value, _ENTRY.c.generation_id.is_not(None),
               or_(generation.c.id.is_(None), generation.c.status.in_(_FINISHED)),
               ~exists().where(and_(ending.c.generation_id == _ENTRY.c.generation_id,
                                    ending.c.kind.in_([EntryKind.SETTLE.value, EntryKind.RELEASE.value]))))).all()
    for generation_id, user_id, delta in open_reservations:
        found = session.get(Generation, generation_id)
        # What the entry held, not what the row says: a hook other than the ledger may have zeroed it.
        target = found or Generation(id=generation_id, user_id=user_id, provider="", model="", prompt="", width=0,
                                     height=0, steps=0, guidance=0.0, count=1, seed=0)
        target.credits = -delta
        release(session, settings, target)
        if found is not None:
            session.add(found)
    return len(open_reservations)


def _plural(credits: int) -> str:
    return f"{credits} credit" if abs(credits) == 1 else f"{credits} credits"


def _describe(generation: Generation, delivered: int | None = None) -> str:
    images = generation.count if delivered is None else delivered
    what = generation.model_label or generation.model or "generation"
    return f"{what}, {images} image{'s' if images != 1 else ''}" + (
        f" of {generation.count}" if delivered is not None and delivered != generation.count else "")


def _too_low(settings: Settings, amount: int, account: _Account) -> str:
    message = f"This costs {_plural(amount)} and you have {account.balance} left."
    allowance = settings.credits_daily_allowance if account.daily_allowance is None else account.daily_allowance
    if allowance > 0:
        message += f" Your daily allowance tops it up to {allowance} tomorrow (UTC)."
    return message


# --- the studio's hook ---------------------------------------------------------------------------------------------

class LedgerCredits:
    """The credit hook when billing is on: prices from the settings, credits from the ledger."""

    charges = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pricing = Pricing.from_settings(settings)

    def quote(self, *, model_key: str, width: int, height: int, steps: int, count: int,
              image_to_image: bool = False) -> int:
        return self.pricing.quote(model_key=model_key, width=width, height=height, steps=steps, count=count,
                                  image_to_image=image_to_image)

    def balance(self, session: Session, user: User) -> int | None:
        return balance(session, self.settings, user.id)

    def reserve(self, session: Session, user: User, generation: Generation) -> None:
        amount = self.quote(model_key=f"{generation.provider}:{generation.model}", width=generation.width,
                            height=generation.height, steps=generation.steps, count=generation.count,
                            image_to_image=generation.upload_id is not None)
        reserve(session, self.settings, user.id, generation, amount)

    def settle(self, session: Session, generation: Generation, delivered: int) -> None:
        settle(session, self.settings, generation, delivered)

    def release(self, session: Session, generation: Generation) -> None:
        release(session, self.settings, generation)


def hook_for(settings: Settings) -> CreditHook:
    """The credit hook for the billing mode, as the running app builds it: free when off, the ledger otherwise.

    For code that works without the running app (the CLI, jobs): ending a generation through the free hook would
    leave its reservation held until the next start-up's :func:`reconcile`.
    """
    return FreeGeneration() if settings.billing == "off" else LedgerCredits(settings)


__all__ = [
    "LedgerCredits",
    "LedgerError",
    "balance",
    "grant",
    "held",
    "hook_for",
    "ledger_sum",
    "on_low_balance",
    "open_account",
    "post_payment",
    "reconcile",
    "release",
    "reserve",
    "set_daily_allowance",
    "settle",
]
