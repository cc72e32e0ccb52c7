"""``kill -9`` at every stage of storing a generation's images leaves nothing behind after the restart.

The real ``rupali serve`` runs as a subprocess, paused by :mod:`rupali.faults` at one storing stage: the test submits
a generation through the REST API, waits for the pause marker, kills the process and starts it again. Each start is
also the next round's paused server, so a chain of kills costs one start per kill. After each restart, once its
start-up work is done (the media sweep, then the queue's recovery; NiceGUI runs it beside serving, so "healthy" is not
enough): every file under the media folder is named by a row, no ``.tmp-`` file or journal entry is left, every image
row's files exist, and the generation ended as its stage implies.

Five kills at each of the six stages take a start of the server each, which is mostly Python importing the web
stack; two chains run side by side (one per CPU), each with its own data directory and database.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select

from rupali import faults
from rupali.clock import now
from rupali.config import Settings
from rupali.db import session_scope
from rupali.models import Generation, GenerationStatus, Image, JobRun, JobRunStatus, Upload, User
from rupali.services import api_keys, users
from rupali.services import generation as generations
from rupali.storage import LocalStorage

pytestmark = pytest.mark.sqlite_only  # about files and a killed process; the sweep's own tests run on both backends

ROUNDS = 5
IMAGES = 2  # so a crash can fall between one image's files and the next one's
CHAINS = (faults.STAGES[:3], faults.STAGES[3:])


class _Server:
    """``rupali serve`` on a free port for one data directory, optionally paused at a storing stage."""

    def __init__(self, folder: Path, env: dict[str, str], pause: str | None, client: httpx.Client) -> None:
        self.client = client
        self.marker = folder / "paused"
        self.marker.unlink(missing_ok=True)
        self.log_path = folder / "server.log"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        if pause is not None:
            env = env | {faults.PAUSE_VARIABLE: pause, faults.MARKER_VARIABLE: str(self.marker)}
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "rupali", "serve", "--port", str(port)],
                                            env=env, stdout=log, stderr=log)
        self.wait(self._healthy, "become healthy")

    def _healthy(self) -> bool:
        try:
            return self.client.get(f"{self.base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait(self, condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                raise AssertionError(f"rupali serve exited before it could {what}:\n{self.log_path.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"rupali serve did not {what} in {timeout} s:\n{self.log_path.read_text()}")
            time.sleep(0.1)

    def wait_paused(self) -> None:
        self.wait(self.marker.exists, "reach its pause")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class _Chain:
    """One data directory and database, killed at each of ``stages`` ``ROUNDS`` times in a row."""

    def __init__(self, folder: Path, template: str, stages: tuple[str, ...]) -> None:
        self.folder, self.stages = folder, stages
        data = folder / "data"
        data.mkdir(parents=True)
        shutil.copyfile(template, data / "rupali.db")
        self.settings = Settings(data_dir=data, database_url=f"sqlite:///{data / 'rupali.db'}")
        self.root = LocalStorage.from_settings(self.settings).root
        # Without pytest's marker variable (NiceGUI runs as for an operator) and NiceGUI's storage in this directory.
        self.env = {name: value for name, value in os.environ.items()
                    if name not in {"PYTEST_CURRENT_TEST", "NICEGUI_STORAGE_PATH"}}
        self.env |= {"RUPALI_DATA_DIR": str(data), "RUPALI_DATABASE_URL": self.settings.effective_database_url}
        self.report: list[str] = []
        # One client for all requests: a new one per health poll costs more CPU than the server's start-up.
        self.client = httpx.Client(timeout=30)

    def run(self) -> list[str]:
        """Every kill of the chain; returns what went wrong, as sentences (empty when nothing did)."""
        secret = self._api_key()
        plan = [stage for stage in self.stages for _ in range(ROUNDS)]
        problems: list[str] = []
        server = _Server(self.folder, self.env, plan[0], self.client)
        try:
            for kill, stage in enumerate(plan):
                round_ = kill % ROUNDS + 1
                generation_id = self._submit(server, secret, round_)
                server.wait_paused()
                at_kill = _on_disk(self.root) - self._named()
                server.kill()
                server = _Server(self.folder, self.env, plan[kill + 1] if kill + 1 < len(plan) else None, self.client)
                # Started once before the first kill and once after each: kill + 2 start-up sweeps so far.
                server.wait(partial(self._started, kill + 2, generation_id), "finish its start-up work")
                found = self._check(generation_id, stage)
                if not at_kill:  # an intent at least must have been on disk, or the pause was not mid-storing
                    found.append("nothing was being stored at the kill")
                problems += [f"{stage} round {round_}: {problem}" for problem in found]
                self.report.append(f"{stage} round {round_}: {len(at_kill)} unnamed at the kill "
                                   f"({', '.join(sorted(_kind(path) for path in at_kill))}), "
                                   f"{len(_on_disk(self.root) - self._named())} after the restart")
        finally:
            server.stop()
            self.client.close()
        return problems

    def _api_key(self) -> str:
        with session_scope(self.settings) as session:
            user = users.create(session, email="crash@example.com", full_name="Crash Test", password=None,
                                role=users.Role.USER)
            user.email_verified_at = user.age_confirmed_at = now()
            _key, secret = api_keys.create(session, user, "crash test")
        return secret

    def _submit(self, server: _Server, secret: str, round_: int) -> uuid.UUID:
        response = self.client.post(
            f"{server.base}/api/v1/generations", headers={"Authorization": f"Bearer {secret}"},
            json={"prompt": f"a lighthouse in a storm, round {round_}", "model": "offline:sketch-v1", "width": 256,
                  "height": 256, "count": IMAGES})
        assert response.status_code == 202, response.text
        return uuid.UUID(response.json()["id"])

    def _started(self, starts: int, generation_id: uuid.UUID) -> bool:
        """Whether the server's start-up work is done: the media sweep recorded, the killed job resolved."""
        with session_scope(self.settings) as session:
            sweeps = session.exec(select(JobRun).where(JobRun.job == "sweep_media", JobRun.trigger == "startup",
                                                       col(JobRun.finished_at).is_not(None))).all()
            generation = session.get(Generation, generation_id)
        return len(sweeps) == starts and generation is not None and generation.status != GenerationStatus.RUNNING

    def _named(self) -> set[str]:
        with session_scope(self.settings) as session:
            images = session.exec(select(Image)).all()
            return ({key for image in images for key in image.file_keys()} | set(session.exec(select(Upload.key)).all())
                    | {key for key in session.exec(select(User.avatar_key)).all() if key})

    def _check(self, generation_id: uuid.UUID, stage: str) -> list[str]:
        """Storage and rows agree after the restart, and the killed generation ended as its stage implies."""
        problems = []
        if left := _on_disk(self.root) - self._named():
            problems.append(f"files no row names: {sorted(left)}")
        with session_scope(self.settings) as session:
            images = session.exec(select(Image)).all()
            generation = session.get(Generation, generation_id)
            sweep = session.exec(select(JobRun).where(JobRun.job == "sweep_media", JobRun.trigger == "startup")
                                 .order_by(col(JobRun.started_at).desc())).first()
        storage = LocalStorage(self.root)
        if gone := [image.id for image in images if image.files_missing_at is not None
                    or not all(storage.exists(key) for key in image.file_keys())]:
            problems.append(f"image rows without their files: {gone}")
        mine = [image for image in images if image.generation_id == generation_id]
        expected = (GenerationStatus.SUCCEEDED, "", IMAGES) if stage == faults.AFTER_COMMIT else (
            GenerationStatus.FAILED, generations.RESTART_MESSAGE, 0)  # committed before the kill, or not at all
        if (generation.status, generation.error, len(mine)) != expected:
            problems.append(f"the generation ended {generation.status} with {len(mine)} images: {generation.error}")
        # The start-up sweep ran, and the journal is what cleaned up: one abandoned intent per kill.
        if sweep is None or sweep.status != JobRunStatus.SUCCEEDED or "intents resolved 1," not in sweep.detail:
            problems.append(f"the start-up sweep did not resolve the intent: {sweep and sweep.detail}")
        return problems


def _on_disk(root: Path) -> set[str]:
    """Every file and link under the media folder, as paths relative to it (links are not followed)."""
    found = set()
    for folder, folders, names in os.walk(root):
        paths = [Path(folder) / name for name in names] + [Path(folder) / name for name in folders]
        found.update(str(path.relative_to(root)) for path in paths if path.is_symlink() or not path.is_dir())
    return found


def _kind(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return "intent" if path.startswith(".journal/") else "temporary" if name.startswith(".tmp-") else \
        path.split("/", 1)[0]


def test_five_kill_9_rounds_at_every_storing_stage_leave_no_orphan(tmp_path: Path,
                                                                    database_template: dict[str, str]):
    chains = [_Chain(tmp_path / f"chain-{number}", database_template["sqlite"], stages)
              for number, stages in enumerate(CHAINS)]
    assert sorted(stage for chain in chains for stage in chain.stages) == sorted(faults.STAGES)
    with ThreadPoolExecutor(len(chains)) as pool:
        outcomes = list(pool.map(_Chain.run, chains))
    print("\n".join(line for chain in chains for line in chain.report))
    assert [problem for problems in outcomes for problem in problems] == []
