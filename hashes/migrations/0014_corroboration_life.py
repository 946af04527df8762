"""Each corroboration records the life of its hash it belongs to in its statement's audience
(hashes.lives), so that a TAXII page reads the lives of the rows it shows, not every corroboration
its hashes ever had (finding 9 of the security review).

The nullable columns are added without a default (PostgreSQL: no rewrite, a moment's lock) and
committed, and their index built CONCURRENTLY, before the backfill, which then writes the rows
published before, a few hundred hashes per transaction, while the server runs: publishing and TAXII
work out a row the backfill has not reached yet from its hash's history, as they did before."""

from django.db import migrations, models

from consortium.online_migrations import AddIndexOnline


def backfill(apps, schema_editor):
    from hashes.lives import backfill as fill

    fill(apps.get_model("hashes", "Corroboration").objects, apps.get_model("hashes", "Event").objects)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('hashes', '0013_hash_removal_held_index'),
    ]

    operations = [
        migrations.AddField(
            model_name='corroboration',
            name='life',
            field=models.IntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='corroboration',
            name='life_began',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='corroboration',
            name='life_seq',
            field=models.BigIntegerField(blank=True, null=True),
        ),
        AddIndexOnline(
            model_name='corroboration',
            index=models.Index(fields=['hash', 'life'], name='corroboration_life'),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
