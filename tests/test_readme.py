"""README stays true: every setting documented, the quick start is the two commands CI relies on."""

from __future__ import annotations

from pathlib import Path

import pytest

from rupali.config import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
pytestmark = pytest.mark.sqlite_only


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_is_in_the_configuration_table(name):
    assert f"`RUPALI_{name.upper()}`" in README


def test_quick_start_test_command_is_what_ci_runs():
    command = "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/pytest"
    assert command in README
    assert command in (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
