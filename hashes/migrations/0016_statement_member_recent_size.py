"""The daily quotas count a member's statements of the last 24 hours and add up their sizes from one
index, (member, -received_at, size), without reading the table's rows (an index-only scan); it
replaces (member, -received_at), which the member's own list used and still can. Online on
PostgreSQL, as 0008: built CONCURRENTLY first, the old one dropped after, idempotently.

Then, in batches (each its own transaction, so that `migrate` run again finishes one stopped
anywhere):
- the statements received within the quota's window before sizes were recorded get theirs, so that
  the byte quota counts them from the start;
- the statements rejected before this change because no active key of their member signed them keep
  only the first 1024 characters of their JWS, as verification now leaves them (their digest, and
  their size as received, identify the whole). Nothing can bring the cut bytes back: going backwards
  leaves them cut."""

from datetime import timedelta

from django.db import migrations, models
from django.db.models.functions import Coalesce, Length, Substr
from django.utils import timezone

from consortium.online_migrations import AddIndexOnline, RemoveIndexOnline

# hashes.services.verification.UNSIGNED_CODES and REJECTED_RAW_KEPT, as they were when this was written.
UNSIGNED_CODES = ["key_unknown", "key_wrong_member", "key_pending", "key_revoked", "key_retired", "signature_invalid"]
KEPT = 1024
WINDOW = timedelta(hours=25)  # the quota's 24 hours, and some for the time the migration takes
BATCH = 1000


def in_batches(queryset, **changes) -> None:
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:BATCH])
        if not ids:
            return
        queryset.model.objects.filter(pk__in=ids).update(**changes)


def sizes_and_cuts(apps, schema_editor):
    Member = apps.get_model("members", "Member")
    Statement = apps.get_model("hashes", "Statement")
    since = timezone.now() - WINDOW
    for member_id in Member.objects.order_by("pk").values_list("pk", flat=True):  # statement_member_recent_size
        in_batches(Statement.objects.filter(member_id=member_id, received_at__gt=since, size__isnull=True),
                   size=Length("raw"))
    # Where rejection_code is set: the statement_rejected index. Both expressions read the row as it was.
    rejected = Statement.objects.filter(rejection_code__in=UNSIGNED_CODES, state="rejected")
    in_batches(rejected.alias(length=Length("raw")).filter(length__gt=KEPT),
               size=Coalesce("size", Length("raw")), raw=Substr("raw", 1, KEPT))


class Migration(migrations.Migration):

    atomic = False  # CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ('hashes', '0015_statement_size'),
        ('members', '0004_alter_member_kind'),
    ]

    operations = [
        AddIndexOnline(
            model_name='statement',
            index=models.Index(fields=['member', '-received_at', 'size'], name='statement_member_recent_size'),
        ),
        RemoveIndexOnline(
            model_name='statement',
            name='statement_member_recent',
        ),
        migrations.RunPython(sizes_and_cuts, migrations.RunPython.noop, elidable=True),
    ]
