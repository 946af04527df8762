"""Database helpers the ORM does not offer efficiently."""

from __future__ import annotations

from typing import Iterable, Sequence

from django.db import connections, models, router


def update_rows(model: type[models.Model], rows: Sequence[models.Model], fields: Iterable[str]) -> None:
    """Write `fields` of each of `rows` to the database.

    Django's bulk_update builds one CASE WHEN per field per row, which costs ~0.2 ms of Python per
    field and row (most of a verification batch). On PostgreSQL this is one
    UPDATE ... FROM (VALUES ...) instead; elsewhere (SQLite, one writer at a time) a plain UPDATE per
    row is as fast as it gets."""
    if not rows:
        return
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        for row in rows:
            model._base_manager.filter(pk=row.pk).update(**{c.attname: getattr(row, c.attname) for c in columns})
        return
    pk = meta.pk
    quote = connection.ops.quote_name
    placeholders = "(" + ", ".join(f"%s::{f.db_type(connection)}" for f in [pk, *columns]) + ")"
    params: list[object] = []
    for row in rows:
        params.append(pk.get_db_prep_save(row.pk, connection))
        params += [c.get_db_prep_save(getattr(row, c.attname), connection) for c in columns]
    names = [f"c{n}" for n in range(len(columns))]
    sql = (
        f"UPDATE {quote(meta.db_table)} AS t SET "
        + ", ".join(f"{quote(c.column)} = v.{name}" for c, name in zip(columns, names))
        + f" FROM (VALUES {', '.join([placeholders] * len(rows))}) AS v(pk, {', '.join(names)})"
        + f" WHERE t.{quote(pk.column)} = v.pk"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
