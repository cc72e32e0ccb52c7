"""Log output: readable lines for people, or one JSON object per line (``RUPALI_LOG_FORMAT=json``) for shippers.

Railway and most log collectors read stdout and parse JSON lines into fields. Records keep their ``extra`` fields
(the access log's ``route``, ``status``, ``duration_ms``, ``request_id``) as top-level keys.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

from rupali.config import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Migrations report their result themselves and job runs are recorded in job_run; httpx would log every outgoing
# URL at INFO, query strings included.
QUIET = ("alembic", "apscheduler", "httpx", "httpcore")


def configure(settings: Settings, stream: TextIO | None = None) -> None:
    """Send every log record to ``stream`` (stdout by default) in the configured format, at the configured level."""
    handler = logging.StreamHandler(stream or sys.stdout)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z"))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
    for chatty in QUIET:
        logging.getLogger(chatty).setLevel(logging.WARNING)
