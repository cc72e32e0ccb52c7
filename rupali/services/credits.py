"""The credit hook around every generation: reserve before the job, settle on success, release otherwise.

With ``RUPALI_BILLING=off`` :class:`FreeGeneration` answers "free" and charges nothing, and the studio's cost line
says so; otherwise the ledger's hook (:class:`rupali.services.ledger.LedgerCredits`) prices and charges.
"""

from __future__ import annotations

from typing import Protocol

from sqlmodel import Session

from rupali.models import Generation, User


class InsufficientCredits(Exception):
    """The person's balance does not cover the request; the message says what it would cost."""


class CreditHook(Protocol):
    charges: bool  # False: generating is free and nothing about money is shown

    def quote(self, *, model_key: str, width: int, height: int, steps: int, count: int,
              image_to_image: bool = False) -> int:
        """Credits the request would cost (0 = free)."""
        ...

    def balance(self, session: Session, user: User) -> int | None:
        """The person's balance, or None when generation is free (nothing to show)."""
        ...

    def reserve(self, session: Session, user: User, generation: Generation) -> None:
        """Hold the quoted credits for a queued generation, or raise :class:`InsufficientCredits`."""
        ...

    def settle(self, session: Session, generation: Generation, delivered: int) -> None:
        """Charge for the images actually delivered and give back the rest."""
        ...

    def release(self, session: Session, generation: Generation) -> None:
        """Give back everything held: the generation failed, was cancelled or was blocked."""
        ...


class FreeGeneration:
    """Generation costs nothing (billing off)."""

    charges = False

    def quote(self, *, model_key: str, width: int, height: int, steps: int, count: int,
              image_to_image: bool = False) -> int:
        return 0

    def balance(self, session: Session, user: User) -> int | None:
        return None

    def reserve(self, session: Session, user: User, generation: Generation) -> None:
        generation.credits = 0

    def settle(self, session: Session, generation: Generation, delivered: int) -> None:
        generation.credits = 0

    def release(self, session: Session, generation: Generation) -> None:
        generation.credits = 0
