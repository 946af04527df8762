"""An administrator's `removed` outcome holds until an administrator lifts it (Hash.removal_holds).

A nullable column without a default: adding it rewrites nothing on PostgreSQL. Removals made before
this migration are held too, as the service would have held them: a hash removed after a dispute and
not asserted again since holds against the audiences of the statements its removal ended (those
ended at the very time the dispute was resolved). A hash that came back since is left alone: it is
live, and only a new dispute may remove it again. Bounded by the disputes resolved `removed`."""

from django.db import migrations, models


def audiences_order(group):
    return -1 if group is None else group


def hold_past_removals(apps, schema_editor):
    Hash = apps.get_model("hashes", "Hash")
    Dispute = apps.get_model("hashes", "Dispute")
    Corroboration = apps.get_model("hashes", "Corroboration")
    latest = {}
    for hash_id, resolved_at in Dispute.objects.filter(state="removed", resolved_at__isnull=False).values_list(
            "hash_id", "resolved_at"):
        latest[hash_id] = max(resolved_at, latest.get(hash_id, resolved_at))
    for hash_ in Hash.objects.filter(pk__in=list(latest), state="retracted", removal_holds__isnull=True):
        removed_at = latest[hash_.pk]
        if Corroboration.objects.filter(hash_id=hash_.pk, created_at__gt=removed_at).exists():
            continue
        ended = set(Corroboration.objects.filter(hash_id=hash_.pk, retracted_at=removed_at, superseded_by__isnull=True)
                    .values_list("statement__share_group_id", flat=True))
        if ended:
            hash_.removal_holds = sorted(ended, key=audiences_order)
            hash_.save(update_fields=["removal_holds"])


class Migration(migrations.Migration):

    dependencies = [
        ("hashes", "0011_waiting_work_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="hash",
            name="removal_holds",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.RunPython(hold_past_removals, migrations.RunPython.noop),
    ]
