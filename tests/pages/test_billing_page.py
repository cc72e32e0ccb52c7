"""The billing page through its controls: balance, packs, VAT number, orders, chart, ledger filters, success page,
and the administrator's credit panel."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from nicegui import ui
from nicegui.testing import User
from sqlmodel import select

from components.choice_group import ChoiceGroup
from rupali import clock
from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.models import CreditAccount, CreditEntry, CreditOrder, EntryKind, OrderStatus, Role
from rupali.privacy import inventory
from rupali.services import ledger
from tests.pages.test_hostile_text import HOSTILE
from tests.utils.factories import make_user
from tests.utils.links import links
from tests.utils.signin import sign_in

PACKS = [{"key": "starter", "product_id": "prod_starter", "credits": 500, "price_cents": 500, "currency": "EUR",
          "label": "Starter"},
         {"key": "studio", "product_id": "prod_studio", "credits": 2500, "price_cents": 2000, "currency": "EUR",
          "label": "Studio"}]


@pytest.fixture
def credits_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Billing as quotas (before the app is built: ask for this fixture before ``user``)."""
    monkeypatch.setenv("RUPALI_BILLING", "credits")
    monkeypatch.setenv("RUPALI_CREDITS_SIGNUP_BONUS", "50")
    reset_settings()


@pytest.fixture
def creem_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credit packs through Creem; the API address answers nothing, so a Buy fails cleanly."""
    monkeypatch.setenv("RUPALI_BILLING", "creem")
    monkeypatch.setenv("RUPALI_CREEM_API_KEY", "creem_test_key")
    monkeypatch.setenv("RUPALI_CREEM_WEBHOOK_SECRET", "whsec_test")
    monkeypatch.setenv("RUPALI_CREEM_API_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("RUPALI_CREDIT_PACKS", json.dumps(PACKS))
    reset_settings()


def _click_labelled(user: User, label: str) -> None:
    [button] = [button for button in user.find(kind=ui.button).elements if button.props.get("aria-label") == label]
    interaction = user.find(kind=ui.button)
    interaction.elements = {button}
    interaction.click()


def _paid_order(user_id: uuid.UUID, **values: object) -> uuid.UUID:
    with session_scope() as session:
        order = CreditOrder(user_id=user_id, pack_key="starter", product_id="prod_starter", label="Starter",
                            credits=500, amount=500, currency="EUR", status=OrderStatus.PAID, paid_amount=500,
                            paid_at=clock.now(), country="DE", **values)
        session.add(order)
        session.flush()
        ledger.post_payment(session, get_settings(), user_id, EntryKind.PURCHASE, 500, reference="Starter pack",
                            key=f"purchase:{order.id}")
        return order.id


async def test_credits_mode_shows_the_balance_what_it_buys_and_the_history(credits_mode, user: User):
    person = make_user()
    await sign_in(user, person.email)
    await user.open("/studio")
    await user.should_see("Generate")
    assert links(user)["Billing"] == "/billing"  # in the navigation now
    await user.open("/billing")
    await user.should_see("Balance: 50 credits")
    await user.should_see("Enough for about")
    await user.should_see("Sign-up bonus")
    await user.should_see("No credits used in the last 30 days.")
    for word in ("Buy", "VAT number", "Creem", "Orders"):  # quotas only: nothing to pay
        await user.should_not_see(word)


async def test_the_ledger_filters_by_kind_and_the_chart_counts_credits_used(credits_mode, user: User):
    person, admin = make_user(), make_user(role=Role.ADMIN)
    with session_scope() as session:
        account, boss = session.get(type(person), person.id), session.get(type(admin), admin.id)
        ledger.grant(session, get_settings(), account, 30, reason="Workshop <b>quota</b>", actor=boss)
        session.add(CreditEntry(user_id=person.id, kind=EntryKind.RESERVE, delta=-6, balance_after=74,
                                reference="4 images", idempotency_key=f"reserve:{uuid.uuid4()}",
                                created_at=clock.now() - timedelta(days=2)))
    await sign_in(user, person.email)
    await user.open("/billing")
    await user.should_see("Workshop <b>quota</b>")  # a reason is text, never markup
    await user.should_see("6 credits used in the last 30 days")
    user.find(kind=ui.select, content="Kind").click()
    user.find("Grant").click()
    await user.should_see("Showing 1 entry.", retries=50)
    await user.should_not_see("Sign-up bonus")
    [period] = [group for group in user.find(kind=ChoiceGroup).elements if group.props["label"] == "Period"]
    with user.client:
        period.set_value(90)  # the group's "90 days" button, as a click on it does in the browser
    await user.should_see("6 credits used in the last 90 days", retries=50)


async def test_creem_mode_lists_packs_and_a_failed_checkout_says_so_and_charges_nothing(creem_mode, user: User):
    person = make_user()
    await sign_in(user, person.email)
    await user.open("/billing")
    await user.should_see("Starter")
    await user.should_see("5.00 EUR")
    await user.should_see("2,500 credits")
    await user.should_see("merchant of record")
    _click_labelled(user, "Buy Starter: 500 credits for 5.00 EUR")  # Creem cannot be reached in this test
    await user.should_see("The payment provider could not be reached", retries=100)
    with session_scope() as session:
        [order] = session.exec(select(CreditOrder).where(CreditOrder.user_id == person.id)).all()
        assert order.status == OrderStatus.FAILED
        assert ledger.balance(session, get_settings(), person.id) == get_settings().credits_signup_bonus
    await user.should_see("No orders yet.")  # a checkout that never started is no order


async def test_vat_number_is_checked_and_saved(creem_mode, user: User):
    person = make_user()
    await sign_in(user, person.email)
    await user.open("/billing")
    await user.should_see("not verified with the EU's VIES service")
    field = user.find(kind=ui.input, content="EU VAT number")
    field.type("DE 136 695 977")
    user.find("Save VAT number").click()
    await user.should_see("check digits do not match", retries=50)
    field.clear().type("de136695976")
    user.find("Save VAT number").click()
    await user.should_see("Saved: DE136695976.", retries=50)
    with session_scope() as session:
        assert session.get(CreditAccount, person.id).vat_number == "DE136695976"
    field.clear().type("\"'\\\x00<script>")
    user.find("Save VAT number").click()
    await user.should_see("letters A–Z and digits", retries=50)
    with session_scope() as session:
        assert session.get(CreditAccount, person.id).vat_number == "DE136695976"  # a mistake loses nothing


async def test_orders_show_status_and_a_receipt_link_only_for_my_own(creem_mode, user: User):
    person, other = make_user(), make_user()
    mine = _paid_order(person.id)
    theirs = _paid_order(other.id, vat_number="FR40303265045")
    await sign_in(user, person.email)
    await user.open("/billing")
    await user.should_see("Paid")
    links = {link.props["href"] for link in user.find(ui.link).elements}
    assert f"/billing/receipts/{mine}.pdf" in links and f"/billing/receipts/{theirs}.pdf" not in links
    await user.should_see("Purchase")


async def test_a_disputed_account_cannot_buy(creem_mode, user: User):
    person = make_user()
    with session_scope() as session:
        ledger.open_account(session, get_settings(), person.id)
        session.get(CreditAccount, person.id).purchases_frozen_at = clock.now()
    await sign_in(user, person.email)
    await user.open("/billing")
    await user.should_see("Purchases are paused for your account")
    assert all(not button.enabled for button in user.find(kind=ui.button, content="Buy").elements)


async def test_the_success_page_waits_for_the_webhook_and_never_grants_from_the_redirect(creem_mode, user: User):
    person = make_user()
    with session_scope() as session:
        order = CreditOrder(user_id=person.id, pack_key="starter", product_id="prod_starter", label="Starter",
                            credits=500, amount=500, currency="EUR")
        session.add(order)
        session.flush()
        order_id = order.id
    await sign_in(user, person.email)
    # Everything a forged redirect could carry: it is not read.
    await user.open(f"/billing/success?order={order_id}&checkout_id=ch_1&order_id=ord_1&signature=forged")
    await user.should_see("your credits arrive in a moment", retries=50)
    with session_scope() as session:
        assert ledger.balance(session, get_settings(), person.id) == get_settings().credits_signup_bonus
        session.get(CreditOrder, order_id).status = OrderStatus.PAID  # what the signed webhook does
    await user.should_see("500 credits added to your balance", retries=100)


async def test_the_success_page_does_not_show_another_persons_order(creem_mode, user: User):
    person, other = make_user(), make_user()
    theirs = _paid_order(other.id)
    await sign_in(user, person.email)
    for order in (str(theirs), "not-a-uuid", "'\"\\<>"):
        await user.open(f"/billing/success?order={order}")
        await user.should_see("We could not find that order.", retries=50)
        await user.should_not_see("500 credits added")


async def test_an_administrator_grants_revokes_and_sets_an_allowance(credits_mode, user: User):
    admin, person = make_user(role=Role.ADMIN), make_user(email="grace@example.com")
    await sign_in(user, admin.email)
    await user.open("/admin")
    await user.should_see("Grant or revoke")
    user.find(kind=ui.input, content="Account to grant to (e-mail)").type("Grace@Example.com")
    user.find(kind=ui.number, content="Credits (negative to revoke)").type("25")
    user.find(kind=ui.input, content="Reason (recorded)").type("Hackathon")
    user.find("Record grant").click()
    await user.should_see("Granted 25 credits. Balance now 75.", retries=50)
    user.find("Record grant").click()  # no new numbers: a new form filling needs the amount again
    await user.should_see("Enter a whole number of credits", retries=50)
    user.find(kind=ui.number, content="Credits (negative to revoke)").type("-1000")
    user.find(kind=ui.input, content="Reason (recorded)").type("Oops")
    user.find("Record grant").click()
    await user.should_see("Cannot revoke 1000 credits", retries=50)
    user.find(kind=ui.input, content="Account for the allowance (e-mail)").type("grace@example.com")
    user.find(kind=ui.number, content="Daily allowance (credits)").type("20")
    user.find("Set allowance").click()
    await user.should_see("Daily allowance of grace@example.com set to 20 credits", retries=50)
    with session_scope() as session:
        assert session.get(CreditAccount, person.id).daily_allowance == 20
        grants = session.exec(select(CreditEntry).where(CreditEntry.user_id == person.id,
                                                        CreditEntry.kind == EntryKind.GRANT)).all()
        assert [(entry.delta, entry.reference, entry.actor_id) for entry in grants] == [(25, "Hackathon", admin.id)]


async def test_the_administrator_sees_orders_needing_attention(creem_mode, user: User):
    admin, person = make_user(role=Role.ADMIN), make_user(email="grace@example.com")
    _paid_order(person.id)
    with session_scope() as session:
        session.add(CreditOrder(user_id=person.id, pack_key="studio", product_id="prod_studio", label="Studio",
                                credits=2500, amount=2000, currency="EUR", status=OrderStatus.FLAGGED,
                                flag_reason="paid 10.00 EUR, expected 20.00 EUR"))
    await sign_in(user, admin.email)
    await user.open("/admin")
    await user.should_see("Needs attention (1)")
    await user.should_see("paid 10.00 EUR, expected 20.00 EUR")
    await user.should_see("Webhook deliveries")


async def test_an_administrator_resumes_purchases_after_a_dispute(creem_mode, user: User):
    admin, person = make_user(role=Role.ADMIN), make_user(email="grace@example.com")
    with session_scope() as session:
        ledger.open_account(session, get_settings(), person.id)
    await sign_in(user, admin.email)
    await user.open("/admin")
    field = user.find(kind=ui.input, content="Account to resume purchases for (e-mail)")
    field.type("grace@example.com")
    user.find(kind=ui.button, content="Resume purchases").click()
    await user.should_see("Purchases are not paused for that account.", retries=50)
    with session_scope() as session:
        session.get(CreditAccount, person.id).purchases_frozen_at = clock.now()
    user.find(kind=ui.button, content="Resume purchases").click()
    await user.should_see("grace@example.com can buy credits again.", retries=50)
    with session_scope() as session:
        assert session.get(CreditAccount, person.id).purchases_frozen_at is None


async def test_hostile_grant_reasons_render_verbatim_in_the_credit_history(credits_mode, user: User):
    person, admin = make_user(), make_user(role=Role.ADMIN)
    with session_scope() as session:
        account, boss = session.get(type(person), person.id), session.get(type(admin), admin.id)
        for text in HOSTILE.values():
            ledger.grant(session, get_settings(), account, 1, reason=text, actor=boss)
    await sign_in(user, person.email)
    await user.open("/billing")
    for text in HOSTILE.values():
        await user.should_see(text)


async def test_the_privacy_center_lists_the_billing_records_when_credits_are_sold(creem_mode, user: User):
    person = make_user()
    _paid_order(person.id)
    await sign_in(user, person.email)
    await user.open("/privacy")
    for entry in inventory.entries():
        if entry.model.__module__ == "rupali.models.billing":
            await user.should_see(entry.declaration.holds)
