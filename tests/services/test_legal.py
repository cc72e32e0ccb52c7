"""Legal documents: every section of the seed policy, tables rendered from the enforced configuration."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from PIL import Image as PILImage

from rupali import clock, cookies, legal, provenance, xmp
from rupali.config import Settings, get_settings
from rupali.db import session_scope
from rupali.services import legal as legal_service

SEED_SECTIONS = [
    "Who we are", "What we collect", "Why we use it and on what legal basis", "AI providers",
    "AI-generated images are marked", "We do not train on your content", "Your rights", "Age requirement",
    "How long we keep data", "Sub-processors", "International transfers", "Security", "Changes to this policy",
    "Contact",
]


def _text(document: legal.Document) -> str:
    return "\n".join(f"{section.title}\n{section.body}" for section in document.sections)


@pytest.mark.sqlite_only
def test_privacy_policy_covers_every_section_of_the_seed():
    assert [section.title for section in legal.privacy_policy(Settings()).sections] == SEED_SECTIONS


@pytest.mark.sqlite_only
def test_privacy_policy_states_the_seed_retention_periods():
    text = _text(legal.privacy_policy(Settings()))
    for row in ("| Account data | Until account deletion + 30 days |",
                "| Generated content | Until you delete them or they expire",
                "| Prompts | Until you delete them |",
                "| Transaction records | 7 years |",
                "| Technical logs | 90 days |",
                "| Cookie consent | 365 days |"):
        assert row in text


@pytest.mark.sqlite_only
def test_operator_details_and_rights_come_from_configuration():
    settings = Settings(operator_name="Example ApS", operator_address="Vesterbro 1, Aarhus",
                        operator_email="dpo@example.dk", supervisory_authority_name="Datatilsynet",
                        supervisory_authority_url="https://www.datatilsynet.dk", minimum_age=21)
    text = _text(legal.privacy_policy(settings))
    for fragment in ("**Example ApS**", "Vesterbro 1, Aarhus", "mailto:dpo@example.dk",
                     "[Datatilsynet](https://www.datatilsynet.dk)", "at least **21 years old**", "within **30 days**"):
        assert fragment in text


def _marking(settings: Settings) -> str:
    return next(section.body for section in legal.privacy_policy(settings).sections
                if section.title == "AI-generated images are marked")


@pytest.mark.sqlite_only
def test_the_marking_promise_names_the_certificate_that_really_signs(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", operator_name="Example ApS", operator_address="Aarhus",
                        operator_email="dpo@example.dk")
    text = _marking(settings)
    credentials = provenance.ContentCredentials.from_settings(settings)  # what the queue signs with
    signed = credentials.sign(_png(), "PNG", provenance.Origin(xmp.TRAINED, "Runware", "FLUX.1", clock.now()))
    found = credentials.inspect(signed, "PNG")
    assert found.intact and found.signer == credentials.signer_name
    assert f"Images are signed by **{found.signer}** (Example ApS)" in text
    assert "not a publicly trusted identity" in text
    # No expiry date: renewing the certificate must not make everyone accept the policy again.
    assert "can be checked while the signing certificate is valid." in text
    assert f"{credentials.valid_until:%Y}" not in text
    for promise in ("*trained algorithmic media*", "*algorithmic media*", "[Check an image](/verify)",
                    "never contain your name, e-mail address or account id", "JPEG and WebP files never carry"):
        assert promise in text


@pytest.mark.sqlite_only
def test_an_operator_certificate_and_timestamp_authority_are_stated_as_configured(tmp_path):
    chain, key = provenance.make_self_signed_chain("Studio Nord GmbH")
    (tmp_path / "chain.pem").write_bytes(chain)
    (tmp_path / "key.pem").write_bytes(key)
    settings = Settings(data_dir=tmp_path / "data", c2pa_certificate=tmp_path / "chain.pem",
                        c2pa_private_key=tmp_path / "key.pem", c2pa_tsa_url="https://tsa.example/rfc3161")
    text = _marking(settings)
    assert "Images are signed by **Studio Nord GmbH image signing** (Studio Nord GmbH)." in text
    assert "not a publicly trusted identity" not in text
    assert "time stamp from the time-stamping authority at https://tsa.example/rfc3161" in text
    assert not (tmp_path / "data" / provenance.BUNDLE_NAME).exists()  # nothing self-made when one is configured


def _png() -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (32, 32), (9, 90, 200)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.sqlite_only
def test_subprocessor_page_lists_exactly_what_is_configured():
    assert "no sub-processors" in _text(legal.subprocessor_list(Settings()))
    text = _text(legal.subprocessor_list(Settings(cdn_provider="cloudflare")))
    assert "| Cloudflare | CDN & security |" in text and "Railway" not in text


@pytest.mark.sqlite_only
def test_version_changes_when_an_enforced_setting_changes():
    before = legal.privacy_policy(Settings()).version
    after = legal.privacy_policy(Settings(retention_technical_log_days=30)).version
    assert before != after and before.startswith("1.0-")
    assert legal.privacy_policy(Settings()).version == before


@pytest.mark.sqlite_only
def test_data_inventory_table_is_generated_from_the_models():
    text = legal.data_inventory_table(Settings())
    assert "| User | E-mail address, full name" in text
    assert "| Cookie consent |" in text


def test_effective_date_is_when_a_version_was_first_published():
    settings = get_settings()
    with session_scope() as session:
        first = legal_service.current(session, "privacy", settings)
    with clock.travel(timedelta(days=10)), session_scope() as session:
        again = legal_service.current(session, "privacy", settings)
        assert again.effective_at == first.effective_at
        changed = legal_service.current(session, "privacy", Settings(retention_technical_log_days=30))
        assert changed.effective_at - first.effective_at >= timedelta(days=10)


@pytest.mark.sqlite_only
def test_cookie_policy_lists_every_declared_cookie_with_its_flags_and_lifetime():
    settings = Settings(session_absolute_days=14)
    text = _text(legal.cookie_policy(settings))
    assert "We use two essential cookies." in text
    for cookie in cookies.declared(settings):
        assert f"| `{cookie.name}` | {cookie.purpose} | Essential | {cookie.describe_flags()} | " in text
    assert "| `rupali_auth` |" in text and "| 14 days, or until you sign out |" in text
    assert "| `rupali_session` |" in text and "| 365 days, renewed on each visit |" in text
    assert "Secure" not in text  # a development instance on plain http sends no Secure cookies


@pytest.mark.sqlite_only
def test_https_is_promised_only_when_the_public_url_is_https(monkeypatch):
    plain = _text(legal.privacy_policy(Settings(public_url="http://studio.lan:8080")))
    assert "HTTPS" not in plain and "Passwords are stored only as Argon2id hashes" in plain
    for name, value in {"RUPALI_ENV": "production", "RUPALI_PUBLIC_URL": "https://images.example.com",
                        "RUPALI_OPERATOR_NAME": "Example ApS", "RUPALI_OPERATOR_ADDRESS": "Vesterbro 1",
                        "RUPALI_OPERATOR_EMAIL": "dpo@example.dk", "RUPALI_SMTP_HOST": "smtp.example.com"}.items():
        monkeypatch.setenv(name, value)
    production = Settings()
    secure = _text(legal.privacy_policy(production))
    assert "Traffic is encrypted in transit (HTTPS)." in secure and "sent over HTTPS only" in secure
    assert _text(legal.cookie_policy(production)).count("HttpOnly, SameSite=Lax, Secure") == 2


@pytest.mark.sqlite_only
def test_the_rights_section_states_the_numbers_the_code_enforces():
    """Each number is rendered from what the services use: the tests of those services prove the behaviour
    (tests/services/test_export.py, test_deletion.py, test_preferences.py, test_privacy_requests.py)."""
    from rupali.policy import EXPORT_DAYS
    from rupali.services import exports

    text = _text(legal.privacy_policy(Settings(retention_account_grace_days=14, gdpr_response_days=21)))
    assert "For **14 days** you can change your mind by signing in" in text
    assert "we answer within **21 days**" in text
    assert f"it can be downloaded for {EXPORT_DAYS} days" in text
    assert exports.MIN_INTERVAL.total_seconds() == 24 * 3600
    assert "You can ask for one a day" in text
    immediate = _text(legal.privacy_policy(Settings(retention_account_grace_days=0)))
    assert "change your mind" not in immediate and "Then your account, images" in immediate
    assert "one-click unsubscribe link that works without signing in" in text
    assert "accept the new version before you go on" in text


@pytest.mark.sqlite_only
def test_the_terms_describe_the_acceptance_of_changes_that_the_gate_enforces():
    """tests/pages/test_privacy_center.py::test_a_changed_policy_must_be_accepted_before_going_on proves it."""
    text = _text(legal.terms(Settings()))
    assert "you accept the new version before you go on" in text
    assert "announce" not in text  # no advance announcement is sent, so none is promised


# --- the billing mode: nothing about money when off, credits without a processor, Creem when it sells -----------------

CREEM = {"billing": "creem", "creem_api_key": "creem_test_key", "creem_webhook_secret": "whsec_test",
         "credit_packs": '[{"key": "starter", "product_id": "prod_1", "credits": 100, "price_cents": 500, '
                         '"currency": "EUR", "label": "100 credits"}]'}
# Words that only belong on a page about money. Whole words (prefixes allowed: "payments", "purchases"), so "private"
# is not "VAT"; VAT must be in capitals to count.
MONEY = [r"\bCreem\b", r"\bVAT\b", r"\bpurchas", r"\bpayment", r"\binvoice", r"\brefund", r"\bchargeback",
         r"\bmerchant", r"\bcard details", r"\bcredit", r"\bsell", r"\bsold\b", r"\bprice"]
PROCESSOR = [r"\bCreem\b", r"\bVAT\b", r"\bpurchas", r"\binvoice", r"\brefund", r"\bchargeback", r"\bmerchant",
             r"\bcard details", r"\bcredit pack"]


def _all_documents(settings: Settings) -> str:
    return "\n".join(_text(legal.document(slug, settings)) for slug in legal.SLUGS)


def _found(patterns: list[str], text: str) -> list[str]:
    return [pattern for pattern in patterns
            if re.search(pattern, text, 0 if pattern == r"\bVAT\b" else re.IGNORECASE)]


@pytest.mark.sqlite_only
def test_with_billing_off_no_legal_page_speaks_of_money():
    settings = Settings()
    assert settings.billing == "off"
    text = _all_documents(settings)
    assert _found(MONEY, text) == []
    # The retention rule for transaction records is enforced in every mode; the table says none are made here.
    assert "| Transaction records | 7 years | Tax law requirement (this installation makes none: generating " \
           "images here is free) |" in text
    assert "Transaction records are kept for the period tax law requires" not in text
    inventory_table = legal.data_inventory_table(settings)
    assert "| Credit " not in inventory_table and "| User |" in inventory_table
    assert "Generating images on this installation is free." in _text(legal.terms(settings))


@pytest.mark.sqlite_only
def test_with_credits_the_pages_describe_credits_and_no_payment_processor():
    settings = Settings(billing="credits", credits_signup_bonus=25, credits_daily_allowance=5)
    text = _all_documents(settings)
    assert _found(PROCESSOR, text) == []
    privacy = _text(legal.privacy_policy(settings))
    assert [section.title for section in legal.privacy_policy(settings).sections][3] == "Credits"
    for fragment in ("**Credits:** your credit balance and its history",
                     "You receive 25 free credits once", "topped up to 5 credits, without rollover",
                     "only the images delivered are charged", "fails, is blocked or is cancelled costs nothing",
                     "Credits are not sold on this installation and no payment processor is involved",
                     "your gallery and credit balance | Performance of a contract",
                     "| Credit account | Your credit balance, daily allowance and balance-alert state |",
                     "| Credit entry | Your credit history",
                     "(this installation makes none: credits are not sold here)"):
        assert fragment in privacy, fragment
    assert "| Credit order |" not in privacy and "| Credit purchase entry |" not in privacy
    terms_text = _text(legal.terms(settings))
    assert "Generating images costs credits." in terms_text and "Credits are not sold here" in terms_text
    assert "no sub-processors" in _text(legal.subprocessor_list(settings))


@pytest.mark.sqlite_only
def test_with_creem_the_pages_name_creem_and_say_what_a_purchase_collects():
    settings = Settings(**CREEM)
    subprocessor_page = _text(legal.subprocessor_list(settings))
    assert ("| Creem | Payment processing & tax compliance (merchant of record) | E-mail address, country, VAT "
            "number, order details; card details are entered at Creem, never at Rupali | Estonia (EU) | EU-based |"
            ) in subprocessor_page
    privacy = _text(legal.privacy_policy(settings))
    assert "| Creem | Payment processing & tax compliance (merchant of record) |" in privacy  # its own section too
    assert [section.title for section in legal.privacy_policy(settings).sections][3] == "Credits and payments"
    for fragment in ("transaction ids and order details (pack, credits, price and currency)", "the amounts and dates",
                     "your country code (for VAT)", "if you give one, your VAT number",
                     "**Card details are entered at Creem only and never reach us.**",
                     "Card details are entered at Creem, our payment processor, and never reach us.",
                     "These transaction records are kept for **7 years**, as tax law requires",
                     "A **refund or chargeback reverses the credits** of that purchase",
                     "| Invoices, VAT and keeping transaction records | Legal obligation |",
                     "| Selling credit packs through Creem, receipts, refunds and chargebacks |",
                     "| Transaction records | 7 years | Tax law requirement |",
                     "Transaction records are kept for the period tax law requires even after account deletion",
                     "| Credit order | Your credit orders", "| Credit purchase entry |",
                     "and the VAT number you gave"):
        assert fragment in privacy, fragment
    ten_years = _text(legal.privacy_policy(Settings(**CREEM, retention_transaction_years=10)))
    assert "kept for **10 years**, as tax law requires" in ten_years
    terms_text = _text(legal.terms(settings))
    assert "Credit packs are sold by **Creem** as merchant of record" in terms_text
    assert "A refund or chargeback takes that purchase's credits back" in terms_text
    # Enforced by the dispute webhook (tests/services/test_creem_webhooks.py) and the page (test_billing_page.py).
    assert "while a chargeback (payment dispute) is open, buying more credits is paused" in terms_text
    assert _found(MONEY, _text(legal.cookie_policy(settings))) == []  # cookies have nothing to do with it


@pytest.mark.sqlite_only
def test_the_billing_mode_changes_the_policy_version():
    versions = {legal.privacy_policy(settings).version
                for settings in (Settings(), Settings(billing="credits"), Settings(**CREEM))}
    assert len(versions) == 3


@pytest.mark.sqlite_only
def test_the_policy_describes_the_technical_log_only_while_it_is_recorded():
    recorded = _text(legal.privacy_policy(Settings()))
    assert "for every page you open and every request" in recorded and "never what you typed" in recorded
    assert "| Request log | Technical log: time, page or address pattern" in recorded  # the inventory table
    unrecorded = _text(legal.privacy_policy(Settings(technical_log=False)))
    assert "for every page you open" not in unrecorded and "sign-in times" in unrecorded
