"""The hashes holding a removal, indexed where they are (few: administrators' removals), so that
publishing reads the PDQs among them without scanning every hash. Built CONCURRENTLY on PostgreSQL,
as 0008 and 0011: outside a transaction, idempotently."""

from django.db import migrations, models

from consortium.online_migrations import AddIndexOnline


class Migration(migrations.Migration):

    atomic = False  # CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("hashes", "0012_hash_removal_holds"),
    ]

    operations = [
        AddIndexOnline(
            model_name="hash",
            index=models.Index(condition=models.Q(("removal_holds__isnull", False)), fields=["signal_type"],
                               name="hash_removal_held"),
        ),
    ]
