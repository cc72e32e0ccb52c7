"""``rupali storage migrate --to s3``: every file of the media folder copied into the bucket with its SHA-256,
resumable, verified by reading back, a summary, and exit codes that tell an operator what happened."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rupali import media_migrate
from rupali.config import get_settings, reset_settings
from rupali.storage import JOURNAL, LocalStorage
from rupali.storage_s3 import SHA256_METADATA, S3Storage
from tests.utils.s3 import ACCESS_KEY_ID, SECRET_ACCESS_KEY, corrupting_proxy

pytestmark = pytest.mark.sqlite_only  # files and a bucket; the database plays no part

FILES = {f"images/u{n}/g/{n}.png": os.urandom(1000 + n) for n in range(6)} | {
    "thumbnails/u0/g/0.webp": b"thumb", "avatars/u1/a.webp": b"avatar", "exports/u2/e.zip": os.urandom(70_000),
    "uploads/u3/empty.png": b""}


def _media(root: Path) -> LocalStorage:
    storage = LocalStorage(root)
    for key, data in FILES.items():
        storage.put(key, data)
    (root / "images" / "u0" / "g" / ".tmp-0.png.abcd1234").write_bytes(b"half written")  # never copied
    (root / JOURNAL).mkdir(exist_ok=True)
    (root / JOURNAL / "x.intent").write_text("rupali-intent 1\nimages/u9/x.png\n")  # never copied
    return storage


def _bucket(endpoint: str, bucket: str) -> S3Storage:
    return S3Storage(bucket, access_key_id=ACCESS_KEY_ID, secret_access_key=SECRET_ACCESS_KEY, endpoint_url=endpoint)


def _rupali(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rupali", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120, check=False)


def test_the_command_copies_everything_verified_and_a_second_run_skips_it(s3_media: str, s3_endpoint):
    settings = get_settings()
    _media(settings.effective_media_dir)
    target = _bucket(s3_endpoint.endpoint_url, s3_media)

    dry = _rupali("storage", "migrate", "--to", "s3", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"to copy {len(FILES)}, skipped 0" in dry.stdout and "would copy exports/u2/e.zip" in dry.stdout
    assert list(target.list()) == []  # a dry run copies nothing

    first = _rupali("storage", "migrate", "--to", "s3")
    assert first.returncode == 0, first.stderr
    total = sum(len(data) for data in FILES.values())
    assert f"copied {len(FILES)}, skipped 0 (already there), failed 0, bytes copied {total}" in first.stdout
    assert {stored.key for stored in target.list()} == set(FILES)  # no temporaries, no journal
    for key, data in FILES.items():
        assert target.read(key) == data
        assert target.metadata(key)[1][SHA256_METADATA] == hashlib.sha256(data).hexdigest()
    assert SECRET_ACCESS_KEY not in first.stdout + first.stderr

    second = _rupali("storage", "migrate", "--to", "s3")
    assert second.returncode == 0 and f"copied 0, skipped {len(FILES)} (already there), failed 0" in second.stdout


def test_a_resumed_run_copies_what_is_missing_or_wrong(s3_endpoint, tmp_path: Path):
    source = _media(tmp_path / "media")
    bucket = s3_endpoint.create_bucket()
    target = _bucket(s3_endpoint.endpoint_url, bucket)
    keys = sorted(FILES)
    for key in keys[: len(keys) // 2]:  # an earlier run stopped half-way
        target.put_file(key, source.path(key), metadata={SHA256_METADATA: hashlib.sha256(FILES[key]).hexdigest()})
    corrupted = keys[0]
    target.put(corrupted, b"X" * len(FILES[corrupted]))  # same size, but no (or a wrong) SHA-256: copied again
    report = media_migrate.migrate(source, target)
    assert report.failed == {} and corrupted in report.copied
    assert sorted(report.copied) == sorted([corrupted, *keys[len(keys) // 2:]])
    assert sorted(report.skipped) == keys[1: len(keys) // 2]
    assert all(target.read(key) == FILES[key] for key in keys)


def test_a_verification_failure_is_retried_once_then_reported(s3_endpoint, tmp_path: Path, monkeypatch):
    source = _media(tmp_path / "media")
    bucket = s3_endpoint.create_bucket()
    bad = "images/u3/g/3.png"
    with corrupting_proxy(s3_endpoint.endpoint_url, lambda path: path.endswith(bad)) as proxy:
        report = media_migrate.migrate(source, _bucket(proxy, bucket))
        assert list(report.failed) == [bad] and "verification failed" in report.failed[bad]
        assert len(report.copied) == len(FILES) - 1 and "failed 1" in report.summary()

        # The command, into a bucket of its own: a non-zero exit naming the key, after the summary.
        monkeypatch.setenv("RUPALI_MEDIA_DIR", str(source.root))
        monkeypatch.setenv("RUPALI_S3_BUCKET", s3_endpoint.create_bucket())
        monkeypatch.setenv("RUPALI_S3_ENDPOINT_URL", proxy)
        monkeypatch.setenv("RUPALI_S3_ACCESS_KEY_ID", ACCESS_KEY_ID)
        monkeypatch.setenv("RUPALI_S3_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        reset_settings()
        result = _rupali("storage", "migrate", "--to", "s3")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"copied {len(FILES) - 1}, skipped 0 (already there), failed 1" in result.stdout
    assert result.stderr.count(f"{bad}: verification failed") == 1 and "retrying once" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"rupali: not copied: {bad}"
    assert "Traceback" not in result.stderr


def test_without_a_bucket_or_a_media_folder_the_command_says_so(monkeypatch, s3_endpoint, tmp_path: Path):
    result = _rupali("storage", "migrate", "--to", "s3")
    assert result.returncode == 1 and "set RUPALI_S3_BUCKET" in result.stderr and "Traceback" not in result.stderr
    monkeypatch.setenv("RUPALI_S3_BUCKET", "nothing-here")
    monkeypatch.setenv("RUPALI_S3_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("RUPALI_S3_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("RUPALI_MEDIA_DIR", str(tmp_path / "nowhere"))
    result = _rupali("storage", "migrate", "--to", "s3")
    assert result.returncode == 1 and "no media folder" in result.stderr
    assert _rupali("storage", "migrate", "--to", "gcs").returncode == 2  # a usage error
