"""Pricing from the settings: size tiers, per-model prices, steps and image-to-image factors; nonsense refused."""

from __future__ import annotations

import pytest

from rupali.config import ConfigError, Settings, get_settings, reset_settings
from rupali.pricing import Pricing
from rupali.runtime import Runtime
from rupali.services.credits import FreeGeneration
from rupali.services.ledger import LedgerCredits

pytestmark = pytest.mark.sqlite_only

FLUX = "runware:runware:101@1"


def _pricing(**settings) -> Pricing:
    return Pricing.from_settings(Settings(**settings))


def test_defaults_are_off_and_price_by_size():
    settings = Settings()
    assert settings.billing == "off" and not settings.billing_enabled
    pricing = Pricing.from_settings(settings)
    quote = pricing.quote
    assert quote(model_key=FLUX, width=512, height=512, steps=4, count=1) == 1
    assert quote(model_key=FLUX, width=768, height=768, steps=4, count=1) == 1  # the bound is inclusive
    assert quote(model_key=FLUX, width=1024, height=768, steps=4, count=1) == 2
    assert quote(model_key=FLUX, width=1024, height=1024, steps=4, count=3) == 6
    assert quote(model_key=FLUX, width=1536, height=1024, steps=4, count=1) == 4
    assert quote(model_key=FLUX, width=4096, height=4096, steps=4, count=2) == 8


def test_a_model_price_replaces_the_tiers_for_that_model_only():
    pricing = _pricing(credits_size_tiers="512x512=1,1024x1024=3,*=5",
                       credits_model_prices=f"offline:sketch-v1=0, {FLUX}=2/4/7")
    assert pricing.quote(model_key="offline:sketch-v1", width=2048, height=2048, steps=50, count=4) == 0
    assert [pricing.per_image(model_key=FLUX, width=side, height=side, steps=4) for side in (512, 1024, 2048)] == [
        2, 4, 7]
    assert [pricing.per_image(model_key="a1111:sdxl", width=side, height=side, steps=4)
            for side in (512, 1024, 2048)] == [1, 3, 5]


def test_steps_above_the_included_ones_and_image_to_image_cost_more_rounded_up():
    pricing = _pricing(credits_size_tiers="*=2", credits_steps_included=30, credits_steps_factor=0.05,
                       credits_img2img_factor=1.5)
    price = pricing.per_image
    assert price(model_key=FLUX, width=512, height=512, steps=30) == 2  # included
    assert price(model_key=FLUX, width=512, height=512, steps=10) == 2  # fewer steps never cost less
    assert price(model_key=FLUX, width=512, height=512, steps=40) == 3  # 2 * 1.5 = 3
    assert price(model_key=FLUX, width=512, height=512, steps=31) == 3  # 2 * 1.05 = 2.1, rounded up
    assert price(model_key=FLUX, width=512, height=512, steps=30, image_to_image=True) == 3
    assert price(model_key=FLUX, width=512, height=512, steps=40, image_to_image=True) == 5  # 2 * 1.5 * 1.5 = 4.5
    # Decimal arithmetic: 10 * 1.1 is exactly 11, not 11.000000000000002 rounded up to 12.
    exact = _pricing(credits_size_tiers="*=10", credits_img2img_factor=1.1)
    assert exact.per_image(model_key=FLUX, width=1, height=1, steps=1, image_to_image=True) == 11
    assert pricing.quote(model_key=FLUX, width=512, height=512, steps=40, count=4, image_to_image=True) == 20


@pytest.mark.parametrize(("name", "value", "message"), [
    ("RUPALI_BILLING", "stripe", "RUPALI_BILLING"),
    ("RUPALI_CREDITS_SIGNUP_BONUS", "-5", "RUPALI_CREDITS_SIGNUP_BONUS"),
    ("RUPALI_CREDITS_DAILY_ALLOWANCE", "-1", "RUPALI_CREDITS_DAILY_ALLOWANCE"),
    ("RUPALI_CREDITS_SIZE_TIERS", "1024x1024=2,512x512=1,*=4", "sizes must grow"),
    ("RUPALI_CREDITS_SIZE_TIERS", "512x512=1", "must end with `*=credits`"),
    ("RUPALI_CREDITS_SIZE_TIERS", "*=4,512x512=1", "must come last"),
    ("RUPALI_CREDITS_SIZE_TIERS", "big=1,*=2", "is not `WxH=credits`"),
    ("RUPALI_CREDITS_SIZE_TIERS", "*=-1", "between 0 and"),
    ("RUPALI_CREDITS_SIZE_TIERS", "*=two", "not a whole number"),
    ("RUPALI_CREDITS_SIZE_TIERS", "", "at least"),
    ("RUPALI_CREDITS_MODEL_PRICES", "sketch=1", "is not `provider:model=credits`"),
    ("RUPALI_CREDITS_MODEL_PRICES", "offline:a=1/2", "one per size tier (3)"),
    ("RUPALI_CREDITS_MODEL_PRICES", "offline:a=1,offline:a=2", "twice"),
    ("RUPALI_CREDITS_STEPS_FACTOR", "-0.1", "RUPALI_CREDITS_STEPS_FACTOR"),
    ("RUPALI_CREDITS_IMG2IMG_FACTOR", "0", "RUPALI_CREDITS_IMG2IMG_FACTOR"),
    ("RUPALI_CREDITS_ALERT_THRESHOLD", "-3", "RUPALI_CREDITS_ALERT_THRESHOLD"),
])
def test_nonsense_is_refused_with_the_variable_named(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    reset_settings()
    with pytest.raises(ConfigError, match="RUPALI_CREDITS_MODEL_PRICES" if "MODEL" in name else None) as caught:
        get_settings()
    assert message in str(caught.value)


def test_the_runtime_uses_the_ledger_only_when_billing_is_on(monkeypatch):
    assert isinstance(Runtime.build(get_settings()).credits, FreeGeneration)
    for mode in ("credits", "creem"):
        monkeypatch.setenv("RUPALI_BILLING", mode)
        monkeypatch.setenv("RUPALI_CREDITS_MODEL_PRICES", "offline:sketch-v1=3")
        if mode == "creem":
            monkeypatch.setenv("RUPALI_CREEM_API_KEY", "creem-key")
            monkeypatch.setenv("RUPALI_CREEM_WEBHOOK_SECRET", "whsec")
            monkeypatch.setenv("RUPALI_CREDIT_PACKS", '[{"key": "s", "product_id": "p", "credits": 1, '
                                                      '"price_cents": 100, "currency": "EUR"}]')
        reset_settings()
        hook = Runtime.build(get_settings()).credits
        assert isinstance(hook, LedgerCredits)
        assert hook.quote(model_key="offline:sketch-v1", width=512, height=512, steps=20, count=2) == 6
