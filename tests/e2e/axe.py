"""axe-core in the real browser: the WCAG 2.0/2.1/2.2 A and AA rules, run on the page as it is right now.

axe-core comes from the npm registry (``npm pack``, which checks the package's integrity against the registry),
pinned, and is kept in a cache folder so later runs need no network. Without npm the scans skip locally and fail
in CI (``RUPALI_REQUIRE_BROWSER``), like the other browser tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

AXE_VERSION = "4.14.1"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]
BLOCKING = {"critical", "serious"}

_RUN = """
const done = arguments[arguments.length - 1];
axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}, resultTypes: ['violations']})
  .then(result => done(result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary}))}))))
  .catch(error => done({error: String(error)}));
"""


@cache
def source() -> str:
    """axe.min.js of the pinned version, fetched once into the cache folder."""
    folder = Path(os.environ.get("RUPALI_TEST_CACHE", Path.home() / ".cache" / "rupali-tests"))
    target = folder / f"axe-core-{AXE_VERSION}.min.js"
    if not target.is_file():
        npm = shutil.which("npm")
        if npm is None:
            if os.environ.get("RUPALI_REQUIRE_BROWSER"):
                pytest.fail("npm is required to fetch axe-core for the accessibility scans")
            pytest.skip("npm not installed: the accessibility scans need axe-core from the npm registry")
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as scratch:
            subprocess.run([npm, "pack", f"axe-core@{AXE_VERSION}", "--silent", "--pack-destination", scratch],
                           check=True, timeout=300, capture_output=True)
            with tarfile.open(Path(scratch) / f"axe-core-{AXE_VERSION}.tgz") as package:
                member = package.extractfile("package/axe.min.js")
                assert member is not None
                partial = target.with_suffix(".partial")
                partial.write_bytes(member.read())
                partial.replace(target)  # whole or not at all, should two runs fetch at once
    return target.read_text()


def violations(browser: WebDriver) -> list[dict[str, Any]]:
    """The page's serious and critical violations of the WCAG A and AA rules."""
    if not browser.execute_script("return typeof window.axe === 'object'"):
        browser.execute_script(source())
    browser.set_script_timeout(60)
    found = browser.execute_async_script(_RUN, TAGS)
    if isinstance(found, dict) and "error" in found:
        raise AssertionError(f"axe failed to run: {found['error']}")
    return [violation for violation in found if violation["impact"] in BLOCKING]


def describe(found: list[dict[str, Any]]) -> str:
    """A readable report: one line per rule, then the elements."""
    lines = []
    for violation in found:
        lines.append(f"{violation['impact']} {violation['id']}: {violation['help']}")
        lines += [f"    {node['target']}: {node['summary']}".replace("\n", " ") for node in violation["nodes"][:5]]
    return "\n".join(lines)
