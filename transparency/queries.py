"""The SQL behind the transparency statistics. Every figure is counted by the database, grouped by
month and label, so that the work of one request is a handful of aggregate queries over the rows of
the range asked for (the indexes of transparency/migrations/0001 find those rows), never a loop over
rows in Python.

What counts, in the terms of hashes.models (README.md, "Transparency statistics", says it for
readers):

- Consortium-wide: a statement shared with the whole consortium (`share_group` empty), and a hash
  whose audience is the whole consortium. A consortium hash is *live* for the consortium at an
  instant when one of its corroborations by a consortium-wide statement is: created at or before
  it, and not ended at or before it. Only that life is counted, because it is what everyone can
  see: a sharing group's statements may keep a hash live for the group, or give it labels, and an
  outsider must not be able to tell.
- A hash is *added* each time it becomes live for the consortium (first shared, or shared again
  after every consortium-wide statement of it had gone); it is *retracted by its submitters* when
  the retraction of consortium-wide statements ends that life, and *removed by dispute* when an
  administrator's `removed` resolution ends it. One publishing batch is one instant: a batch that
  retracts one statement and adds another of the same hash changes nothing here.
- A hash's labels are those an administrator set when relabelling it, if any; otherwise every
  label any consortium-wide statement asserting it ever gave (retracted ones included, so that a
  retracted hash keeps the labels it had). Labels are today's, whatever the month counted.
- A dispute counts publicly when everyone can see it: opened by a consortium-wide verdict (or by
  the suppression list) on a consortium hash that was live for the consortium when it opened.
  Every other dispute counts only in the group-only totals. Time to resolution is resolved_at -
  opened_at, to the nearest second.
- Contributions are published hash statements, counted by the kind of member that signed them
  (platform, government, ngo: never the server) and by the statement's own labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from hashes.models import Corroboration, Dispute, Hash, Label, Statement
from members.models import Member

# Markers in result rows: a figure over every label, over the whole range, over every outcome.
ALL = "*"


@dataclass(frozen=True)
class Dialect:
    month: str  # SQL of a timestamp's UTC month as 'YYYY-MM'; {} is the column
    seconds: str  # SQL of {end} - {start} in whole seconds
    override_labels: str  # a FROM item: one row `o.value` per label of h.labels_override


SQLITE = Dialect(
    # Django keeps SQLite timestamps as UTC text, 'YYYY-MM-DD HH:MM:SS[.ffffff]'.
    month="substr({}, 1, 7)",
    seconds="round((julianday({end}) - julianday({start})) * 86400)",
    override_labels="json_each(h.labels_override) AS o",
)
POSTGRESQL = Dialect(
    month="to_char({} AT TIME ZONE 'UTC', 'YYYY-MM')",
    seconds="round(extract(epoch FROM {end} - {start}))",
    override_labels="jsonb_array_elements_text(h.labels_override) AS o(value)",
)


def dialect() -> Dialect:
    return POSTGRESQL if connection.vendor == "postgresql" else SQLITE


def tables() -> dict[str, str]:
    quote = connection.ops.quote_name
    return {
        "statement": quote(Statement._meta.db_table),
        "statement_labels": quote(Statement.labels.through._meta.db_table),
        "label": quote(Label._meta.db_table),
        "hash": quote(Hash._meta.db_table),
        "corroboration": quote(Corroboration._meta.db_table),
        "dispute": quote(Dispute._meta.db_table),
        "member": quote(Member._meta.db_table),
    }


def sql(template: str, **parts: str) -> str:
    return template.format(**tables(), **parts)


@dataclass(frozen=True)
class Audience:
    """Whose hashes a query counts: the consortium's, through consortium-wide statements only, or
    every sharing group's, through all of their statements."""

    hash: str  # condition on `h`
    statement: str  # condition on the statement `{alias}` that corroborates

    def of(self, alias: str) -> str:
        return self.statement.format(alias)


CONSORTIUM = Audience(hash="h.share_group_id IS NULL", statement="{}.share_group_id IS NULL")
GROUPS = Audience(hash="h.share_group_id IS NOT NULL", statement="1 = 1")


def live(audience: Audience, hash_id: str, instant: str, *, just_before: bool = False) -> str:
    """EXISTS: the hash has a corroboration of this audience live at `instant` (or just before it:
    live when the batch of that instant began)."""
    created, ended = ("<", ">=") if just_before else ("<=", ">")
    return sql(
        "EXISTS (SELECT 1 FROM {corroboration} x JOIN {statement} xs ON xs.id = x.statement_id"
        " WHERE x.hash_id = {hash_id} AND {audience} AND x.created_at {created} {instant}"
        " AND (x.retracted_at IS NULL OR x.retracted_at {ended} {instant}))",
        hash_id=hash_id, audience=audience.of("xs"), created=created, ended=ended, instant=instant,
    )


# Every fact query answers rows (subject, bucket, category, value): what is counted (a hash, a
# statement), its month, what kind of fact it is, and a duration for medians (or NULL).

def hash_facts(audience: Audience) -> str:
    """One row per time a hash became live or stopped being live for the audience in the range."""
    month = dialect().month
    source = sql(
        "FROM {corroboration} c JOIN {statement} s ON s.id = c.statement_id JOIN {hash} h ON h.id = c.hash_id"
        " WHERE {hash_audience} AND {statement_audience}",
        hash_audience=audience.hash, statement_audience=audience.of("s"),
    )
    return sql(
        "SELECT c.hash_id AS subject, {added_month} AS bucket, 'added' AS category, CAST(NULL AS FLOAT) AS value"
        " {source} AND c.created_at >= %(start)s AND c.created_at < %(end)s AND NOT {live_before}"
        " GROUP BY c.hash_id, c.created_at"
        " UNION ALL"
        " SELECT c.hash_id, {ended_month}, 'retracted_by_submitters', CAST(NULL AS FLOAT)"
        " {source} AND c.retracted_at >= %(start)s AND c.retracted_at < %(end)s"
        " AND s.retracted_at = c.retracted_at AND NOT {live_after}"
        " GROUP BY c.hash_id, c.retracted_at"
        " UNION ALL"
        " SELECT c.hash_id, {ended_month}, 'removed_by_dispute', CAST(NULL AS FLOAT)"
        " {source} AND c.retracted_at >= %(start)s AND c.retracted_at < %(end)s"
        " AND EXISTS (SELECT 1 FROM {dispute} d WHERE d.hash_id = c.hash_id AND d.state = 'removed'"
        " AND d.resolved_at = c.retracted_at) AND NOT {live_after}"
        " GROUP BY c.hash_id, c.retracted_at",
        source=source, added_month=month.format("c.created_at"), ended_month=month.format("c.retracted_at"),
        live_before=live(audience, "c.hash_id", "c.created_at", just_before=True),
        live_after=live(audience, "c.hash_id", "c.retracted_at"),
    )


def public_dispute() -> str:
    """Condition on dispute `d` of hash `h`: everyone who sees the hash sees it."""
    return ("d.share_group_id IS NULL AND h.share_group_id IS NULL AND "
            + live(CONSORTIUM, "d.hash_id", "d.opened_at"))


def dispute_facts(*, public: bool) -> str:
    """One row per dispute opened in the range ('opened') and per dispute resolved in it (its
    outcome, with the seconds it took)."""
    chosen = public_dispute() if public else f"NOT ({public_dispute()})"
    current = dialect()
    return sql(
        "SELECT d.hash_id AS subject, {opened_month} AS bucket, 'opened' AS category, CAST(NULL AS FLOAT) AS value"
        " FROM {dispute} d JOIN {hash} h ON h.id = d.hash_id"
        " WHERE {chosen} AND d.opened_at >= %(start)s AND d.opened_at < %(end)s"
        " UNION ALL"
        " SELECT d.hash_id, {resolved_month}, d.state, CAST({seconds} AS FLOAT)"
        " FROM {dispute} d JOIN {hash} h ON h.id = d.hash_id"
        " WHERE {chosen} AND d.state <> 'open' AND d.resolved_at >= %(start)s AND d.resolved_at < %(end)s",
        chosen=chosen, opened_month=current.month.format("d.opened_at"),
        resolved_month=current.month.format("d.resolved_at"),
        seconds=current.seconds.format(start="d.opened_at", end="d.resolved_at"),
    )


def contribution_filter(*, public: bool) -> str:
    kinds = ", ".join(f"'{kind}'" for kind in Member.MEMBER_KINDS)
    return (f"s.kind = 'hash' AND s.state = 'published' AND s.share_group_id IS {'' if public else 'NOT '}NULL"
            f" AND m.kind IN ({kinds}) AND s.published_at >= %(start)s AND s.published_at < %(end)s")


def contribution_facts(*, public: bool) -> str:
    """One row per hash statement published in the range, by its member's kind."""
    return sql(
        "SELECT s.id AS subject, {month} AS bucket, m.kind AS category, CAST(NULL AS FLOAT) AS value"
        " FROM {statement} s JOIN {member} m ON m.id = s.member_id WHERE {where}",
        month=dialect().month.format("s.published_at"), where=contribution_filter(public=public),
    )


def hash_labels() -> str:
    """(subject, label) for the hashes among the facts, each label once."""
    return sql(
        "SELECT c.hash_id AS subject, l.slug AS label FROM {corroboration} c"
        " JOIN {statement} s ON s.id = c.statement_id JOIN {hash} h ON h.id = c.hash_id"
        " JOIN {statement_labels} sl ON sl.statement_id = s.id JOIN {label} l ON l.id = sl.label_id"
        " WHERE c.hash_id IN (SELECT subject FROM facts) AND s.share_group_id IS NULL AND h.labels_override IS NULL"
        " UNION"
        " SELECT h.id, o.value FROM {hash} h, {override_labels}"
        " WHERE h.id IN (SELECT subject FROM facts) AND h.labels_override IS NOT NULL",
        override_labels=dialect().override_labels,
    )


def statement_labels() -> str:
    """(subject, label) for the statements among the facts."""
    return sql(
        "SELECT sl.statement_id AS subject, l.slug AS label FROM {statement_labels} sl"
        " JOIN {label} l ON l.id = sl.label_id WHERE sl.statement_id IN (SELECT subject FROM facts)"
    )


@dataclass(frozen=True)
class Tally:
    """Counts and medians by (bucket, label, category). `label` is ALL for the figure over every
    label (each fact once), None for facts with no label; `bucket` is a month or ALL for the whole
    range; medians also have `category` ALL, over every category."""

    counts: dict[tuple[str, str | None, str], int]
    medians: dict[tuple[str, str | None, str], float]


def tally(facts: str, labels: str | None, window: tuple[datetime, datetime], *, medians: bool = False) -> Tally:
    """Count the facts per month, label and category (and over the range), in the database."""
    scoped = "SELECT bucket, 0 AS by_label, CAST(NULL AS VARCHAR(64)) AS label, category, value FROM facts"
    if labels is not None:
        scoped += (" UNION ALL SELECT f.bucket, 1, l.label, f.category, f.value"
                   " FROM facts f LEFT JOIN labels l ON l.subject = f.subject")
    common = f"WITH facts AS ({facts}), " + (f"labels AS ({labels}), " if labels else "") + f"scoped AS ({scoped}) "
    params = window_params(window)
    counts: dict[tuple[str, str | None, str], int] = {}
    found: dict[tuple[str, str | None, str], float] = {}
    with connection.cursor() as cursor:
        cursor.execute(common + "SELECT bucket, by_label, label, category, COUNT(*) FROM scoped"
                                " GROUP BY bucket, by_label, label, category", params)
        for bucket, by_label, label, category, count in cursor.fetchall():
            counts[(bucket, label if by_label else ALL, category)] = count
        if medians:
            cursor.execute(common + MEDIANS, params)
            for bucket, by_label, label, category, median in cursor.fetchall():
                found[(bucket, label if by_label else ALL, category)] = float(median)
    return Tally(counts, found)


# The median of each group, over the months and the whole range, per category and over all of
# them: the middle value, or the mean of the two middle values, found by window functions.
MEDIANS = f""", spans AS (
    SELECT bucket, by_label, label, category, value FROM scoped WHERE value IS NOT NULL
    UNION ALL SELECT '{ALL}', by_label, label, category, value FROM scoped WHERE value IS NOT NULL
    UNION ALL SELECT bucket, by_label, label, '{ALL}', value FROM scoped WHERE value IS NOT NULL
    UNION ALL SELECT '{ALL}', by_label, label, '{ALL}', value FROM scoped WHERE value IS NOT NULL
), ranked AS (
    SELECT bucket, by_label, label, category, value,
           ROW_NUMBER() OVER (PARTITION BY bucket, by_label, label, category ORDER BY value) AS place,
           COUNT(*) OVER (PARTITION BY bucket, by_label, label, category) AS how_many
    FROM spans
)
SELECT bucket, by_label, label, category, AVG(value) FROM ranked
WHERE place IN ((how_many + 1) / 2, (how_many + 2) / 2)
GROUP BY bucket, by_label, label, category"""


def member_contributions(window: tuple[datetime, datetime]) -> list[tuple[str, str, str, int]]:
    """(month, member slug, member kind, consortium-wide hash statements published)."""
    month = dialect().month.format("s.published_at")
    query = sql(
        "SELECT {month}, m.slug, m.kind, COUNT(*) FROM {statement} s JOIN {member} m ON m.id = s.member_id"
        " WHERE {where} GROUP BY {month}, m.slug, m.kind",
        month=month, where=contribution_filter(public=True),
    )
    with connection.cursor() as cursor:
        cursor.execute(query, window_params(window))
        return [(bucket, slug, kind, count) for bucket, slug, kind, count in cursor.fetchall()]


def label_names(slugs: list[str]) -> dict[str, str]:
    return dict(Label.objects.filter(slug__in=slugs).values_list("slug", "name"))


def window_params(window: tuple[datetime, datetime]) -> dict[str, Any]:
    start, end = window
    return {"start": connection.ops.adapt_datetimefield_value(start),
            "end": connection.ops.adapt_datetimefield_value(end)}
