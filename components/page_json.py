"""The JSON NiceGUI embeds in a page's HTML, written in ASCII so that escaping it for the HTML stays cheap.

``Client.build_response`` serializes every element of the page (orjson: UTF-8, non-ASCII characters as they are) and
then escapes the result for the HTML with ``str.translate``. On an ASCII string that is a fast copy; one non-ASCII
character anywhere (the footer's "©", a "·" in a label, a person's name) makes CPython translate the whole string
character by character through the table: measured, 0.6 ms for the studio's 15 KB, on every page view. Written as
JSON ``\\uXXXX`` escapes, the same text stays ASCII; ``JSON.parse`` in the browser reads the same values.

Only ``nicegui.client`` is given this serializer (it looks ``json.dumps`` up at every call); socket messages and
everything else keep NiceGUI's own.
"""

from __future__ import annotations

import re
import types
from typing import Any

from nicegui import client, json

_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # beyond the BMP: a UTF-16 surrogate pair, as JSON writes it
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def dumps(obj: Any, *args: Any, **kwargs: Any) -> str:
    """NiceGUI's ``json.dumps``, with every non-ASCII character written as a JSON escape."""
    text = json.dumps(obj, *args, **kwargs)
    # In JSON text a non-ASCII character can only stand inside a string, where its escape means the same.
    return text if text.isascii() else _NON_ASCII.sub(_escape, text)


def install() -> None:
    """Give ``nicegui.client`` this serializer, NiceGUI's ``loads`` unchanged."""
    client.json = types.SimpleNamespace(dumps=dumps, loads=json.loads)  # type: ignore[assignment]
