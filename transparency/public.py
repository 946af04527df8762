"""The public figures (TRANSPARENCY_PUBLIC): the page and its JSON, rendered once per cache period
and served as stored bytes, so that anonymous readers, however many, cost neither the database nor
the renderer more than once a minute. Query strings are ignored: there is one public view."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from .charts import Series, bar_chart
from .months import MonthRange
from .selectors import OUTCOMES, cached, public_range, stats_cached


def public_months() -> MonthRange:
    return public_range(months=settings.TRANSPARENCY_PUBLIC_MONTHS)


def public_key(kind: str, months: MonthRange) -> str:
    return f"transparency:public:{kind}:{months.first}:{months.last}:{int(settings.TRANSPARENCY_PER_MEMBER)}"


def public_figures(months: MonthRange) -> dict[str, Any]:
    return stats_cached(months=months, per_member=settings.TRANSPARENCY_PER_MEMBER)


def public_json() -> bytes:
    months = public_months()
    return cached(public_key("json", months), lambda: json.dumps(public_figures(months)).encode())


def public_html() -> bytes:
    months = public_months()
    return cached(public_key("html", months), lambda: render_to_string(
        "transparency/page.html", page_context(public_figures(months))).encode())


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def row(name: str, figures: dict[str, Any]) -> dict[str, Any]:
    """One table row: the figures and the medians written for people."""
    medians = figures["disputes"]["median_resolution_seconds"]
    return {"name": name, "figures": figures, "median": duration(medians["all"]),
            "medians": {outcome: duration(medians[outcome]) for outcome in OUTCOMES}}


def page_context(figures: dict[str, Any]) -> dict[str, Any]:
    periods = figures["periods"]
    months = [p["period"] for p in periods]

    def series(name: str, *path: str) -> Series:
        values = []
        for period in periods:
            node: Any = period["all_labels"]
            for key in path:
                node = node[key]
            values.append(node)
        return Series(name, values)

    charts = {
        "Hashes per month": [
            series("added", "hashes", "added"),
            series("retracted by submitters", "hashes", "retracted_by_submitters"),
            series("removed by dispute", "hashes", "removed_by_dispute"),
        ],
        "Disputes per month": [
            series("opened", "disputes", "opened"),
            *(series(f"resolved: {outcome}", "disputes", "resolved", outcome) for outcome in OUTCOMES),
        ],
        "Contributions per month, by member kind": [
            series(kind, "contributions", kind) for kind in ("platform", "government", "ngo")
        ],
    }
    total = figures["total"]
    names = {label["slug"]: label["name"] for label in figures["labels"]}
    return {
        "figures": figures,
        # Drawn here from numbers and escaped names (transparency.charts).
        "charts": [{"title": title, "svg": mark_safe(bar_chart(title, months, drawn))}
                   for title, drawn in charts.items()],
        "months": [row(p["period"], p["all_labels"]) for p in periods],
        "month_groups": [{"name": p["period"], **p["group_only"]} for p in periods],
        "labels": [
            row(names[slug], total["by_label"][slug]) for slug in sorted(total["by_label"], key=lambda s: names[s])
        ] + [row("(no label)", total["unlabelled"])],
        "total": row("All labels", total["all_labels"]),
        "group_total": total["group_only"],
        "members": total.get("members"),
        "outcomes": OUTCOMES,
    }
