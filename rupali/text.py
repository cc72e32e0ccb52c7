"""Text from people, checked once where it enters: valid Unicode, no control characters, a length per field.

A lone surrogate (``\\ud800``, which JSON and browsers can carry) cannot be stored or encoded, and a NUL or other
C0 control character has no business in a prompt or a name: either would fail deep inside (a 500) or travel on
into pages and PNG files. Services call :func:`clean` for every field a person or an API client fills in and turn
:class:`InvalidText` into their own refusal, naming the field.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass


@dataclass
class InvalidText(ValueError):
    """A text field that cannot be accepted; ``message`` is a sentence for the person."""

    field: str
    message: str

    def __str__(self) -> str:
        return self.message


def is_valid_unicode(value: str) -> bool:
    """False for strings holding lone surrogates (not encodable as UTF-8)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean(value: str | None, *, field: str, label: str, max_length: int, multiline: bool = False) -> str:
    """``value`` trimmed, line endings as ``\\n``, refused if it holds anything but text or is too long.

    Tabs are allowed everywhere, newlines only in ``multiline`` fields. An empty result is for the caller to judge.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidText(field, f"{label} must be text.")
    if not is_valid_unicode(value):
        raise InvalidText(field, f"{label} contains characters that are not valid text. Please retype it.")
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    allowed = {"\t", "\n"} if multiline else {"\t"}
    for character in value:
        if character not in allowed and unicodedata.category(character) == "Cc":
            shown = "a line break" if character == "\n" else f"the control character U+{ord(character):04X}"
            raise InvalidText(field, f"{label} contains {shown}, which is not allowed here.")
    value = value.strip()
    if len(value) > max_length:
        raise InvalidText(field, f"{label} is {len(value)} characters long; the limit is {max_length}.")
    return value
