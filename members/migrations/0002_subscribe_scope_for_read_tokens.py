"""Managing webhook subscriptions needs its own scope, `subscribe`, where it used to need `read`.
Tokens issued before that keep working: each one that carries `read` is given `subscribe` here.
Tokens issued from now on carry `subscribe` only when it is asked for."""

from __future__ import annotations

from django.db import migrations


def grant_subscribe_to_read_tokens(apps, schema_editor):
    ApiToken = apps.get_model("members", "ApiToken")
    changed = []
    for token in ApiToken.objects.only("pk", "scopes").iterator():
        if "read" in token.scopes and "subscribe" not in token.scopes:
            token.scopes = sorted({*token.scopes, "subscribe"})
            changed.append(token)
    ApiToken.objects.bulk_update(changed, ["scopes"], batch_size=500)


def withdraw_subscribe(apps, schema_editor):
    ApiToken = apps.get_model("members", "ApiToken")
    changed = []
    for token in ApiToken.objects.only("pk", "scopes").iterator():
        if "subscribe" in token.scopes:
            token.scopes = [scope for scope in token.scopes if scope != "subscribe"]
            changed.append(token)
    ApiToken.objects.bulk_update(changed, ["scopes"], batch_size=500)


class Migration(migrations.Migration):

    dependencies = [
        ("members", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(grant_subscribe_to_read_tokens, withdraw_subscribe),
    ]
