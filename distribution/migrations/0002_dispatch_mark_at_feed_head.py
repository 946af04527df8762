from django.db import migrations


def start_at_the_feed_head(apps, schema_editor):
    """Incident events published before distribution existed are not news: the dispatcher starts
    looking for them at the current end of the feed (subscriptions still get them on the main lane)."""
    FeedHead = apps.get_model("hashes", "FeedHead")
    DispatchMark = apps.get_model("distribution", "DispatchMark")
    head = FeedHead.objects.filter(pk=1).values_list("last_seq", flat=True).first() or 0
    DispatchMark.objects.update_or_create(pk=1, defaults={"scanned_seq": head, "head": head})


class Migration(migrations.Migration):

    dependencies = [
        ("distribution", "0001_initial"),
        ("hashes", "0001_initial"),
    ]

    operations = [migrations.RunPython(start_at_the_feed_head, migrations.RunPython.noop)]
