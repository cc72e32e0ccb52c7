"""Real browser through HAProxy (``deploy/haproxy.cfg``) in front of two instances on one PostgreSQL database (their
shared queue), one Redis and one S3-compatible bucket (moto's server on loopback).

The browser signs in through the proxy and generates; the job runs on one instance (the Runware stand-in answers it
late). The page is moved to that instance, then the instance is killed while the job runs. The page reconnects to
the other instance on its own, still signed in; that instance takes the job up, and it ends exactly once: started
twice, finished once, its files in the bucket.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.wait import WebDriverWait
from sqlmodel import select

from rupali.config import get_settings, reset_settings
from rupali.db import session_scope
from rupali.models import Generation, Image
from rupali.storage import from_settings as storage_from_settings
from tests.conftest import missing_service
from tests.e2e.helpers import click, evidence_on_failure, images_button, quasar_field, sign_in, wait
from tests.utils.cluster import cluster, haproxy
from tests.utils.factories import PASSWORD, make_user
from tests.utils.runware_server import RunwareServer

pytestmark = [pytest.mark.e2e, pytest.mark.postgresql_only]
KEY = "rw-cluster-key-0123456789abcdef"
AIR = "runware:100@1"

EMAIL = "ines.cluster@example.com"
PROMPT = "a harbour at dawn, seen from two machines"

_THUMBNAILS_LOADED = """
const images = [...document.querySelectorAll('figure.r-tile img')];
return images.length >= arguments[0] && images.every(img => img.complete && img.naturalWidth > 0);
"""


def instance_of(browser: WebDriver) -> str | None:
    """The instance HAProxy pins this browser to (its stickiness cookie)."""
    cookie = browser.get_cookie("RUPALI_INSTANCE")
    return cookie["value"] if cookie else None


def test_a_page_and_its_running_job_survive_the_death_of_their_instance(
        shared_redis, s3_media: str, browser: WebDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if haproxy() is None:
        missing_service("HAProxy is not installed: apt-get install haproxy")
    with RunwareServer(api_key=KEY) as runware:
        # Here too, so the person accepts the policy the instances show (Runware is one of its sub-processors).
        settings = {"RUPALI_RUNWARE_API_KEY": KEY, "RUPALI_RUNWARE_URL": runware.url,
                    "RUPALI_RUNWARE_MODELS": f"{AIR}=FLUX.1 schnell", "RUPALI_OFFLINE_GENERATOR": "false"}
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        reset_settings()
        make_user(email=EMAIL, onboarded=True)
        with cluster(tmp_path) as running, evidence_on_failure(browser, tmp_path):
            sign_in(browser, running.base, EMAIL, PASSWORD)
            holder = instance_of(browser)
            assert holder in running.servers

            # Generate two images; the first answer comes late, so the job is still running when its instance dies.
            runware.delay_next(30.0, task_type="imageInference")
            prompt = wait(browser).until(EC.element_to_be_clickable(quasar_field("Prompt", "textarea")))
            prompt.send_keys(PROMPT)
            click(browser, images_button("2"))
            wait(browser).until(EC.presence_of_element_located(images_button("2", pressed=True)))
            prompt.send_keys(Keys.CONTROL, Keys.ENTER)
            job = _running_job()
            runner = next(name for name, server in running.servers.items()
                          if f":{server.process.pid}:" in (job.worker or ""))
            # The page shows the job running wherever it runs (the other instance hears of it from the database).
            wait(browser).until(lambda driver: "Generating" in driver.find_element(By.CSS_SELECTOR, ".r-job").text)
            if runner != holder:  # move the page to the instance that runs the job, as its stickiness cookie would
                browser.add_cookie({"name": "RUPALI_INSTANCE", "value": runner, "path": "/"})
                browser.get(running.base + "/studio")
                wait(browser).until(lambda driver: "Generating" in driver.find_element(By.CSS_SELECTOR, ".r-job").text)
                assert instance_of(browser) == runner

            # The instance dies with the page and the job. The page's socket drops; its reconnect fails the handshake
            # on the other instance (it knows nothing of this page), so the page reloads there, still signed in.
            running.servers[runner].kill()
            survivor = next(name for name in running.servers if name != runner)
            wait(browser).until(lambda driver: instance_of(driver) == survivor)
            wait(browser).until(EC.url_to_be(running.base + "/studio"))
            # The survivor takes the job up (its instance is gone) and runs it again; the page follows it to the end.
            patient = WebDriverWait(browser, 60, 0.2, ignored_exceptions=(StaleElementReferenceException,))
            patient.until(lambda driver: driver.execute_script(_THUMBNAILS_LOADED, 2))
            assert browser.find_element(By.CSS_SELECTOR, ".r-job-prompt").text == PROMPT

            # Exactly once: started twice, finished once, by the survivor, with two images whose files are in the
            # bucket.
            with session_scope() as session:
                ended = session.get(Generation, job.id)
                images = session.exec(select(Image).where(Image.generation_id == job.id)).all()
            survivor_pid = running.servers[survivor].process.pid
            assert (ended.status, ended.attempts) == ("succeeded", 2)
            assert f":{survivor_pid}:" in (ended.worker or "")
            assert len(images) == 2
            storage = storage_from_settings(get_settings())
            missing = [key for image in images for key in image.file_keys() if not storage.exists(key)]
            assert not missing, (missing, sorted(item.key for item in storage.list("")))
            assert sum(1 for post in runware.posts if _is_inference(post.body)) == 2  # the lost run, the retaken one

            # The gallery, served by the survivor, holds both images.
            browser.get(running.base + "/gallery")
            wait(browser).until(lambda driver: driver.execute_script(_THUMBNAILS_LOADED, 2))
            assert len(browser.find_elements(By.CSS_SELECTOR, "figure.r-tile")) == 2
            assert instance_of(browser) == survivor
            browser.save_screenshot(str(tmp_path / "gallery-after-failover.png"))


def _running_job(timeout: float = 30) -> Generation:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as session:
            job = session.exec(select(Generation).where(Generation.status == "running")).first()
            if job is not None:
                session.expunge(job)
                return job
        time.sleep(0.05)
    raise AssertionError("no generation started")


def _is_inference(body: object) -> bool:
    return isinstance(body, list) and bool(body) and isinstance(body[0], dict) \
        and body[0].get("taskType") == "imageInference"
