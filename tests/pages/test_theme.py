"""Design tokens keep text readable in both themes (WCAG AA: 4.5:1 for body text)."""

from __future__ import annotations

import pytest

from components import theme

pytestmark = pytest.mark.sqlite_only


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("tokens", [theme.LIGHT, theme.DARK], ids=["light", "dark"])
@pytest.mark.parametrize(("fg", "bg"), [("text", "bg"), ("text", "surface"), ("muted", "bg"), ("muted", "surface"),
                                        ("accent", "surface"), ("accent-text", "accent"), ("danger", "surface")])
def test_text_contrast_meets_wcag_aa(tokens, fg, bg):
    assert _contrast(tokens[fg], tokens[bg]) >= 4.5
