"""Schema operations that keep a table readable and writable while they run on PostgreSQL: indexes
are built and dropped CONCURRENTLY (the migration using them says `atomic = False`, as CONCURRENTLY
cannot run in a transaction), and each operation can be run again after an interruption. Elsewhere
(SQLite) they are the plain operations."""

from __future__ import annotations

from django.db import migrations


def online(schema_editor) -> str:
    return " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""


def drop_if_invalid(schema_editor, name: str) -> None:
    """On PostgreSQL, drop the index `name` if an interrupted concurrent build left it INVALID, so
    that building it again (IF NOT EXISTS) does not keep it so."""
    if schema_editor.connection.vendor != "postgresql":
        return
    quoted = schema_editor.quote_name(name)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                       "WHERE c.oid = to_regclass(%s)", [quoted])
        found = cursor.fetchone()
    if found is not None and not found[0]:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {quoted}")


def create_index(schema_editor, name: str, table: str, columns: str, where: str = "") -> None:
    """CREATE INDEX `name` ON `table` (`columns`) [WHERE `where`], concurrently and idempotently.
    `columns` and `where` are SQL that the migration fixes, never input."""
    drop_if_invalid(schema_editor, name)
    schema_editor.execute(f"CREATE INDEX{online(schema_editor)} IF NOT EXISTS {schema_editor.quote_name(name)} "
                          f"ON {table} ({columns})" + (f" WHERE {where}" if where else ""))


def drop_index(schema_editor, name: str) -> None:
    schema_editor.execute(f"DROP INDEX{online(schema_editor)} IF EXISTS {schema_editor.quote_name(name)}")


class AddIndexOnline(migrations.AddIndex):
    """AddIndex, built and removed CONCURRENTLY on PostgreSQL (the migration is not atomic). An index
    of that name left INVALID by an interrupted build is dropped first; a valid one is kept."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        drop_if_invalid(schema_editor, self.index.name)
        create = str(self.index.create_sql(model, schema_editor, concurrently=True))
        schema_editor.execute(create.replace("CREATE INDEX CONCURRENTLY ", "CREATE INDEX CONCURRENTLY IF NOT EXISTS ", 1))

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.remove_index(model, self.index, concurrently=True)


class RemoveIndexOnline(migrations.RemoveIndex):
    """RemoveIndex, dropped CONCURRENTLY on PostgreSQL (IF EXISTS: a migration stopped after the drop
    runs again) and built again CONCURRENTLY backwards."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(self.name)}")

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        index = to_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
        AddIndexOnline(self.model_name, index).database_forwards(app_label, schema_editor, from_state, to_state)
