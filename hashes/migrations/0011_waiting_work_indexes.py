"""Fewer index entries for every statement written: a statement row is inserted on receipt and
updated once it is verified and published, and neither update can be HOT (its state is indexed), so
each writes a new entry in every index whose condition the new version meets.

- The work queues (one per waiting state: `received`, `verified`) and the sweep's index hold only
  the statements still waiting: publishing a statement no longer adds it to them, and they stay the
  size of the backlog rather than of the table. Every query of them names its state (`state = x`,
  the very condition: SQLite uses a partial index only then).
- A statement's signing key (empty until verified) and sharing group (empty for the consortium) are
  indexed where set, like its incident and retraction target (0008).

Online on PostgreSQL, as 0008: outside a transaction, the new indexes built first and the old ones
dropped after, each CONCURRENTLY and idempotently, so `migrate` run again finishes a migration
stopped anywhere."""

import django.db.models.deletion
from django.db import migrations, models

from consortium.online_migrations import AddIndexOnline, RemoveIndexOnline, create_index, drop_index

# The indexes Django made for these foreign keys: name -> column.
DROPPED = {
    "hashes_statement_key_id_2f6d793f": "key_id",
    "hashes_statement_share_group_id_e887881e": "share_group_id",
}


def drop_indexes(apps, schema_editor):
    for name in DROPPED:
        drop_index(schema_editor, name)


def create_indexes(apps, schema_editor):
    for name, column in DROPPED.items():
        create_index(schema_editor, name, "hashes_statement", column)


class Migration(migrations.Migration):

    atomic = False  # CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ('hashes', '0010_corroboration_superseded_by'),
        ('members', '0004_alter_member_kind'),
    ]

    operations = [
        AddIndexOnline(
            model_name='statement',
            index=models.Index(condition=models.Q(('state', 'received')), fields=['-priority', 'received_at'], name='statement_received'),
        ),
        AddIndexOnline(
            model_name='statement',
            index=models.Index(condition=models.Q(('state', 'verified')), fields=['-priority', 'received_at'], name='statement_verified'),
        ),
        AddIndexOnline(
            model_name='statement',
            index=models.Index(condition=models.Q(('state', 'received')), fields=['queued_at'], name='statement_received_queued'),
        ),
        AddIndexOnline(
            model_name='statement',
            index=models.Index(condition=models.Q(('key__isnull', False)), fields=['key'], name='statement_key'),
        ),
        AddIndexOnline(
            model_name='statement',
            index=models.Index(condition=models.Q(('share_group__isnull', False)), fields=['share_group'], name='statement_share_group'),
        ),
        RemoveIndexOnline(
            model_name='statement',
            name='statement_work_queue',
        ),
        RemoveIndexOnline(
            model_name='statement',
            name='statement_sweep',
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='statement',
                    name='key',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, to='members.signingkey'),
                ),
                migrations.AlterField(
                    model_name='statement',
                    name='share_group',
                    field=models.ForeignKey(blank=True, db_index=False, help_text='Empty: shared with the whole consortium.', null=True, on_delete=django.db.models.deletion.PROTECT, to='members.sharinggroup'),
                ),
            ],
            database_operations=[migrations.RunPython(drop_indexes, create_indexes)],
        ),
    ]
