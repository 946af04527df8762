"""Bar charts as inline SVG, drawn on the server: the public page loads nothing from anywhere, not
even from this server. Plain values in, markup out; every text is escaped."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

# Colour-blind-safe (Okabe and Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")
WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 34, 40
MAX_AXIS_LABELS = 12
TICKS = 4


@dataclass(frozen=True)
class Series:
    name: str
    values: list[int]


def nice_step(value: float) -> int:
    """The smallest of 1, 2 or 5 times a power of ten at or above `value` (at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def axis(largest: int) -> tuple[int, int]:
    """(top, step) of a value axis showing `largest` with at most TICKS whole steps."""
    step = nice_step(largest / TICKS)
    return max(step, step * math.ceil(largest / step)), step


def bar_chart(title: str, categories: list[str], series: list[Series]) -> str:
    """Grouped bars: one group per category (a month), one bar per series, a legend on top."""
    top, step = axis(max((v for s in series for v in s.values), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group_w = plot_w / max(len(categories), 1)
    bar_w = group_w * 0.8 / max(len(series), 1)
    parts = [
        # Inline in HTML, where the parser gives <svg> its namespace: no xmlns, no URL on the page.
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
    ]
    for value in range(0, top + 1, step):
        y = TOP + plot_h - plot_h * value / top
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value}</text>')
    every = max(1, math.ceil(len(categories) / MAX_AXIS_LABELS))
    for n, category in enumerate(categories):
        x0 = LEFT + n * group_w + group_w * 0.1
        for k, each in enumerate(series):
            value = each.values[n]
            height = plot_h * value / top
            parts.append(
                f'<rect x="{x0 + k * bar_w:.1f}" y="{TOP + plot_h - height:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                f'height="{height:.1f}" fill="{PALETTE[k % len(PALETTE)]}">'
                f"<title>{escape(category)}: {escape(each.name)} {value}</title></rect>"
            )
        if n % every == 0:
            parts.append(f'<text x="{LEFT + (n + 0.5) * group_w:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                         f'text-anchor="middle">{escape(category)}</text>')
    x = LEFT
    for k, each in enumerate(series):
        parts.append(f'<rect x="{x}" y="8" width="12" height="12" fill="{PALETTE[k % len(PALETTE)]}"/>')
        parts.append(f'<text x="{x + 16}" y="18">{escape(each.name)}</text>')
        x += 24 + 7 * len(each.name)
    parts.append("</svg>")
    return "".join(parts)
