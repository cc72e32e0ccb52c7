"""Leases in the database: one holder at a time, taken over after expiry, renewed by their holder, never stolen."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from rupali import clock, leases
from rupali.config import get_settings
from rupali.db import get_engine

MINUTE = timedelta(minutes=1)


def test_of_holders_racing_for_a_free_claim_exactly_one_wins():
    settings = get_settings()
    # Made before the race, as in a running app (config.ensure_data_dir's write probe is not safe between threads).
    get_engine(settings)
    barrier = threading.Barrier(6)
    won: list[leases.Lease | None] = []

    def race() -> None:
        barrier.wait()
        won.append(leases.acquire(settings, "race", length=MINUTE))

    threads = [threading.Thread(target=race) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(won) == 6 and sum(lease is not None for lease in won) == 1


def test_a_claim_is_refused_to_others_until_its_lease_runs_out():
    settings = get_settings()
    first = leases.acquire(settings, "job", length=MINUTE, holder="first")
    assert first is not None and leases.holder_of(settings, "job") == "first"
    with clock.travel(MINUTE / 2):  # not a second before the end: real time passes too
        assert leases.acquire(settings, "job", length=MINUTE, holder="second") is None
    with clock.travel(MINUTE + timedelta(seconds=1)):
        assert leases.holder_of(settings, "job") is None  # expired: nobody holds it
        assert leases.acquire(settings, "job", length=MINUTE, holder="second") is not None
        assert leases.holder_of(settings, "job") == "second"


def test_the_holder_taking_its_claim_again_renews_it():
    settings = get_settings()
    assert leases.acquire(settings, "leader", length=MINUTE, holder="me") is not None
    with clock.travel(timedelta(seconds=50)):
        assert leases.acquire(settings, "leader", length=MINUTE, holder="me") is not None  # renewed to 1:50
    with clock.travel(timedelta(seconds=100)):
        assert leases.acquire(settings, "leader", length=MINUTE, holder="other") is None
        assert leases.holder_of(settings, "leader") == "me"


def test_a_holder_whose_lease_was_taken_over_learns_it_and_cannot_release_the_new_holders_claim():
    settings = get_settings()
    lease = leases.acquire(settings, "slow", length=MINUTE)
    assert lease is not None
    with clock.travel(2 * MINUTE):
        successor = leases.acquire(settings, "slow", length=MINUTE)  # the first holder looked dead
        assert successor is not None
        with pytest.raises(leases.LeaseLost):
            lease.renew(force=True)
        leases.release(settings, lease)
        assert leases.holder_of(settings, "slow") == successor.holder
        leases.release(settings, successor)
        assert leases.holder_of(settings, "slow") is None
