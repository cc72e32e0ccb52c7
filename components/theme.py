"""Design tokens: the one place for colours, spacing and radii, in light and dark.

Tokens become CSS custom properties (``--r-*``) used by ``assets/style.css``; Quasar's own colours follow the
accent. Contrast of text on background is at least 4.5:1 in both themes (tests/pages/test_theme.py checks it).
"""

from __future__ import annotations

from nicegui import app, ui

LIGHT = {
    "bg": "#f6f6f7",
    "surface": "#ffffff",
    "surface-2": "#eeeef1",
    "text": "#17171c",
    "muted": "#55555f",
    "border": "#dcdce2",
    "accent": "#6d28d9",
    "accent-text": "#ffffff",
    "danger": "#b42318",
}
DARK = {
    "bg": "#0e0e11",
    "surface": "#17171b",
    "surface-2": "#222228",
    "text": "#f2f2f4",
    "muted": "#a3a3ad",
    "border": "#2c2c34",
    "accent": "#a78bfa",
    "accent-text": "#16112a",
    "danger": "#f97066",
}
SPACING = {"xs": "4px", "sm": "8px", "md": "16px", "lg": "24px", "xl": "40px", "xxl": "64px"}
RADIUS = {"sm": "6px", "md": "10px", "lg": "16px"}
# Charts draw on a canvas that cannot read the CSS variables: colours that read on both themes' surfaces. The
# series order is succeeded, failed, blocked, other; the text grey is 4.5:1 on white and 4:1 on the dark surface.
CHART_COLOURS = ("#7c3aed", "#e5484d", "#d97706", "#6b7280")
CHART_TEXT = "#77777f"
CHART_GRID = "rgba(119, 119, 127, 0.25)"
CONTENT_WIDTH = "1200px"
TEXT_WIDTH = "760px"


def css_variables() -> str:
    """The tokens as CSS custom properties for the light theme and Quasar's dark body class."""
    def block(tokens: dict[str, str], prefix: str = "") -> str:
        return "".join(f"--r-{prefix}{name}:{value};" for name, value in tokens.items())

    shared = block(SPACING, "space-") + block(RADIUS, "radius-")
    shared += f"--r-content-width:{CONTENT_WIDTH};--r-text-width:{TEXT_WIDTH};"
    # Quasar's brand colours follow the theme too (the light accent on near-black fails contrast). Quasar writes
    # them into <body>'s inline style, so the dark values go one level down: the app and Quasar's popups.
    dark_brand = f"--q-primary:{DARK['accent']};--q-negative:{DARK['danger']};"
    return f":root{{{block(LIGHT)}{shared}}} body.body--dark{{{block(DARK)}}} body.body--dark>*{{{dark_brand}}}"


def apply() -> None:
    """Install the tokens, the stylesheet and the page script on every page (called once at start-up)."""
    app.colors(primary=LIGHT["accent"], negative=LIGHT["danger"])
    ui.add_head_html(
        f"<style>{css_variables()}</style>"
        '<link rel="stylesheet" href="/assets/style.css">'
        '<script src="/assets/rupali.js" defer></script>',
        shared=True,
    )
