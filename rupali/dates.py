"""Dates as the visitor writes them: the locale from their browser's Accept-Language, formatted with Babel (CLDR).

The pages are in English, but "11/12/2026" means different days in London and New York, so dates a person reads
or picks are shown in their own locale's medium format ("28 Nov 2026", "Nov 28, 2026", "28.11.2026").
"""

from __future__ import annotations

from datetime import date, datetime

from babel import Locale, UnknownLocaleError
from babel.dates import format_date

FALLBACK = Locale("en", "US")  # the language the pages are written in
_HEADER_LIMIT = 512


def visitor_locale(accept_language: str | None) -> Locale:
    """The first locale of ``Accept-Language`` that Babel knows, by the header's order of preference."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "")[:_HEADER_LIMIT].split(",")):
        tag, _, parameters = part.strip().partition(";")
        weight = 1.0
        if parameters.strip().startswith("q="):
            try:
                weight = float(parameters.strip()[2:])
            except ValueError:
                weight = 0.0
        if tag and tag != "*" and weight > 0:
            ranked.append((-weight, position, tag))
    for _, _, tag in sorted(ranked):
        try:
            return Locale.parse(tag.replace("_", "-"), sep="-")
        except (ValueError, TypeError, UnknownLocaleError):
            continue
    return FALLBACK


def medium(value: date, locale: Locale) -> str:
    """``28 Nov 2026`` in en-GB, ``Nov 28, 2026`` in en-US."""
    return format_date(value, "medium", locale=locale)


def moment(value: datetime, locale: Locale) -> str:
    """``28 Nov 2026, 08:43 UTC``: a stored (UTC) time with the date in the visitor's format."""
    return f"{medium(value.date(), locale)}, {value:%H:%M} UTC"
