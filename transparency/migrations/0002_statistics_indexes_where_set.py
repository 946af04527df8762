"""The statistics' timestamps that stay empty for most of a row's life are indexed where set: a
statement's `published_at` (empty from receipt until it is published, and for ever if rejected)
and a corroboration's `retracted_at` (empty unless it is retracted). Every statement received, and
every corroboration published, wrote an entry of NULL into each; the statistics only ask for ranges
of them (`>= start AND < end`), which imply the condition.

Online on PostgreSQL, as hashes 0008: outside a transaction, the new indexes built before the old
ones are dropped, each CONCURRENTLY and idempotently (an index an interrupted build left INVALID is
built again), so `migrate` run again finishes a migration stopped anywhere."""

from django.db import migrations

from consortium.online_migrations import create_index, drop_index

# old name -> (new name, table, column)
REPLACED = {
    "transparency_statement_published": ("transparency_statement_published_set", "hashes_statement", "published_at"),
    "transparency_corroboration_ended": ("transparency_corroboration_ended_set", "hashes_corroboration",
                                         "retracted_at"),
}


def where_set(apps, schema_editor):
    for old, (new, table, column) in REPLACED.items():
        create_index(schema_editor, new, table, column, where=f"{column} IS NOT NULL")
    for old in REPLACED:
        drop_index(schema_editor, old)


def everywhere(apps, schema_editor):
    for old, (new, table, column) in REPLACED.items():
        create_index(schema_editor, old, table, column)
    for old, (new, _, _) in REPLACED.items():
        drop_index(schema_editor, new)


class Migration(migrations.Migration):

    atomic = False  # CONCURRENTLY cannot run inside a transaction

    dependencies = [("transparency", "0001_statistics_indexes")]

    operations = [migrations.RunPython(where_set, everywhere)]
