"""``rupali doctor``: one line per check with its verdict, and an exit code that says whether anything failed."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from cryptography import x509

from rupali import doctor, migrate, provenance
from rupali.cli import main
from rupali.config import Settings
from rupali.db import get_engine
from tests.services.test_provenance import ec_family

LINE = re.compile(r"^(ok|warn|FAIL) +(\S+) +\S")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _verdicts(output: str) -> dict[str, str]:
    lines = output.strip().splitlines()
    assert all(LINE.match(line) for line in lines), output
    return {match[2]: match[1] for line in lines if (match := LINE.match(line))}


def test_doctor_on_a_working_installation_exits_zero(capsys):
    assert main(["doctor"]) == 0
    output = capsys.readouterr().out
    assert _verdicts(output) == {"config": "warn", "database": "ok", "data-dir": "ok", "media-dir": "ok",
                                 "credentials": "ok", "smtp": "warn", "offline": "ok"}
    assert re.search(r"^ok +credentials +images signed by .+ image signing, valid until \d{4}-\d\d-\d\d: a self-made "
                     r"certificate, not a publicly trusted identity", output, re.MULTILINE), output
    assert re.search(rf"^ok +database +\w+ at revision {migrate.head_revision(get_engine())} \(head\)$", output,
                     re.MULTILINE)


@pytest.mark.sqlite_only
def test_doctor_warns_in_production_about_a_self_made_signing_certificate_and_fails_on_a_broken_one(tmp_path):
    safe = {"env": "production", "data_dir": tmp_path / "data", "public_url": "https://images.example",
            "operator_name": "Studio Nord GmbH", "operator_address": "Kiel", "operator_email": "hi@example.de",
            "smtp_host": "127.0.0.1"}
    production = Settings(**safe)
    assert doctor.content_credentials(production).verdict is doctor.Verdict.WARN
    chain, key = provenance.make_self_signed_chain("Studio Nord GmbH")
    (tmp_path / "chain.pem").write_bytes(chain)
    (tmp_path / "key.pem").write_bytes(key)
    own = Settings(**safe, c2pa_certificate=tmp_path / "chain.pem", c2pa_private_key=tmp_path / "key.pem")
    assert doctor.content_credentials(own) == doctor.Check(
        "credentials", doctor.Verdict.OK,
        f"images signed by Studio Nord GmbH image signing, valid until {_valid_until(chain):%Y-%m-%d}")
    [ending] = ec_family(timedelta(days=10))
    (tmp_path / "ending.pem").write_bytes(ending[0])
    (tmp_path / "ending-key.pem").write_bytes(ending[1])
    soon = doctor.content_credentials(Settings(**safe, c2pa_certificate=tmp_path / "ending.pem",
                                               c2pa_private_key=tmp_path / "ending-key.pem"))
    assert soon.verdict is doctor.Verdict.WARN
    assert soon.detail.endswith("renew it soon, generations stop when it expires")
    (tmp_path / "key.pem").write_bytes(provenance.make_self_signed_chain("Someone Else")[1])
    broken = doctor.content_credentials(own)
    assert broken.verdict is doctor.Verdict.FAIL and "cannot sign together" in broken.detail


def _valid_until(chain: bytes):
    return x509.load_pem_x509_certificates(chain)[0].not_valid_after_utc


@pytest.mark.sqlite_only
def test_doctor_exits_one_when_a_check_fails(monkeypatch, capsys):
    port = _closed_port()
    monkeypatch.setenv("RUPALI_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("RUPALI_SMTP_PORT", str(port))
    assert main(["doctor", "--timeout", "5"]) == 1
    output = capsys.readouterr().out
    assert _verdicts(output)["smtp"] == "FAIL" and _verdicts(output)["database"] == "ok"
    assert re.search(rf"^FAIL +smtp +could not connect to 127\.0\.0\.1:{port}: Connection refused$", output,
                     re.MULTILINE)


@pytest.mark.sqlite_only
def test_doctor_reports_broken_settings_as_a_failed_check_without_a_traceback():
    result = subprocess.run([sys.executable, "-m", "rupali", "doctor"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "RUPALI_SMTP_PORT": "many"}, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stdout.strip() == "FAIL  config  invalid configuration: RUPALI_SMTP_PORT Input should be a valid " \
                                    "integer, unable to parse string as an integer"


@pytest.mark.sqlite_only
def test_doctor_refuses_a_timeout_out_of_range_in_one_line(capsys):
    assert main(["doctor", "--timeout", "0"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == (
        "rupali: --timeout 0 is out of range (more than 0, at most 300 seconds)\n")
