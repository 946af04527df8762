import django.db.models.deletion
from django.db import migrations, models


def scope_existing_hashes(apps, schema_editor):
    """A hash some consortium-wide statement asserted stays consortium-wide; one that only group
    statements asserted belongs to the group of the first of them. Rows that mixed audiences before
    this migration are not split: their later statements are placed by the new rule."""
    Hash = apps.get_model("hashes", "Hash")
    Corroboration = apps.get_model("hashes", "Corroboration")
    consortium = set(Corroboration.objects.filter(statement__share_group__isnull=True).values_list("hash_id", flat=True))
    first_group = {}
    for hash_id, group_id in Corroboration.objects.order_by("id").values_list("hash_id", "statement__share_group_id"):
        first_group.setdefault(hash_id, group_id)
    for hash_id, group_id in first_group.items():
        if hash_id not in consortium and group_id is not None:
            Hash.objects.filter(pk=hash_id).update(share_group_id=group_id)


class Migration(migrations.Migration):

    dependencies = [
        ('hashes', '0004_variant_families'),
        ('members', '0001_initial'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='hash',
            name='hash_signal_unique',
        ),
        migrations.AddField(
            model_name='hash',
            name='share_group',
            field=models.ForeignKey(blank=True, help_text='Empty: a consortium-wide hash.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='members.sharinggroup'),
        ),
        migrations.RunPython(scope_existing_hashes, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='hash',
            constraint=models.UniqueConstraint(condition=models.Q(('share_group__isnull', True)), fields=('signal_type', 'value'), name='hash_signal_unique_consortium'),
        ),
        migrations.AddConstraint(
            model_name='hash',
            constraint=models.UniqueConstraint(condition=models.Q(('share_group__isnull', False)), fields=('signal_type', 'value', 'share_group'), name='hash_signal_unique_group'),
        ),
    ]
