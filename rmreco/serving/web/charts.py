"""This module owns the workspace's charts: monthly series drawn as inline SVG on the server.

No chart library travels to the browser: the page holds the drawing itself, so it renders
offline, without JavaScript, at any width (the SVG scales to its box), and a screen reader
reads its title and summary (``role="img"`` with ``<title>`` and ``<desc>``); the page lists the
figures beside it as a table. Missing months (NaN) break a line instead of being drawn as zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 86, 28, 12, 40
#: Colours of the series, in order: distinguishable for the common colour-vision deficiencies
#: (Okabe-Ito), and every series also has its own dash pattern.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2")


@dataclass(frozen=True)
class Series:
    """One line of a chart: a name for the legend and a value per month (NaN: none)."""

    name: str
    values: Sequence[float]


def line_chart(
    chart_id: str,
    title: str,
    months: Sequence[date],
    series: Sequence[Series],
    *,
    label: Callable[[float], str] = lambda v: f"{v:,.0f}",
    floor_at_zero: bool = True,
) -> str:
    """An SVG line chart of ``series`` over ``months``; ``label`` writes an axis value."""
    values = [v for s in series for v in s.values if not math.isnan(v)]
    if not months or not values:
        return (
            f'<p class="no-chart" id="{escape(chart_id)}">{escape(title)}: '
            "no figures for these months.</p>"
        )
    low, high = min(values), max(values)
    if floor_at_zero:
        low = min(low, 0.0)
    if high == low:
        high = low + 1.0
    ticks = _ticks(low, high)
    low, high = min(low, ticks[0]), max(high, ticks[-1])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(months) - 1, 1)

    def x(i: int) -> float:
        return LEFT + i * step

    def y(v: float) -> float:
        return TOP + plot_h * (1 - (v - low) / (high - low))

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" id="{escape(chart_id)}" '
        'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(_summary(months, series, label))}</desc>',
    ]
    for tick in ticks:
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" '
            f'y2="{y(tick):.1f}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">'
            f"{escape(label(tick))}</text>"
        )
    every = max(1, math.ceil(len(months) / 8))
    for i, month in enumerate(months):
        if i % every == 0 or i == len(months) - 1:
            parts.append(
                f'<text class="axis" x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 16}" '
                f'text-anchor="middle">{month:%b %y}</text>'
            )
    for k, line in enumerate(series):
        colour, dash = COLOURS[k % len(COLOURS)], DASHES[k % len(DASHES)]
        for run in _runs(line.values):
            points = " ".join(f"{x(i):.1f},{y(line.values[i]):.1f}" for i in run)
            if len(run) == 1:
                i = run[0]
                parts.append(
                    f'<circle cx="{x(i):.1f}" cy="{y(line.values[i]):.1f}" r="2.5" '
                    f'fill="{colour}"/>'
                )
            else:
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                    f'stroke-dasharray="{dash}" points="{points}"/>'
                )
        legend_x = LEFT + k * 150
        parts.append(
            f'<line x1="{legend_x}" x2="{legend_x + 18}" y1="{HEIGHT - 8}" y2="{HEIGHT - 8}" '
            f'stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>'
            f'<text class="legend" x="{legend_x + 22}" y="{HEIGHT - 4}">{escape(line.name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _runs(values: Sequence[float]) -> list[list[int]]:
    """The indexes of ``values`` in runs of consecutive known (not NaN) values."""
    runs: list[list[int]] = []
    current: list[int] = []
    for i, v in enumerate(values):
        if math.isnan(v):
            if current:
                runs.append(current)
            current = []
        else:
            current.append(i)
    if current:
        runs.append(current)
    return runs


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round axis values covering ``low`` .. ``high``."""
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks = [first]
    while ticks[-1] < high - 1e-12:
        ticks.append(ticks[-1] + step)
    return ticks


def _summary(
    months: Sequence[date], series: Sequence[Series], label: Callable[[float], str]
) -> str:
    """What the chart shows, in words: each series' first and last known value."""
    words = [f"{months[0]:%B %Y} to {months[-1]:%B %Y}."]
    for line in series:
        known = [(m, v) for m, v in zip(months, line.values, strict=True) if not math.isnan(v)]
        if known:
            words.append(
                f"{line.name}: {label(known[0][1])} in {known[0][0]:%b %Y}, "
                f"{label(known[-1][1])} in {known[-1][0]:%b %Y}."
            )
        else:
            words.append(f"{line.name}: no figures.")
    return " ".join(words)
