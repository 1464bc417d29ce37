"""This module owns how the workspace writes a page: the Jinja environment (templates shipped in
this package, escaping on), the filters that put figures the way a banker reads them (amounts
with their currency, PD as a percentage, a grade with its place on the scale), and the page
response with the headers every page carries."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

TEMPLATES = Path(__file__).resolve().parent / "templates"

#: Headers of every page: no framing by other sites, no content from anywhere but the app,
#: nothing cached by a shared proxy (pages show a client's figures).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def money(value: float | None, currency: str, *, compact: bool = False) -> str:
    """An amount with its currency: ``EUR 1,250,000`` (``EUR 1.25m`` when ``compact``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if compact and abs(value) >= 1_000_000:
        return f"{currency} {value / 1_000_000:,.2f}m"
    if compact and abs(value) >= 10_000:
        return f"{currency} {value / 1_000:,.0f}k"
    return f"{currency} {value:,.0f}"


def percent(value: float | None, digits: int = 2) -> str:
    """A probability as a percentage: 0.01234 -> ``1.23 %``; small ones keep a figure."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    shown = value * 100
    if 0 < shown < 10 ** (-digits):
        return f"< {10 ** (-digits):.{digits}f} %"
    return f"{shown:.{digits}f} %"


def grade_on_scale(grade: str | None, grades: Sequence[str]) -> str:
    """A grade with its place on the master scale (1 is the best): ``4 of 10``, ``B (2 of
    7)``; D (default) said so."""
    if not grade:
        return "not graded"
    if grade in grades:
        ordinary = [g for g in grades if g != "D"]
        if grade == "D":
            return "D (in default)"
        place = ordinary.index(grade) + 1
        if grade == str(place):
            return f"{grade} of {len(ordinary)}"
        return f"{grade} ({place} of {len(ordinary)})"
    return grade


@functools.cache
def environment() -> Environment:
    """The templates' environment, built once per process."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money
    env.filters["percent"] = percent
    return env


def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """The rendered page ``template`` with ``context``."""
    html = environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)
