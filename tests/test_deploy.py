"""The deployment recipes in deploy/ hang together with the code (no Docker daemon here to run the compose file;
the HAProxy recipe itself runs in tests/e2e/test_cluster_journey.py).

The compose file's app settings, with the example .env filled in, must be settings the app accepts for production;
every RUPALI_ name in them must be a real setting (a typo would be silently ignored); the instances, the load
balancer and the image must agree on names and the port.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from rupali.config import Settings, reset_settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
FILLED = {"POSTGRES_PASSWORD": "a-postgres-password-0123456789", "MINIO_ROOT_PASSWORD": "a-minio-password-0123456789",
          "RUPALI_STORAGE_SECRET": "a-storage-secret-every-instance-shares-0123456789",
          "RUPALI_OPERATOR_NAME": "Example Images ApS", "RUPALI_OPERATOR_ADDRESS": "Nørregade 1, Copenhagen",
          "RUPALI_OPERATOR_EMAIL": "privacy@images.example.com"}


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def _example() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / "compose.env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def _interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?message}."""
    def one(match: re.Match[str]) -> str:
        name, operator, rest = match.group(1), match.group(2), match.group(3)
        if variables.get(name):
            return variables[name]
        assert operator == ":-", f"${{{name}}} is required and the example leaves it empty"
        return rest
    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:[-?])([^}]*))?\}", one, value)


def _app_environment() -> dict[str, str]:
    variables = _example() | FILLED
    app = _compose()["services"]["app1"]
    return variables | {name: _interpolate(str(value), variables) for name, value in app["environment"].items()}


def test_the_compose_file_runs_two_instances_with_everything_they_share():
    services = _compose()["services"]
    assert set(services) == {"app1", "app2", "haproxy", "postgres", "redis", "minio", "bucket"}
    assert services["app1"]["environment"] == services["app2"]["environment"]
    assert services["app1"]["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    balancer = services["haproxy"]
    addresses = balancer["environment"]
    assert (addresses["RUPALI_APP1"], addresses["RUPALI_APP2"]) == ("app1:8080", "app2:8080")
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in balancer["volumes"]
    recipe = (DEPLOY / "haproxy.cfg").read_text()
    assert 'server app1 "${RUPALI_APP1}" cookie app1' in recipe and 'server app2 "${RUPALI_APP2}" cookie app2' in recipe
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert '"--port", "8080"' in dockerfile and "EXPOSE 8080" in dockerfile
    # The image holds every package pyproject installs.
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in packages:
        assert f"COPY {package.rstrip('*')} ./{package.rstrip('*')}" in dockerfile


def test_every_setting_the_recipe_names_exists():
    known = {f"RUPALI_{name.upper()}" for name in Settings.model_fields} | {"DATABASE_URL", "REDIS_URL", "PORT"}
    named = set(_compose()["services"]["app1"]["environment"]) | set(_example())
    unknown = {name for name in named if name.startswith("RUPALI_") or name in {"DATABASE_URL"}} - known
    assert not unknown


def test_the_recipe_configures_a_production_the_app_accepts(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("RUPALI_DATABASE_URL")  # the test's database would win over the recipe's DATABASE_URL
    for name, value in _app_environment().items():
        monkeypatch.setenv(name, value)
    reset_settings()
    settings = Settings()
    assert settings.is_production and settings.production_problems() == []
    assert settings.shared_queue and settings.media_backend == "s3" and settings.redis_url is not None
