"""Indexes that queries do not need, which every insert and every state change of a row writes:
a statement's member, and a corroboration's hash, are no longer indexed alone (two indexes of
each lead with them); a statement's rejection code, incident and retraction target, and an
event's dispute, are indexed where set.

The indexes are dropped by name rather than by altering the fields, which would drop and validate
again each foreign key over the whole table.

Online on PostgreSQL: the migration runs outside a transaction, the new indexes are built first and
the old ones dropped after, each CONCURRENTLY, so that reads and writes of the statement, event and
corroboration tables go on throughout (a plain CREATE or DROP INDEX in one transaction would hold
their locks for as long as the builds take, minutes at ten million statements). If a concurrent
build is interrupted, PostgreSQL leaves the index INVALID; migrating again drops an invalid index
it builds and builds it again, and keeps a valid one already built, so a migration stopped anywhere
is finished by running `migrate` again."""

import django.db.models.deletion
from django.db import migrations, models

from consortium.online_migrations import AddIndexOnline, create_index, drop_index

# The indexes Django made for these fields (the `_like` one on PostgreSQL only): name -> (table, column).
DROPPED = {
    "hashes_statement_member_id_10c57c68": ("hashes_statement", "member_id"),
    "hashes_statement_incident_id_7e82fc0a": ("hashes_statement", "incident_id"),
    "hashes_statement_retracts_id_66503489": ("hashes_statement", "retracts_id"),
    "hashes_statement_rejection_code_5566830b": ("hashes_statement", "rejection_code"),
    "hashes_statement_rejection_code_5566830b_like": ("hashes_statement", "rejection_code"),
    "hashes_corroboration_hash_id_6794dd9f": ("hashes_corroboration", "hash_id"),
    "hashes_event_dispute_id_a480dc41": ("hashes_event", "dispute_id"),
}


def drop_indexes(apps, schema_editor):
    for name in DROPPED:
        drop_index(schema_editor, name)


def create_indexes(apps, schema_editor):
    postgresql = schema_editor.connection.vendor == "postgresql"
    for name, (table, column) in DROPPED.items():
        if not name.endswith("_like"):
            create_index(schema_editor, name, table, column)
        elif postgresql:
            create_index(schema_editor, name, table, f"{column} varchar_pattern_ops")


class Migration(migrations.Migration):

    atomic = False  # CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ('hashes', '0007_feedback_and_disputes'),
        ('members', '0004_alter_member_kind'),
    ]

    operations = [
        AddIndexOnline(
            model_name='statement',
            index=models.Index(condition=models.Q(('rejection_code', ''), _negated=True), fields=['rejection_code'], name='statement_rejected'),
        ),
        AddIndexOnline(
            model_name='statement',
            index=models.Index(condition=models.Q(('incident__isnull', False)), fields=['incident'], name='statement_incident'),
        ),
        AddIndexOnline(
            model_name='statement',
            index=models.Index(condition=models.Q(('retracts__isnull', False)), fields=['retracts'], name='statement_retracts'),
        ),
        AddIndexOnline(
            model_name='event',
            index=models.Index(condition=models.Q(('dispute__isnull', False)), fields=['dispute'], name='event_dispute'),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='corroboration',
                    name='hash',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='corroborations', to='hashes.hash'),
                ),
                migrations.AlterField(
                    model_name='event',
                    name='dispute',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='hashes.dispute'),
                ),
                migrations.AlterField(
                    model_name='statement',
                    name='incident',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, to='hashes.incident'),
                ),
                migrations.AlterField(
                    model_name='statement',
                    name='member',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='statements', to='members.member'),
                ),
                migrations.AlterField(
                    model_name='statement',
                    name='rejection_code',
                    field=models.CharField(blank=True, max_length=64),
                ),
                migrations.AlterField(
                    model_name='statement',
                    name='retracts',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='retractions', to='hashes.statement'),
                ),
            ],
            database_operations=[migrations.RunPython(drop_indexes, create_indexes)],
        ),
    ]
