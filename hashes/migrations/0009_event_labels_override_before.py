"""Events keep the labels an administrator had set before them, so that a dispute resolved
`relabelled` reaches every reader whose labels it changes, including readers who may not see the
dispute (hashes.selectors.changed_for).

Only dispute events are read for it; those written before this migration take the labels the
hash's previous event recorded (every event records the hash's labels_override as it then was)."""

from django.db import migrations, models

BACKFILL = (
    "UPDATE hashes_event SET labels_override_before = ("
    "SELECT p.labels_override FROM hashes_event p WHERE p.hash_id = hashes_event.hash_id "
    "AND p.seq < hashes_event.seq ORDER BY p.seq DESC LIMIT 1) WHERE change = 'dispute'"
)


class Migration(migrations.Migration):
    # The column is added (no rewrite, a moment's lock) and committed before the backfill, so the
    # backfill's scan of the events never runs under the table lock that blocks the feed.
    atomic = False

    dependencies = [
        ('hashes', '0008_indexes_where_used'),
    ]

    operations = [
        migrations.AddField(
            model_name='event',
            name='labels_override_before',
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
    ]
