"""A corroboration records the member's later statement that replaced it (one live assertion per
member, hash and audience: hashes.services.publishing.apply_hash_statement). A nullable column
without a default: PostgreSQL adds it without rewriting the table."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('hashes', '0009_event_labels_override_before'),
    ]

    operations = [
        migrations.AddField(
            model_name='corroboration',
            name='superseded_by',
            field=models.ForeignKey(blank=True, db_index=False, help_text="The member's later statement that replaced it.", null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='hashes.statement'),
        ),
        migrations.AlterField(
            model_name='corroboration',
            name='retracted_at',
            field=models.DateTimeField(blank=True, help_text='When it ended (retracted or superseded).', null=True),
        ),
    ]
