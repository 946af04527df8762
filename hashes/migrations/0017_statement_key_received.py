"""A statement's key is indexed with when it was received, (key, received_at) where the key is set,
in place of (key) alone: withdrawing a revoked key's statements (hashes.services.revocation) takes
them a batch at a time in the order they were received, from where the last batch ended, so each
batch reads its own rows, not all of the key's again. Every other use of the old index (a key's statements, whether a key signed any)
has the key first, as before. Online on PostgreSQL, as 0008 and 0011: the new index built
CONCURRENTLY first, the old one dropped after, idempotently."""

from django.db import migrations, models

from consortium.online_migrations import AddIndexOnline, RemoveIndexOnline


class Migration(migrations.Migration):

    atomic = False  # CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("hashes", "0016_statement_member_recent_size"),
    ]

    operations = [
        AddIndexOnline(
            model_name="statement",
            index=models.Index(condition=models.Q(("key__isnull", False)), fields=["key", "received_at"],
                               name="statement_key_received"),
        ),
        RemoveIndexOnline(model_name="statement", name="statement_key"),
    ]
