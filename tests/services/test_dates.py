"""Dates in the visitor's own format, from the browser's Accept-Language header."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from rupali import dates

pytestmark = pytest.mark.sqlite_only

DAY = date(2026, 11, 28)


@pytest.mark.parametrize(("header", "expected"), [
    ("en-GB,en;q=0.9", "28 Nov 2026"),
    ("en-US,en;q=0.9", "Nov 28, 2026"),
    ("de-DE,de;q=0.9,en;q=0.8", "28.11.2026"),
    ("fr;q=0.2, de;q=0.9", "28.11.2026"),  # by weight, not by position
    ("xx-YY, en-GB", "28 Nov 2026"),  # unknown tags are skipped
    ("en_GB", "28 Nov 2026"),  # an underscore, as some clients send
])
def test_the_visitors_locale_decides_the_format(header, expected):
    assert dates.medium(DAY, dates.visitor_locale(header)) == expected


@pytest.mark.parametrize("header", [None, "", "*", ";q=", "en-GB;q=abc", "\x00\ud800", "x" * 100_000, "q=1,,,"])
def test_missing_or_hostile_headers_fall_back_to_the_pages_language(header):
    locale = dates.visitor_locale(header)
    assert dates.medium(DAY, locale) in {"Nov 28, 2026", "28 Nov 2026"}


def test_a_moment_keeps_utc_and_says_so():
    moment = datetime(2026, 11, 28, 8, 43, tzinfo=UTC)
    assert dates.moment(moment, dates.visitor_locale("en-GB")) == "28 Nov 2026, 08:43 UTC"
