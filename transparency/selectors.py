"""The transparency statistics: the same figures for every reader (members through the API, anyone on
the public page), counted over consortium-wide statements, with sharing groups' statements only in
totals. What each figure counts is said in transparency/queries.py and in README.md."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Callable

from django.core.cache import cache
from django.utils import timezone

from hashes.models import Dispute
from members.models import Member

from . import queries
from .months import Month, MonthRange
from .queries import ALL, CONSORTIUM, GROUPS, Tally

logger = logging.getLogger(__name__)

HASH_FIGURES = ("added", "retracted_by_submitters", "removed_by_dispute")
OUTCOMES = (Dispute.State.UPHELD.value, Dispute.State.RELABELLED.value, Dispute.State.REMOVED.value)
KINDS = Member.MEMBER_KINDS
# How long computed figures are served before they are counted again: a flood of readers costs the
# database one computation per range and period, whatever their number.
CACHE_SECONDS = 60


def stats_figures(*, months: MonthRange, per_member: bool) -> dict[str, Any]:
    """Every figure for each month of the range and for the whole range."""
    window = (months.start(), months.end())
    hashes = queries.tally(queries.hash_facts(CONSORTIUM), queries.hash_labels(), window)
    disputes = queries.tally(queries.dispute_facts(public=True), queries.hash_labels(), window, medians=True)
    contributions = queries.tally(queries.contribution_facts(public=True), queries.statement_labels(), window)
    group_hashes = queries.tally(queries.hash_facts(GROUPS), None, window)
    group_disputes = queries.tally(queries.dispute_facts(public=False), None, window)
    group_contributions = queries.tally(queries.contribution_facts(public=False), None, window)
    buckets = [str(month) for month in months.months()]

    def count(tally: Tally, bucket: str, label: str | None, category: str) -> int:
        if bucket == ALL:
            return sum(tally.counts.get((each, label, category), 0) for each in buckets)
        return tally.counts.get((bucket, label, category), 0)

    def figures(bucket: str, label: str | None) -> dict[str, Any]:
        return {
            "hashes": {name: count(hashes, bucket, label, name) for name in HASH_FIGURES},
            "disputes": {
                "opened": count(disputes, bucket, label, "opened"),
                "resolved": {outcome: count(disputes, bucket, label, outcome) for outcome in OUTCOMES},
                "median_resolution_seconds": {
                    outcome: seconds(disputes.medians.get((bucket, label, key)))
                    for outcome, key in (("all", ALL), *((o, o) for o in OUTCOMES))
                },
            },
            "contributions": {kind: count(contributions, bucket, label, kind) for kind in KINDS},
        }

    def group_only(bucket: str) -> dict[str, Any]:
        return {
            "contributions": sum(count(group_contributions, bucket, ALL, kind) for kind in KINDS),
            "hashes": {name: count(group_hashes, bucket, ALL, name) for name in HASH_FIGURES},
            "disputes": {"opened": count(group_disputes, bucket, ALL, "opened"),
                         "resolved": sum(count(group_disputes, bucket, ALL, o) for o in OUTCOMES)},
        }

    slugs = sorted({label for tally in (hashes, disputes, contributions) for (_, label, _) in tally.counts
                    if label not in (ALL, None)})
    members = member_figures(window, buckets) if per_member else None

    def block(bucket: str) -> dict[str, Any]:
        body = {
            "all_labels": figures(bucket, ALL),
            "by_label": {slug: figures(bucket, slug) for slug in slugs},
            "unlabelled": figures(bucket, None),
            "group_only": group_only(bucket),
        }
        if members is not None:
            body["members"] = members(bucket)
        return body

    names = queries.label_names(slugs)
    return {
        "period": "month",
        "from": str(months.first),
        "to": str(months.last),
        "generated_at": timezone.now().replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "labels": [{"slug": slug, "name": names.get(slug, slug)} for slug in slugs],
        "periods": [{"period": bucket, **block(bucket)} for bucket in buckets],
        "total": block(ALL),
    }


def member_figures(window: tuple[datetime, datetime], buckets: list[str]) -> Callable[[str], list[dict[str, Any]]]:
    """Contributions of each member (consortium-wide hash statements), per month and in total."""
    per_bucket: dict[str, dict[tuple[str, str], int]] = {bucket: {} for bucket in (*buckets, ALL)}
    for bucket, slug, kind, number in queries.member_contributions(window):
        per_bucket[bucket][(slug, kind)] = number
        per_bucket[ALL][(slug, kind)] = per_bucket[ALL].get((slug, kind), 0) + number

    def members(bucket: str) -> list[dict[str, Any]]:
        return [{"member": slug, "kind": kind, "contributions": number}
                for (slug, kind), number in sorted(per_bucket[bucket].items())]

    return members


def seconds(value: float | None) -> int | float | None:
    """Whole seconds stay whole; a median between two of them ends in .5."""
    if value is None:
        return None
    value = round(value, 1)
    return int(value) if value.is_integer() else value


def stats_cached(*, months: MonthRange, per_member: bool) -> dict[str, Any]:
    """stats_figures, counted at most once per CACHE_SECONDS for each range (in the cache every
    server process shares). Should the cache be unreachable, the figures are counted each time."""
    return cached(f"transparency:figures:{months.first}:{months.last}:{int(per_member)}",
                  lambda: stats_figures(months=months, per_member=per_member))


def cached(key: str, compute: Callable[[], Any]) -> Any:
    try:
        found = cache.get(key)
    except Exception:
        logger.warning("Statistics cache unreachable; counting without it.", exc_info=True)
        return compute()
    if found is not None:
        return found
    value = compute()
    try:
        cache.set(key, value, CACHE_SECONDS)
    except Exception:
        logger.warning("Statistics cache unreachable; counting without it.", exc_info=True)
    return value


def public_range(*, months: int) -> MonthRange:
    """The months the public page shows: the last `months`, up to the current one."""
    return MonthRange.ending(Month.of(timezone.now()), months)
