"""VAT numbers: EU numbers accepted in the forms people type them and stored compact; wrong check digits, other
countries' numbers and hostile text refused with a plain message; cleared when blank; kept on the credit account."""

from __future__ import annotations

import pytest
from sqlmodel import select

from rupali.config import get_settings
from rupali.db import session_scope
from rupali.models import CreditAccount, CreditEntry, EntryKind
from rupali.services import ledger, tax
from tests.utils.factories import make_user

# Published example numbers (python-stdnum's documentation and test data), as people might type them.
VALID = [
    ("ATU57194903", "ATU57194903"),
    ("be 0697.449.992", "BE0697449992"),
    ("BE697449992", "BE0697449992"),  # the old nine-digit form gains its leading zero
    ("DE 136 695 976", "DE136695976"),
    ("ES B-58378431", "ESB58378431"),
    ("FR 61 954 506 077", "FR61954506077"),
    ("IE 6433435F", "IE6433435F"),
    ("IT 00743110157", "IT00743110157"),
    ("nl004495445b01", "NL004495445B01"),
    ("PL 856-734-62-15", "PL8567346215"),
    ("DK 13 58 56 28", "DK13585628"),
    ("SE 1234567897 01", "SE123456789701"),
    ("CZ 25123891", "CZ25123891"),
    ("EL094014201", "EL094014201"),
    ("GR 094014201", "EL094014201"),  # Greece's ISO code: its VAT numbers use EL
    ("\tde136695976\n", "DE136695976"),
]


@pytest.mark.sqlite_only
@pytest.mark.parametrize(("typed", "stored"), VALID)
def test_eu_numbers_are_accepted_and_made_compact(typed, stored):
    assert tax.normalise_vat_number(typed) == stored


@pytest.mark.sqlite_only
@pytest.mark.parametrize(("typed", "message"), [
    ("DE136695978", "not a valid VAT number from Germany: its check digits do not match"),
    ("FR 62 954 506 077", "not a valid VAT number from France: its check digits do not match"),
    ("ATU57194904", "not a valid VAT number from Austria"),
    ("NL004495446B01", "not a valid VAT number from Netherlands"),
    ("DE13669597", "wrong number of characters for Germany"),
    ("DE 1366959761", "wrong number of characters for Germany"),
    ("EL 09401420", "Greece"),
])
def test_wrong_check_digits_and_lengths_are_named_with_the_country(typed, message):
    with pytest.raises(tax.VatNumberError, match=message):
        tax.normalise_vat_number(typed)


@pytest.mark.sqlite_only
@pytest.mark.parametrize("typed", ["GB980780684", "XI123456782", "CH-123.456.789", "US12345", "NO 974760673",
                                   "EU372000041", "IM123456789"])
def test_numbers_of_countries_outside_the_eu_are_refused(typed):
    with pytest.raises(tax.VatNumberError, match="Only VAT numbers of EU member states"):
        tax.normalise_vat_number(typed)


@pytest.mark.sqlite_only
@pytest.mark.parametrize("typed", ["136695976", "1", "D"])
def test_a_number_without_its_country_code_is_refused(typed):
    with pytest.raises(tax.VatNumberError, match="Start the VAT number with its country code"):
        tax.normalise_vat_number(typed)


HOSTILE = ["", "   ", "\x00", "DE\x00136695976", "\ud800", "DE\udfff136695976", "x" * 10_240, "DE" + "1" * 10_000,
           "٣٤٥٦٧٨٩", "DE１３６６９５９７６", "DE136695976\u202e", "<script>alert(1)</script>", "'; DROP TABLE user;--",
           "DE 136 695 976 🇩🇪", "\u200bDE136695976", "%s%s%n", "${jndi:ldap://x}", "DE../../etc/passwd"]


@pytest.mark.sqlite_only
@pytest.mark.parametrize("typed", HOSTILE)
def test_hostile_text_gets_a_plain_message_and_never_another_exception(typed):
    with pytest.raises(tax.VatNumberError) as refused:
        tax.normalise_vat_number(typed)
    message = str(refused.value)
    assert 10 < len(message) < 200 and message.isprintable()
    assert typed.strip() == "" or typed.strip() not in message  # never repeats what was typed


@pytest.mark.sqlite_only
@pytest.mark.parametrize("typed", [None, 5, b"DE136695976"])
def test_something_other_than_text_is_refused_the_same_way(typed):
    with pytest.raises(tax.VatNumberError, match="as text"):
        tax.normalise_vat_number(typed)


@pytest.mark.sqlite_only
def test_the_offline_note_says_what_the_check_is_not():
    assert "offline" in tax.OFFLINE_NOTE and "VIES" in tax.OFFLINE_NOTE and "format" in tax.OFFLINE_NOTE


def test_a_number_is_stored_on_the_account_opened_for_it_and_cleared_when_blank(backend):
    person = make_user()
    settings = get_settings()
    with session_scope() as session:
        assert tax.vat_number(session, person.id) is None
        assert session.get(CreditAccount, person.id) is None
        assert tax.set_vat_number(session, settings, person.id, "de 136 695 976") == "DE136695976"
    with session_scope() as session:
        assert tax.vat_number(session, person.id) == "DE136695976"
        # Opened through the ledger: the sign-up bonus came with it, once.
        bonus = session.exec(select(CreditEntry).where(CreditEntry.user_id == person.id,
                                                       CreditEntry.kind == EntryKind.BONUS)).all()
        assert len(bonus) == 1 and ledger.ledger_sum(session, person.id) == ledger.balance(session, settings, person.id)
        assert tax.set_vat_number(session, settings, person.id, "FR61954506077") == "FR61954506077"
    with session_scope() as session:
        assert tax.vat_number(session, person.id) == "FR61954506077"
        assert tax.set_vat_number(session, settings, person.id, "   ") is None
    with session_scope() as session:
        assert tax.vat_number(session, person.id) is None
        assert session.get(CreditAccount, person.id) is not None  # the account stays; only the number went
        tax.set_vat_number(session, settings, person.id, "ATU57194903")
        assert tax.set_vat_number(session, settings, person.id, None) is None
    with session_scope() as session:
        assert tax.vat_number(session, person.id) is None


def test_a_refused_number_changes_nothing(backend):
    person = make_user()
    settings = get_settings()
    with session_scope() as session:
        tax.set_vat_number(session, settings, person.id, "DE136695976")
    with session_scope() as session, pytest.raises(tax.VatNumberError):
        tax.set_vat_number(session, settings, person.id, "DE136695978")
    with session_scope() as session:
        assert tax.vat_number(session, person.id) == "DE136695976"


def test_clearing_without_an_account_opens_none_and_numbers_are_per_person(backend):
    person, other = make_user(), make_user()
    settings = get_settings()
    with session_scope() as session:
        assert tax.set_vat_number(session, settings, person.id, None) is None
        assert tax.set_vat_number(session, settings, person.id, "") is None
        assert session.get(CreditAccount, person.id) is None
        ledger.open_account(session, settings, other.id)
        tax.set_vat_number(session, settings, other.id, "NL004495445B01")
    with session_scope() as session:
        assert tax.vat_number(session, person.id) is None
        assert tax.vat_number(session, other.id) == "NL004495445B01"
