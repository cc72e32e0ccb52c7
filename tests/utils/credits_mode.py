"""Credits mode for tests of the generation path: the offline model at 1 credit an image, a sign-up bonus."""

from __future__ import annotations

import pytest

from rupali.config import get_settings, reset_settings
from rupali.providers import ModelChoice
from rupali.runtime import Runtime

OFFLINE = "offline:sketch-v1"


def use_credits(monkeypatch: pytest.MonkeyPatch, *, bonus: int, queue_per_user: int) -> None:
    """Billing in credits, ``bonus`` credits at sign-up, room for ``queue_per_user`` waiting jobs each."""
    monkeypatch.setenv("RUPALI_BILLING", "credits")
    monkeypatch.setenv("RUPALI_CREDITS_SIGNUP_BONUS", str(bonus))
    monkeypatch.setenv("RUPALI_CREDITS_MODEL_PRICES", f"{OFFLINE}=1")
    monkeypatch.setenv("RUPALI_GENERATION_QUEUE_PER_USER", str(queue_per_user))
    reset_settings()


async def offline_choice() -> ModelChoice:
    """The offline model as the configured providers offer it."""
    return await Runtime.build(get_settings()).providers.find(OFFLINE)
