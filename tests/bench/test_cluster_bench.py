"""Images per minute with two instances against one, on the shared queue (PostgreSQL).

Run explicitly (the default test run deselects it)::

    RUPALI_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/pytest tests/bench/test_cluster_bench.py -m bench -s -p no:cacheprovider

Each instance is a real ``rupali serve`` process with one generation slot (``RUPALI_GENERATION_CONCURRENCY=1``) and
the offline generator; NSFW scoring, Content Credentials signing, thumbnails and fsync'd storage all run as in
production. The same batch of jobs (two 1024x1024 images each) is queued through the API of the first instance, and
the rate is the images finished over the time from the first start to the last finish, read from the database.
Target: two instances make at least 1.7x the images per minute of one. The table also shows how many CPUs the
instances kept busy (their CPU time over the batch's time): the work is CPU-bound, so two instances can only beat
one by as much as the machine has CPUs that one instance leaves idle.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select

from rupali.db import session_scope
from rupali.models import Generation
from rupali.services import api_keys, job_claims
from tests.utils.factories import make_user
from tests.utils.serve import Server

pytestmark = [pytest.mark.bench, pytest.mark.postgresql_only]
JOBS = 24
IMAGES = 2
BODY = {"prompt": "a lighthouse on a cliff at golden hour, teal sea", "model": "offline:sketch-v1", "width": 1024,
        "height": 1024, "count": IMAGES}
TARGET = 1.7
ENV = {"RUPALI_STORAGE_SECRET": "a-storage-secret-every-instance-shares-0123456789",
       "RUPALI_GENERATION_CONCURRENCY": "1", "RUPALI_GENERATION_PER_USER": "8",
       "RUPALI_GENERATION_QUEUE_PER_USER": "100", "RUPALI_RATE_LIMIT_GENERATIONS_PER_MINUTE": "1000",
       "RUPALI_TECHNICAL_LOG": "false"}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rate(tmp_path: Path, instances: int) -> tuple[float, float, dict[str, int], float]:
    """(images per minute, seconds, jobs per instance, CPUs the instances kept busy) for one batch."""
    servers = [Server(tmp_path, f"{instances}-of-{index}", ENV) for index in range(instances)]
    try:
        cpu_before = sum(_cpu_seconds(server.process.pid) for server in servers)
        person = make_user()
        with session_scope() as session:
            _, secret = api_keys.create(session, person, "bench")
        ids = []
        with httpx.Client(base_url=servers[0].base, headers={"Authorization": f"Bearer {secret}"},
                          timeout=30) as client:
            for _ in range(JOBS):
                answer = client.post("/api/v1/generations", json=BODY)
                assert answer.status_code == 202, answer.text
                ids.append(uuid.UUID(answer.json()["id"]))
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            with session_scope() as session:
                done = session.exec(select(Generation).where(col(Generation.id).in_(ids))).all()
            if all(generation.finished for generation in done):
                break
            time.sleep(0.2)
        cpu = sum(_cpu_seconds(server.process.pid) for server in servers) - cpu_before
        assert {generation.status for generation in done} == {"succeeded"}
        seconds = (max(g.finished_at for g in done) - min(g.started_at for g in done)).total_seconds()
        per_worker: dict[str, int] = {}
        for generation in done:
            instance = job_claims.instance_of(generation.worker)
            per_worker[instance] = per_worker.get(instance, 0) + 1
        return JOBS * IMAGES / seconds * 60, seconds, per_worker, cpu / seconds
    finally:
        for server in servers:
            server.close()


def test_two_instances_make_more_images_per_minute_than_one(tmp_path: Path) -> None:
    one, one_seconds, _, one_cpus = _rate(tmp_path, 1)
    two, two_seconds, split, two_cpus = _rate(tmp_path, 2)
    ratio = two / one
    rows = [("Instances", "Images", "Seconds", "Images/min", "Jobs per instance", "CPUs busy"),
            ("1", str(JOBS * IMAGES), f"{one_seconds:.1f}", f"{one:.0f}", str(JOBS), f"{one_cpus:.2f}"),
            ("2", str(JOBS * IMAGES), f"{two_seconds:.1f}", f"{two:.0f}", " / ".join(map(str, split.values())),
             f"{two_cpus:.2f}")]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    print()
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(f"two instances / one: {ratio:.2f}x (target >= {TARGET}x) on {os.cpu_count()} CPUs")
    assert ratio >= TARGET
