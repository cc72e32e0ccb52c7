"""Graceful drain: on SIGTERM a real ``rupali serve`` stops starting jobs, lets running ones finish within
``RUPALI_DRAIN_SECONDS``, and hands back those still waiting for their provider, which run once after the restart.

The provider is the loopback Runware server, told to answer late, so a job is provably still waiting for it.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from rupali.clock import now
from rupali.db import session_scope
from rupali.models import Generation, GenerationStatus, Image
from rupali.services import api_keys
from tests.utils.factories import make_user
from tests.utils.runware_server import RunwareServer
from tests.utils.serve import Server

KEY = "rw-drain-key-0123456789abcdef"
AIR = "runware:100@1"
MODEL = f"runware:{AIR}"  # Rupali's model ids name the provider, then the model


@pytest.fixture
def runware() -> Iterator[RunwareServer]:
    with RunwareServer(api_key=KEY) as server:
        yield server


@pytest.fixture
def start(runware: RunwareServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    started: list[Server] = []
    env = {name: value for name, value in os.environ.items() if name != "PYTEST_CURRENT_TEST"} | {
        "RUPALI_RUNWARE_API_KEY": KEY, "RUPALI_RUNWARE_URL": runware.url,
        "RUPALI_RUNWARE_MODELS": f"{AIR}=FLUX.1 schnell"}

    def instance(name: str, drain_seconds: int) -> Server:
        started.append(Server(tmp_path, name, env | {"RUPALI_DRAIN_SECONDS": str(drain_seconds)}))
        return started[-1]

    yield instance
    for each in started:
        each.close()


def api_key() -> dict[str, str]:
    user = make_user()
    with session_scope() as session:
        _key, secret = api_keys.create(session, user, "drain test")
    return {"Authorization": f"Bearer {secret}"}


def submit(base: str, headers: dict[str, str]) -> uuid.UUID:
    answer = httpx.post(f"{base}/api/v1/generations", headers=headers, json={
        "prompt": "a lighthouse in a storm", "model": MODEL, "width": 1024, "height": 1024, "count": 2})
    assert answer.status_code == 202, answer.text
    return uuid.UUID(answer.json()["id"])


def wait_for(generation_id: uuid.UUID, status: GenerationStatus, timeout: float = 30) -> Generation:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as session:
            generation = session.get(Generation, generation_id)
            if generation is not None and generation.status == status:
                session.expunge(generation)
                return generation
        time.sleep(0.05)
    raise AssertionError(f"generation {generation_id} did not become {status}")


def images_of(generation_id: uuid.UUID) -> list[Image]:
    with session_scope() as session:
        return list(session.exec(select(Image).where(Image.generation_id == generation_id)).all())


def test_a_job_still_waiting_for_its_provider_is_handed_back_and_runs_once_after_the_restart(start, runware):
    headers = api_key()
    first = start("first", drain_seconds=1)
    runware.delay_next(20)  # far beyond the drain deadline
    generation_id = submit(first.base, headers)
    wait_for(generation_id, GenerationStatus.RUNNING)
    stopped_in = first.terminate()
    assert stopped_in < 1 + 8, "the instance did not stop soon after its drain deadline"
    with session_scope() as session:
        handed_back = session.get(Generation, generation_id)
        assert handed_back.status == GenerationStatus.QUEUED and handed_back.started_at is None
        assert not handed_back.error and handed_back.finished_at is None
    assert images_of(generation_id) == []
    assert "handed back 1 running generation(s)" in first.log.read_text()

    start("second", drain_seconds=1)  # resumes what is queued
    done = wait_for(generation_id, GenerationStatus.SUCCEEDED)
    assert done.finished_at is not None and done.finished_at <= now()
    assert len(images_of(generation_id)) == 2  # one set of images, although the provider was asked twice
    inference = [request for request in runware.requests if request.path == "/v1"
                 and any(task.get("taskType") == "imageInference" for task in request.body)]
    assert len(inference) == 2


def test_a_job_that_finishes_within_the_deadline_is_waited_for(start, runware):
    headers = api_key()
    first = start("first", drain_seconds=20)
    runware.delay_next(2)
    generation_id = submit(first.base, headers)
    wait_for(generation_id, GenerationStatus.RUNNING)
    stopped_in = first.terminate()
    assert 0.5 < stopped_in < 20
    with session_scope() as session:
        assert session.get(Generation, generation_id).status == GenerationStatus.SUCCEEDED
    assert len(images_of(generation_id)) == 2
    assert "handed back" not in first.log.read_text()
