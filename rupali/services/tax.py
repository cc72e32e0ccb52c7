"""The VAT number a person may give for their receipts: checked offline with python-stdnum, kept on their account.

The check is the number's format and check digits for its member state (``stdnum.eu.vat``), nothing more: no VIES
lookup, so no network call, no third party told who asked, and no claim that the number is registered or belongs to
the person. :data:`OFFLINE_NOTE` says so where the number is entered. Creem, the merchant of record, decides the VAT
of each sale from what it is given at checkout; the number here only appears on Rupali's receipts.

Only the 27 member states are accepted, Greece as ``EL`` (``GR``, its ISO code, is turned into ``EL``). Northern
Ireland's ``XI`` numbers cover trade in goods only, and ``EU``/``IM`` numbers identify sellers under the OSS schemes,
not customers, so both are refused like any non-EU prefix.
"""

from __future__ import annotations

import re
import uuid

from babel import Locale
from sqlalchemy import select, update
from sqlmodel import Session
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidLength, ValidationError

from rupali.clock import now
from rupali.config import Settings
from rupali.models import CreditAccount
from rupali.services import ledger

OFFLINE_NOTE = "Checked for format only, offline; not verified with the EU's VIES service."
MAX_INPUT = 40  # characters, separators included; the longest EU number is 14, country code included
EU_PREFIXES = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "EL", "ES", "FI", "FR", "HR", "HU", "IE", "IT", "LT", "LU",
    "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
})
# What people type between the characters of a number; anything else (other scripts' digits, NUL, emoji) is refused
# before stdnum sees it, so its message is ours and plain.
_ALLOWED = re.compile(r"[A-Za-z0-9 .,/\-]+")
_SEPARATORS = re.compile(r"[ .,/\-]")
_EXAMPLE = "such as DE123456789"


class VatNumberError(ValueError):
    """A VAT number that cannot be accepted; the message says why, for the person, without repeating the input."""


def normalise_vat_number(raw: str) -> str:
    """``raw`` as a compact, upper-case EU VAT number (``DE136695976``); raises :class:`VatNumberError`."""
    if not isinstance(raw, str):
        raise VatNumberError("Enter the VAT number as text.")
    text = " ".join(raw.split())  # every kind of whitespace, line breaks included, as one space
    if not text:
        raise VatNumberError("Enter a VAT number, or leave the field empty to remove it.")
    if len(text) > MAX_INPUT:
        raise VatNumberError("That is too long for a VAT number: EU VAT numbers have at most 14 letters and digits, "
                             f"country code included, {_EXAMPLE}.")
    if not _ALLOWED.fullmatch(text):
        raise VatNumberError("A VAT number has only letters A–Z and digits 0–9 (spaces, dots and dashes between "
                             f"them are fine), {_EXAMPLE}.")
    compact = _SEPARATORS.sub("", text).upper()
    prefix = compact[:2]
    if prefix == "GR":  # Greece's ISO code; its VAT numbers use EL
        compact, prefix = "EL" + compact[2:], "EL"
    if len(compact) < 2 or not prefix.isalpha():
        raise VatNumberError(f"Start the VAT number with its country code, {_EXAMPLE}.")
    if prefix not in EU_PREFIXES:
        raise VatNumberError(f"Only VAT numbers of EU member states can be given here: start with the country code, "
                             f"{_EXAMPLE} (Greece: EL).")
    country = _country(prefix)
    try:
        number = eu_vat.validate(compact)
    except InvalidChecksum:
        raise VatNumberError(f"That is not a valid VAT number from {country}: its check digits do not match. "
                             "Check it for a typing mistake.") from None
    except InvalidLength:
        raise VatNumberError(f"That VAT number has the wrong number of characters for {country}.") from None
    except (InvalidComponent, ValidationError):
        raise VatNumberError(f"That is not in the format of VAT numbers from {country}.") from None
    except Exception:  # stdnum on input it did not foresee: still a plain answer, never a crash
        raise VatNumberError(f"That is not in the format of VAT numbers from {country}.") from None
    return str(number)


def set_vat_number(session: Session, settings: Settings, user_id: uuid.UUID, raw: str | None) -> str | None:
    """Store the person's VAT number (normalised), or remove it when ``raw`` is None or blank; returns what is
    stored. Raises :class:`VatNumberError`, storing nothing, when it cannot be accepted.
    Opens the credit account (with its sign-up bonus) when there is none yet."""
    number = None if raw is None or (isinstance(raw, str) and not raw.strip()) else normalise_vat_number(raw)
    table = CreditAccount.__table__  # type: ignore[attr-defined]
    change = (update(table).where(table.c.user_id == user_id).values(vat_number=number, updated_at=now())
              .returning(table.c.user_id))
    if session.execute(change).first() is None:
        if number is None:
            return None  # nothing to remove: no account is opened for it
        ledger.open_account(session, settings, user_id)
        session.execute(change)
    return number


def vat_number(session: Session, user_id: uuid.UUID) -> str | None:
    """The VAT number on the person's account, or None."""
    found = session.execute(select(CreditAccount.vat_number)  # type: ignore[call-overload]
                            .where(CreditAccount.user_id == user_id)).scalar_one_or_none()
    return str(found) if found else None


def _country(prefix: str) -> str:
    return str(Locale("en").territories.get("GR" if prefix == "EL" else prefix, prefix))
