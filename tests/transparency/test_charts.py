"""Charts drawn on the server (transparency.charts): plain values in, SVG out."""

from __future__ import annotations

import re

import pytest

from transparency.charts import HEIGHT, TOP, BOTTOM, Series, axis, bar_chart


@pytest.mark.parametrize("largest, top, step", [(0, 1, 1), (1, 1, 1), (3, 3, 1), (5, 6, 2), (9, 10, 5),
                                                (13, 15, 5), (101, 150, 50), (20000, 20000, 5000)])
def test_the_axis_ends_on_a_whole_step_at_or_above_the_largest_value(largest, top, step):
    assert axis(largest) == (top, step)


def bars(svg: str) -> list[tuple[float, str]]:
    """(height, tooltip) of each bar."""
    return [(float(h), t) for h, t in re.findall(r'<rect [^>]*height="([\d.]+)"[^>]*><title>([^<]*)</title>', svg)]


def test_bars_are_drawn_to_scale_with_one_tooltip_each():
    svg = bar_chart("Hashes", ["2025-01", "2025-02"], [Series("added", [4, 2]), Series("removed", [0, 1])])
    plot = HEIGHT - TOP - BOTTOM

    assert bars(svg) == [(plot, "2025-01: added 4"), (0.0, "2025-01: removed 0"),
                         (plot / 2, "2025-02: added 2"), (plot / 4, "2025-02: removed 1")]


def test_names_are_escaped_and_nothing_is_fetched():
    svg = bar_chart('<script>alert("x")</script>', ["<b>"], [Series("a & b", [1])])

    assert "<script>" not in svg and "<b>" not in svg
    assert "&lt;script&gt;" in svg and "a &amp; b" in svg
    assert "href" not in svg and "http" not in svg


def test_an_empty_chart_draws_no_bars_and_does_not_fail():
    assert bars(bar_chart("Nothing", ["2025-01"], [Series("added", [0])])) == [(0.0, "2025-01: added 0")]
    assert "<svg" in bar_chart("Nothing", [], [])
