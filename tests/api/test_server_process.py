"""The real ``rupali serve`` process: what an operator sees in its log."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.sqlite_only


def test_the_start_up_log_is_clean_and_names_the_address_served(live_server: str, tmp_path: Path):
    assert httpx.get(live_server + "/", timeout=10).status_code == 200  # a page was served, too
    log = (tmp_path / "server.log").read_text()
    assert f"listening on {live_server}" in log, log
    for noise in ("Warning", "Traceback", "ERROR"):
        assert noise not in log, log
