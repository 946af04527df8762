"""Database helpers the ORM does not offer efficiently."""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from django.db import connections, models, router, transaction


def update_rows(model: type[models.Model], rows: Sequence[models.Model], fields: Iterable[str], *,
                match: Iterable[str] = (), where: Mapping[str, object] | None = None) -> set[object]:
    """Write `fields` of each of `rows` to the database; the primary keys of the rows written.

    A row is written only where its stored `match` fields equal the row's own values and the stored
    `where` fields equal the values given (a claim's fence: `attempt_count` still the one sent,
    `state` still pending).

    Django's bulk_update builds one CASE WHEN per field per row, which costs ~0.2 ms of Python per
    field and row (most of a verification batch). On PostgreSQL this is one
    UPDATE ... FROM (VALUES ...) instead; elsewhere (SQLite, one writer at a time) a plain UPDATE per
    row is as fast as it gets."""
    if not rows:
        return set()
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    fences = [meta.get_field(name) for name in match]
    where = dict(where or {})
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        written = set()
        for row in rows:
            narrowed = model._base_manager.filter(pk=row.pk, **{f.attname: getattr(row, f.attname) for f in fences},
                                                  **where)
            if narrowed.update(**{c.attname: getattr(row, c.attname) for c in columns}):
                written.add(row.pk)
        return written
    pk = meta.pk
    quote = connection.ops.quote_name
    carried = [pk, *columns, *fences]
    placeholders = "(" + ", ".join(f"%s::{f.db_type(connection)}" for f in carried) + ")"
    params: list[object] = []
    for row in rows:
        params.append(pk.get_db_prep_save(row.pk, connection))
        params += [f.get_db_prep_save(getattr(row, f.attname), connection) for f in (*columns, *fences)]
    names = [f"c{n}" for n in range(len(columns))]
    fence_names = [f"f{n}" for n in range(len(fences))]
    conditions = [f"t.{quote(pk.column)} = v.pk"]
    conditions += [f"t.{quote(f.column)} = v.{name}" for f, name in zip(fences, fence_names)]
    for name, value in where.items():
        field = meta.get_field(name)
        conditions.append(f"t.{quote(field.column)} = %s")
    sql = (
        f"UPDATE {quote(meta.db_table)} AS t SET "
        + ", ".join(f"{quote(c.column)} = v.{name}" for c, name in zip(columns, names))
        + f" FROM (VALUES {', '.join([placeholders] * len(rows))}) AS v(pk, {', '.join([*names, *fence_names])})"
        + f" WHERE {' AND '.join(conditions)} RETURNING t.{quote(pk.column)}"
    )
    params += [meta.get_field(name).get_db_prep_save(value, connection) for name, value in where.items()]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def insert_rows(model: type[models.Model], rows: Sequence[dict[str, object]]) -> None:
    """Insert rows given as {field name: value}, all with the same keys, without building model
    instances: publishing appends thousands of rows a second and the ORM's per-instance cost
    dominated it. Values are prepared by the fields themselves, exactly as the ORM would."""
    if not rows:
        return
    meta = model._meta
    columns = [meta.get_field(name) for name in rows[0]]
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    sql_head = f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(c.column) for c in columns)}) VALUES "
    # SQLite allows 999 (older) to 32766 parameters per statement; stay well under either.
    per_statement = max(1, 900 // len(columns))
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start:start + per_statement]
            params = [c.get_db_prep_save(row[c.name], connection) for row in chunk for c in columns]
            cursor.execute(sql_head + ", ".join([one] * len(chunk)), params)


def commit_without_waiting_for_the_disk() -> None:
    """On PostgreSQL, let the current transaction's commit return before its WAL reaches the disk
    (`synchronous_commit` off for it alone). Only for writes whose loss in a database crash, a
    fraction of a second after they were committed, costs a repetition and never a gap: the caller
    says why in its own words."""
    connection = transaction.get_connection()
    assert connection.in_atomic_block, "only for the current transaction"
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
