"""The element data NiceGUI embeds in a page's HTML, read back as ``parseElements`` in ``nicegui.js`` reads it."""

from __future__ import annotations

import json
import re

ELEMENTS = re.compile(r"parseElements\(String\.raw`(.*?)`\)", re.DOTALL)
UNESCAPE = (("&#36;", "$"), ("&#96;", "`"), ("&gt;", ">"), ("&lt;", "<"), ("&amp;", "&"))  # as parseElements does


def embedded(html: str) -> str:
    """The element JSON exactly as it stands in the HTML (still escaped for it)."""
    found = ELEMENTS.search(html)
    assert found is not None, "no NiceGUI elements in the page"
    return found.group(1)


def elements_of(html: str) -> dict[str, dict[str, object]]:
    """The page's elements by id, as the browser gets them."""
    raw = embedded(html)
    for escaped, plain in UNESCAPE:
        raw = raw.replace(escaped, plain)
    return json.loads(raw)
