"""Database helpers the ORM does not offer efficiently.

On PostgreSQL the rows travel as one JSON document expanded by `jsonb_to_recordset`: one parameter
instead of one per value, so neither Django's per-value field preparation nor psycopg2's per-value
quoting runs (together most of a verification or publishing batch's Python time, at thousands of
rows a second). Values go through orjson; a value it cannot encode (none of the project's fields
hold one) falls back to the ORM's preparation, as on SQLite."""

from __future__ import annotations

import functools
import hashlib
import re
import weakref
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

import orjson
from psycopg2.extensions import AsIs
from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, models, router, transaction
from django.db.models import Lookup

M = TypeVar("M", bound=models.Model)


def _unencodable(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def _recordset(connection, fields: Sequence[models.Field], rows: Iterable[Sequence[Any]]) -> tuple[str, str] | None:
    """(a FROM item `v(c0, c1, ..., ord)` of the rows in order, its one parameter), or None when a value is
    not plain JSON (then the caller prepares values the ORM's way)."""
    names = [f"c{n}" for n in range(len(fields))]
    try:
        document = orjson.dumps([dict(zip(names, row)) for row in rows], default=_unencodable).decode()
    except (TypeError, orjson.JSONEncodeError):
        return None
    columns = ", ".join(f"{name} {field.cast_db_type(connection)}" for name, field in zip(names, fields))
    return f"ROWS FROM (jsonb_to_recordset(%s::jsonb) AS ({columns})) WITH ORDINALITY AS v({', '.join(names)}, ord)", \
        document


def update_rows(model: type[models.Model], rows: Sequence[models.Model], fields: Iterable[str], *,
                match: Iterable[str] = (), where: Mapping[str, object] | None = None) -> set[object]:
    """Write `fields` of each of `rows` to the database; the primary keys of the rows written.

    A row is written only where its stored `match` fields equal the row's own values and the stored
    `where` fields equal the values given (a claim's fence: `attempt_count` still the one sent,
    `state` still pending).

    Django's bulk_update builds one CASE WHEN per field per row, which costs ~0.2 ms of Python per
    field and row (most of a verification batch). On PostgreSQL this is one
    UPDATE ... FROM jsonb_to_recordset(...) instead; elsewhere (SQLite, one writer at a time) a plain
    UPDATE per row is as fast as it gets."""
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
    names = [f"c{n}" for n in range(len(carried))]  # c0 the key, then the columns, then the fences
    assignments = ", ".join(f"{quote(c.column)} = v.{name}" for c, name in zip(columns, names[1:]))
    conditions = [f"t.{quote(pk.column)} = v.c0"]
    conditions += [f"t.{quote(f.column)} = v.{name}" for f, name in zip(fences, names[1 + len(columns):])]
    source = _recordset(connection, carried, ([row.pk, *(getattr(row, f.attname) for f in carried[1:])]
                                              for row in rows))
    if source is not None:
        sql, params = source[0], [source[1]]
    else:
        one = "(" + ", ".join(f"%s::{f.cast_db_type(connection)}" for f in carried) + ")"
        params = []
        for row in rows:
            params.append(pk.get_db_prep_save(row.pk, connection))
            params += [f.get_db_prep_save(getattr(row, f.attname), connection) for f in carried[1:]]
        sql = f"(VALUES {', '.join([one] * len(rows))}) AS v({', '.join(names)})"
    for name, value in where.items():
        field = meta.get_field(name)
        conditions.append(f"t.{quote(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {quote(meta.db_table)} AS t SET {assignments} FROM {sql}"
                       f" WHERE {' AND '.join(conditions)} RETURNING t.{quote(pk.column)}", params)
        return {row[0] for row in cursor.fetchall()}


def insert_rows(model: type[models.Model], rows: Sequence[dict[str, object]], *, ignore_conflicts: bool = False,
                returning: Sequence[str] = ()) -> list[tuple[Any, ...]]:
    """Insert rows given as {field name: value}, all with the same keys, without building model
    instances: publishing appends thousands of rows a second and the ORM's per-instance cost
    dominated it. With `ignore_conflicts`, a row that breaks a unique constraint is skipped.
    Returns the `returning` fields of each row inserted, in the order given."""
    if not rows:
        return []
    meta = model._meta
    columns = [meta.get_field(name) for name in rows[0]]
    back = [meta.get_field(name) for name in returning]
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    head = f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(c.column) for c in columns)}) "
    tail = (" ON CONFLICT DO NOTHING" if ignore_conflicts else "") + (
        f" RETURNING {', '.join(quote(f.column) for f in back)}" if back else "")
    found: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            source = _recordset(connection, columns, ([row[c.name] for c in columns] for row in rows))
            if source is not None:
                names = ", ".join(f"v.c{n}" for n in range(len(columns)))
                cursor.execute(f"{head}SELECT {names} FROM {source[0]} ORDER BY v.ord{tail}", [source[1]])
                return [tuple(r) for r in cursor.fetchall()] if back else []
        one = "(" + ", ".join(["%s"] * len(columns)) + ")"
        # SQLite allows 999 (older) to 32766 parameters per statement; stay well under either.
        per_statement = max(1, 900 // len(columns))
        for start in range(0, len(rows), per_statement):
            chunk = rows[start:start + per_statement]
            params = [c.get_db_prep_save(row[c.name], connection) for row in chunk for c in columns]
            cursor.execute(f"{head}VALUES {', '.join([one] * len(chunk))}{tail}", params)
            if back:
                found += [tuple(r) for r in cursor.fetchall()]
    if back:
        converters = [f.from_db_value if hasattr(f, "from_db_value") else None for f in back]
        found = [tuple(conv(v, None, connection) if conv else v for conv, v in zip(converters, row)) for row in found]
    return found


class AnyOf(Lookup):
    """`column = ANY(array)`, as a filter: `Statement.objects.filter(AnyOf(F("id"), ids))`. One
    parameter however many values, where `__in` spells and prepares one per value (about 20 µs each
    in Django's lookup machinery, most of a publishing batch's reads). Elsewhere than PostgreSQL it
    is the same IN list as `__in`."""

    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s::{field.cast_db_type(connection)}[])", [*lhs_params, list(self.rhs)]
        values = list(dict.fromkeys(v for v in self.rhs if v is not None))
        if not values:
            raise EmptyResultSet
        return (f"{lhs} IN ({', '.join(['%s'] * len(values))})",
                [*lhs_params, *(field.get_db_prep_value(v, connection) for v in values)])


def read_by_ids(sql: str, ids: Iterable[Any], *params: Any, prepare: str | None = None) -> list[tuple]:
    """Rows of a plain SQL read whose `IN ({ids})` is filled with one placeholder per id (after
    `params`), a chunk of ids per query. For reads on every request, where compiling a queryset would
    cost several times the query itself (about 0.15 ms against 0.03 ms).

    With `prepare` (a name) the read is a prepared statement on PostgreSQL (see `read_prepared`):
    the ids travel as one array, `= ANY(...)`, so that one plan serves every number of ids."""
    ids = list(ids)
    if prepare and connection.vendor == "postgresql" and settings.DATABASE_PREPARED_STATEMENTS:
        if "IN ({ids})" not in sql:
            raise ValueError("a prepared read by ids says IN ({ids})")
        return read_prepared(prepare, sql.replace("IN ({ids})", "= ANY(%s)"), [*params, ids]) if ids else []
    # SQLite allows 999 (older) to 32766 parameters per statement; stay well under either.
    chunk_size = 900 if connection.vendor == "sqlite" else 5000
    rows: list[tuple] = []
    with connection.cursor() as cursor:
        for start in range(0, len(ids), chunk_size):
            chunk = ids[start:start + chunk_size]
            cursor.execute(sql.format(ids=", ".join(["%s"] * len(chunk))), [*params, *chunk])
            rows += cursor.fetchall()
    return rows


# The statements each PostgreSQL connection has prepared, by its psycopg2 connection (a new
# connection starts with none; a closed one drops out): True while usable, False once it no longer
# fits its tables and must be deallocated before it is prepared again. A prepared statement is the
# session's, not a transaction's: it outlives the rollback of a failed execute.
_prepared: weakref.WeakKeyDictionary[Any, dict[str, bool]] = weakref.WeakKeyDictionary()
# What PostgreSQL says when a prepared statement no longer fits its tables (a migration changed a
# column it returns) or is gone (DEALLOCATE ALL, DISCARD ALL by a pooler): prepare it again.
# (DUPLICATE: the session holds a statement of that name, which this process lost track of.)
STALE, GONE, DUPLICATE = "0A000", "26000", "42P05"


# (name, sql, number of parameters) -> (statement name, text to prepare, text to execute it): the
# same few reads on every request, worked out once per process.
_statements: dict[tuple[str, str, int], tuple[str, str, str]] = {}


def _statement(cursor: Any, name: str, sql: str, count: int) -> tuple[str, str, str]:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", name):
        raise ValueError(f"not a statement name: {name!r}")
    # psycopg2 fills the placeholders as it would for an execute (so `%%` is `%`), with $1, $2, ...
    text = cursor.mogrify(sql, [AsIs(f"${n}") for n in range(1, count + 1)]).decode()
    name = f"{name}_{hashlib.blake2s(text.encode(), digest_size=6).hexdigest()}"
    return name, text, (f"EXECUTE {name} ({', '.join(['%s'] * count)})" if count else f"EXECUTE {name}")


def _prepare(cursor: Any, prepared: dict[str, bool], name: str, text: str) -> None:
    """PREPARE `name`, deallocating first a stale statement the session still holds under it."""
    if name in prepared:
        del prepared[name]  # whatever DEALLOCATE answers: a statement already gone is prepared next time
        cursor.execute(f"DEALLOCATE {name}")
    try:
        cursor.execute(f"PREPARE {name} AS {text}")
    except DatabaseError as exc:
        if getattr(exc.__cause__, "pgcode", None) == DUPLICATE:
            prepared[name] = False  # held by the session after all: deallocated next time
        raise
    prepared[name] = True


def read_prepared(name: str, sql: str, params: Sequence[Any]) -> list[tuple]:
    """Rows of a plain SQL read (`%s` placeholders) run on the hot paths of every request. On
    PostgreSQL it is prepared once per connection and executed by name afterwards: planning the
    joins these reads make costs PostgreSQL several times executing them (about 0.3 ms against
    0.05 ms for a match's reads). Elsewhere, or with DATABASE_PREPARED_STATEMENTS off (a pooler
    in transaction mode, such as PgBouncer, cannot keep a statement to its connection), a plain
    execute. `name` (lower case, digits, `_`) is the statement's; its text's digest is added, so
    that two texts never share a name. `sql` is a fixed text, never built from input: each one is
    worked out once per process and kept. A statement that went stale under the connection is
    prepared again, once, outside a transaction; inside one the error is the caller's."""
    db = connections[DEFAULT_DB_ALIAS]  # what `connection` stands for, asked once (each of its attributes is a lookup)
    with db.cursor() as cursor:
        if db.vendor != "postgresql" or not settings.DATABASE_PREPARED_STATEMENTS:
            cursor.execute(sql, params)
            return cursor.fetchall()
        statement = _statements.get((name, sql, len(params)))
        if statement is None:
            statement = _statements[(name, sql, len(params))] = _statement(cursor, name, sql, len(params))
        name, text, execute = statement
        prepared = _prepared.setdefault(db.connection, {})
        if not prepared.get(name):
            _prepare(cursor, prepared, name, text)
        try:
            cursor.execute(execute, params)
        except DatabaseError as exc:
            # Any other error (a value out of range, a cancelled query) leaves the statement prepared.
            code = getattr(exc.__cause__, "pgcode", None)
            if code == GONE:
                del prepared[name]
            elif code == STALE:
                prepared[name] = False
            if db.in_atomic_block or code not in (GONE, STALE):
                raise
            _prepare(cursor, prepared, name, text)
            cursor.execute(execute, params)
        return cursor.fetchall()


def columns(model: type[models.Model], alias: str) -> str:
    """The model's concrete columns, as `alias`.column, in the order instance_from_row takes them."""
    return ", ".join(f"{alias}.{field.column}" for field in model._meta.concrete_fields)


def instance_from_row(model: type[M], values: Sequence[Any]) -> M:
    """A model instance from its concrete columns (see `columns`) as a cursor returned them,
    converted by the same backend and field converters the ORM applies."""
    db = connections[DEFAULT_DB_ALIAS]  # what `connection` stands for, asked once (each of its attributes is a lookup)
    converted = list(values)
    for n, expression, converters in _row_converters(model, db.vendor):
        value = converted[n]
        for convert in converters:
            value = convert(value, expression, db)
        converted[n] = value
    return model.from_db(db.alias, None, converted)


def converter(model: type[models.Model], name: str) -> Callable[[Any], Any]:
    """What converts one column of `model` (field `name`) as a cursor returns it into the value the
    ORM gives (on SQLite a datetime comes naive and is made aware; on PostgreSQL it comes as it is)."""
    expression, converters = _field_converters(model, name, connection.vendor)
    if not converters:
        return _same
    db = connections[DEFAULT_DB_ALIAS]  # what `connection` stands for, asked once

    def convert(value: Any) -> Any:
        for step in converters:
            value = step(value, expression, db)
        return value

    return convert


def _same(value: Any) -> Any:
    return value


@functools.cache
def _field_converters(model: type[models.Model], name: str, vendor: str) -> tuple[Any, list]:
    return _converters(model, vendor)[[field.name for field in model._meta.concrete_fields].index(name)]


@functools.cache
def _row_converters(model: type[models.Model], vendor: str) -> list[tuple[int, Any, list]]:
    """The columns of `model` (by position) that have converters, with them: a token's read on every
    request converts one of its and its member's sixteen columns on PostgreSQL."""
    return [(n, expression, converters) for n, (expression, converters) in enumerate(_converters(model, vendor))
            if converters]


@functools.cache
def _converters(model: type[models.Model], vendor: str) -> list[tuple[Any, list]]:
    found = []
    for field in model._meta.concrete_fields:
        expression = field.get_col(model._meta.db_table)
        found.append((expression, connection.ops.get_db_converters(expression)
                      + expression.get_db_converters(connection)))
    return found


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
