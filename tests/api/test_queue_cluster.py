"""Two ``rupali serve`` processes on one PostgreSQL database share one generation queue.

Two people flood different instances through the API; the jobs are started fairly across both (each person gets a
start before the other gets a second), each runs exactly once, and each person is charged once per job.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select

from rupali.db import session_scope
from rupali.models import CreditEntry, Generation
from rupali.services import api_keys, job_claims
from tests.utils.factories import make_user
from tests.utils.serve import serve

pytestmark = pytest.mark.postgresql_only
OFFLINE = "offline:sketch-v1"
JOBS = 6
BODY = {"prompt": "a lighthouse on a cliff at golden hour", "model": OFFLINE, "width": 1024, "height": 1024,
        "count": 2}


@pytest.fixture
def two_instances(tmp_path: Path) -> Iterator[tuple[str, str]]:
    # One slot each, but a person may have two running: an unfair queue would give both slots to the first flood.
    extra = {"RUPALI_STORAGE_SECRET": "a-storage-secret-every-instance-shares-0123456789",
             "RUPALI_GENERATION_CONCURRENCY": "1", "RUPALI_GENERATION_PER_USER": "2",
             "RUPALI_GENERATION_QUEUE_PER_USER": "20", "RUPALI_BILLING": "credits",
             "RUPALI_CREDITS_SIGNUP_BONUS": "100", "RUPALI_CREDITS_MODEL_PRICES": f"{OFFLINE}=1"}
    with serve(tmp_path, "first", extra) as first, serve(tmp_path, "second", extra) as second:
        yield first, second


def _key_for(person) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with session_scope() as session:
        _, secret = api_keys.create(session, person, "tests")
    return {"Authorization": f"Bearer {secret}"}


def test_two_people_flooding_two_instances_share_them_fairly(two_instances):
    first, second = two_instances
    people = [make_user(), make_user()]
    submitted: dict[uuid.UUID, list[str]] = {person.id: [] for person in people}

    def flood(base: str, person) -> None:  # type: ignore[no-untyped-def]
        headers = _key_for(person)
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            for _ in range(JOBS):
                answer = client.post("/api/v1/generations", json=BODY)
                assert answer.status_code == 202, answer.text
                submitted[person.id].append(answer.json()["id"])

    # The first person's whole flood is queued before the second person's: a first-come queue would run all of it
    # first, on both instances.
    flood(first, people[0])
    flood(second, people[1])
    ids = [uuid.UUID(value) for values in submitted.values() for value in values]
    assert len(ids) == 2 * JOBS

    for _ in range(1200):  # up to two minutes
        with session_scope() as session:
            ended = session.exec(select(Generation).where(col(Generation.id).in_(ids))).all()
        if all(generation.finished for generation in ended):
            break
        time.sleep(0.1)
    assert {generation.status for generation in ended} == {"succeeded"}
    assert {generation.attempts for generation in ended} == {1}  # each ran once
    assert len({job_claims.instance_of(generation.worker) for generation in ended}) == 2  # on both instances

    # Fair: once the second person was waiting, in the order the jobs started, neither person got more than two
    # starts ahead of the other (one may have been in flight as the other's job was queued).
    arrived = min(generation.created_at for generation in ended if generation.user_id == people[1].id)
    starts = [generation.user_id for generation in sorted(ended, key=lambda generation: generation.started_at)
              if generation.started_at >= arrived]
    assert people[0].id in starts and people[1].id in starts
    lead = [starts[:k].count(people[0].id) - starts[:k].count(people[1].id) for k in range(1, len(starts) + 1)]
    assert max(abs(value) for value in lead) <= 2, starts

    with session_scope() as session:  # charged once per job: one settle each, nothing released
        entries = session.exec(select(CreditEntry.kind, CreditEntry.generation_id)
                               .where(col(CreditEntry.generation_id).in_(ids))).all()
    assert sorted(kind for kind, _ in entries).count("settle") == 2 * JOBS
    assert all(kind in {"reserve", "settle"} for kind, _ in entries)
