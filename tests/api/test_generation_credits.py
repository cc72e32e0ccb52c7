"""The API with credits: prices in the model list, 402 for a balance that does not cover a request, and none of it
when billing is off."""

from __future__ import annotations

import pytest
from nicegui.testing import User
from sqlmodel import select

from rupali.config import reset_settings
from rupali.db import session_scope
from rupali.models import CreditAccount, Generation
from rupali.services import api_keys, ledger
from tests.utils.factories import make_user

OFFLINE = "offline:sketch-v1"
BODY = {"prompt": "a lighthouse on a cliff at golden hour", "model": OFFLINE, "width": 512, "height": 512}


@pytest.fixture
def billing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credits mode with a bonus of 3 and the default size tiers (up to 768², 1024², larger); set before the app
    is built (list it before ``user``)."""
    monkeypatch.setenv("RUPALI_BILLING", "credits")
    monkeypatch.setenv("RUPALI_CREDITS_SIGNUP_BONUS", "3")
    monkeypatch.setenv("RUPALI_CREDITS_SIZE_TIERS", "768x768=1,1024x1024=2,*=4")
    reset_settings()


def _key_for(person) -> dict[str, str]:
    with session_scope() as session:
        _, secret = api_keys.create(session, person, "tests")
    return {"Authorization": f"Bearer {secret}"}


def _balance(person) -> int:
    with session_scope() as session:
        return session.get(CreditAccount, person.id).balance


async def test_a_balance_that_does_not_cover_the_request_is_a_402_and_nothing_is_queued(billing, user: User):
    person = make_user()
    headers = _key_for(person)
    accepted = await user.http_client.post("/api/v1/generations", json=BODY | {"count": 2}, headers=headers)
    assert accepted.status_code == 202, accepted.text
    assert _balance(person) == 1  # 2 held of the 3
    refused = await user.http_client.post("/api/v1/generations", json=BODY | {"count": 2}, headers=headers)
    assert refused.status_code == 402
    assert refused.headers["content-type"] == "application/json"
    assert refused.json() == {"detail": "This costs 2 credits and you have 1 left."}
    with session_scope() as session:
        assert [str(g.id) for g in session.exec(select(Generation)).all()] == [accepted.json()["id"]]
        assert ledger.ledger_sum(session, person.id) == _balance(person)
    # A bigger size costs more: 1024² is the second tier, 2 credits an image.
    big = await user.http_client.post("/api/v1/generations", headers=headers,
                                      json=BODY | {"width": 1024, "height": 1024})
    assert big.status_code == 402 and big.json()["detail"] == "This costs 2 credits and you have 1 left."


async def test_the_model_list_carries_prices_when_billing_is_on(billing, user: User):
    headers = _key_for(make_user())
    models = {model["key"]: model for model in
              (await user.http_client.get("/api/v1/models", headers=headers)).json()}
    offline = models[OFFLINE]
    assert offline["credits_per_image"] == 2  # its default size, 1024², is in the second tier
    assert offline["price_tiers"] == [{"up_to_pixels": 768 * 768, "credits_per_image": 1},
                                      {"up_to_pixels": 1024 * 1024, "credits_per_image": 2},
                                      {"up_to_pixels": None, "credits_per_image": 4}]


@pytest.fixture
def own_prices(billing, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUPALI_CREDITS_MODEL_PRICES", f"{OFFLINE}=0/5/9")
    reset_settings()


async def test_a_models_own_prices_replace_the_tiers(own_prices, user: User):
    headers = _key_for(make_user())
    models = {model["key"]: model for model in
              (await user.http_client.get("/api/v1/models", headers=headers)).json()}
    assert models[OFFLINE]["credits_per_image"] == 5
    assert [tier["credits_per_image"] for tier in models[OFFLINE]["price_tiers"]] == [0, 5, 9]


async def test_with_billing_off_there_are_no_prices_and_no_402(user: User):
    person = make_user()
    headers = _key_for(person)
    models = (await user.http_client.get("/api/v1/models", headers=headers)).json()
    assert models and all(model["credits_per_image"] is None and model["price_tiers"] is None for model in models)
    for _ in range(3):  # free: however many, never refused for credits
        created = await user.http_client.post("/api/v1/generations", json=BODY | {"count": 4}, headers=headers)
        assert created.status_code == 202, created.text
    with session_scope() as session:
        assert session.get(CreditAccount, person.id) is None  # no account, no ledger


async def test_the_openapi_description_documents_the_prices_and_the_402(user: User):
    schema = (await user.http_client.get("/api/openapi.json")).json()
    create = schema["paths"]["/v1/generations"]["post"]["responses"]
    assert "does not cover the request" in create["402"]["description"]
    model = schema["components"]["schemas"]["ModelOut"]["properties"]
    assert "null when this installation does not charge" in model["credits_per_image"]["description"]
    assert "null when generations are not charged" in model["price_tiers"]["description"]
    assert "answered with **402**" in schema["info"]["description"]
