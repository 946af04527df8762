"""The dispute queue (hashes.Dispute, hashes.Feedback): Dispute review sees it; the Auditor role sees
every record, the new ones included. Adds permissions only, as 0003 does."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {"Dispute review": ["view_dispute", "view_feedback"], "Auditor": ["view_dispute", "view_feedback"]}


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GRANTS.items():
        perms = list(Permission.objects.filter(content_type__app_label="hashes", codename__in=codenames))
        if len(perms) != len(codenames):
            raise RuntimeError(f"{name}: missing permissions among {codenames}")
        Group.objects.get_or_create(name=name)[0].permissions.add(*perms)


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_admin_login_failure"), ("hashes", "0007_feedback_and_disputes")]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
