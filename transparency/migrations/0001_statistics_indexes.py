"""Indexes the statistics need on the hashes app's tables: each figure finds the rows of its months
by these timestamps. They live here, with the only queries that use them, as plain SQL both SQLite
and PostgreSQL accept."""

from django.db import migrations

INDEXES = [
    ("transparency_corroboration_created", "hashes_corroboration", "created_at"),
    ("transparency_corroboration_ended", "hashes_corroboration", "retracted_at"),
    ("transparency_statement_published", "hashes_statement", "published_at"),
    ("transparency_dispute_resolved", "hashes_dispute", "resolved_at"),
]


class Migration(migrations.Migration):
    dependencies = [("hashes", "0007_feedback_and_disputes")]

    operations = [
        migrations.RunSQL(f"CREATE INDEX {name} ON {table} ({column})", f"DROP INDEX {name}")
        for name, table, column in INDEXES
    ]
