"""Statements: the member's own index goes (statement_member_recent and the jti constraint lead
with member); rejection code, incident and retraction target are indexed where filled.

The indexes are dropped by name rather than by altering the fields, which would drop and validate
again each foreign key over the whole table."""

import django.db.models.deletion
from django.db import migrations, models

# The indexes Django made for these fields (the `_like` one on PostgreSQL only): name -> column.
DROPPED = {
    "hashes_statement_member_id_10c57c68": "member_id",
    "hashes_statement_incident_id_7e82fc0a": "incident_id",
    "hashes_statement_retracts_id_66503489": "retracts_id",
    "hashes_statement_rejection_code_5566830b": "rejection_code",
    "hashes_statement_rejection_code_5566830b_like": "rejection_code",
}


def drop_indexes(apps, schema_editor):
    for name in DROPPED:
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def create_indexes(apps, schema_editor):
    postgresql = schema_editor.connection.vendor == "postgresql"
    for name, column in DROPPED.items():
        if name.endswith("_like"):
            if postgresql:
                schema_editor.execute(f"CREATE INDEX {schema_editor.quote_name(name)} ON hashes_statement "
                                      f"({column} varchar_pattern_ops)")
        else:
            schema_editor.execute(f"CREATE INDEX {schema_editor.quote_name(name)} ON hashes_statement ({column})")


class Migration(migrations.Migration):

    dependencies = [
        ('hashes', '0007_feedback_and_disputes'),
        ('members', '0004_alter_member_kind'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
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
        migrations.AddIndex(
            model_name='statement',
            index=models.Index(condition=models.Q(('rejection_code', ''), _negated=True), fields=['rejection_code'], name='statement_rejected'),
        ),
        migrations.AddIndex(
            model_name='statement',
            index=models.Index(condition=models.Q(('incident__isnull', False)), fields=['incident'], name='statement_incident'),
        ),
        migrations.AddIndex(
            model_name='statement',
            index=models.Index(condition=models.Q(('retracts__isnull', False)), fields=['retracts'], name='statement_retracts'),
        ),
    ]
