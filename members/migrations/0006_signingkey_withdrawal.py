from django.db import migrations, models


def keys_revoked_before(apps, schema_editor):
    """Keys revoked before withdrawal existed keep their statements: a release must not remove, on
    every platform at once, what nobody decided to withdraw. Marked finished when they were revoked."""
    SigningKey = apps.get_model("members", "SigningKey")
    SigningKey.objects.filter(state="revoked").update(withdrawn_at=models.F("state_changed_at"))


class Migration(migrations.Migration):
    dependencies = [("members", "0005_signingkey_registered_by_token")]

    operations = [
        migrations.AddField("signingkey", "compromised_since", models.DateTimeField(blank=True, null=True)),
        migrations.AddField("signingkey", "withdrawn_at", models.DateTimeField(blank=True, null=True)),
        migrations.RunPython(keys_revoked_before, migrations.RunPython.noop),
    ]
