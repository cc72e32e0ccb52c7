"""A labelled image picker with drag and drop, replacing Quasar's uploader (whose file input has no label).

It keeps NiceGUI's upload route and handlers (``on_upload`` receives the same event) and swaps only the browser
side: a native file input named by a visible label. Files of the wrong type or size are refused in the browser
with a reason, and the server decodes every file again before keeping it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui

IMAGE_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WebP"}
_KNOWN_TYPES = {"image/gif": "a GIF", "image/svg+xml": "an SVG drawing", "image/heic": "a HEIC photo",
                "image/heif": "a HEIF photo", "image/avif": "an AVIF image", "image/bmp": "a BMP image",
                "image/tiff": "a TIFF image", "application/pdf": "a PDF document"}


class FileDrop(ui.upload, component="file_drop.js"):
    """Pick or drop one image; ``on_refused`` gets a sentence saying what is wrong with a refused file."""

    def __init__(self, label: str, *, max_bytes: int, on_upload: Callable[..., Any],
                 on_refused: Callable[[str], Any], hint: str | None = None) -> None:
        super().__init__(auto_upload=True, max_file_size=max_bytes, on_upload=on_upload)
        self._props["label"] = label
        self._props["hint"] = hint or f"PNG, JPEG or WebP, up to {max_bytes // (1024 * 1024)} MB. Or drop it here."
        self._props["accept"] = ",".join(IMAGE_TYPES)
        self.on("rejected", lambda event: on_refused(refusal(event.args, max_bytes)))
        self.on("failed", lambda _: on_refused("The upload did not reach the server. Please try again."))


def refusal(facts: Any, max_bytes: int) -> str:
    """The sentence for a file the browser refused: what it is, and what would be accepted."""
    facts = facts if isinstance(facts, dict) else {}
    if facts.get("reason") == "size":
        return f"That file is larger than {max_bytes // (1024 * 1024)} MB. Choose a smaller image."
    kind = str(facts.get("type") or "")[:60]
    described = _KNOWN_TYPES.get(kind) or ("a file of an unknown type" if not kind else f"a {kind} file")
    return f"That file is {described}. Choose a PNG, JPEG or WebP image."

