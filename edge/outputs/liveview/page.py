"""The live view's one HTML page: ``page.html`` (package data) with the overlay's legend filled in.

The page is a real file so that it reads, lints and diffs as HTML; it ships inside the
wheel as package data (``pyproject.toml``) and is read once, on first use. The legend is
generated from the colours :mod:`edge.frame.annotate` draws with, so page and picture agree.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from edge.frame.annotate import BOLD_FROM, GENDER_COLORS_BGR, UNKNOWN_COLOR_BGR

PAGE_FILE = "page.html"
LEGEND_MARK = "__LEGEND__"


def legend_html() -> str:
    """The overlay's colours and label style, from the constants :mod:`edge.frame.annotate` draws with."""
    def swatch(bgr: tuple[int, int, int], text: str) -> str:
        b, g, r = bgr
        return f'<span class="swatch" style="background: rgb({r},{g},{b})"></span>{text}'

    genders = [swatch(GENDER_COLORS_BGR[name], name) for name in ("woman", "man")]
    genders.append(swatch(UNKNOWN_COLOR_BGR, "gender not known yet"))
    return ("box and label colour = gender: " + " &nbsp; ".join(genders) +
            f"<br>label = track, emotion, its smoothed probability / gender; the label's background is"
            f" fainter the less sure the emotion, and its text bold from {BOLD_FROM:.1f}")


@cache
def page() -> bytes:
    """The page as served: ``page.html`` with the legend in place of its ``__LEGEND__`` mark."""
    text = files(__package__).joinpath(PAGE_FILE).read_text(encoding="utf-8")
    return text.replace(LEGEND_MARK, legend_html()).encode()
