"""The health report served at ``/healthz`` for Railway's health check and monitoring."""

from __future__ import annotations

from typing import Any

from rupali import __version__
from rupali.config import Settings
from rupali.db import database_reachable


def report(settings: Settings, *, scheduler_running: bool) -> tuple[bool, dict[str, Any]]:
    """Return ``(healthy, body)``; healthy means the database answers and the scheduler runs."""
    database = database_reachable(settings)
    healthy = database and scheduler_running
    return healthy, {
        "status": "ok" if healthy else "unhealthy",
        "database": database,
        "scheduler": scheduler_running,
        "version": __version__,
    }
