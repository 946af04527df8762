"""Auditors see every admin page (audit/migrations/0003_admin_roles.py), the media jobs' too. Viewing
grants no action: a job is never changed by hand. Safe to run again: it adds what is missing and
removes nothing an operator granted."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

AUDITOR = "Auditor"


def grant_view(apps, schema_editor):
    # Permissions are otherwise created after every migration has run: too late for this one.
    app_config = apps.get_app_config("media")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = Permission.objects.get(content_type__app_label="media", codename="view_mediajob")
    Group.objects.get_or_create(name=AUDITOR)[0].permissions.add(view)


class Migration(migrations.Migration):
    dependencies = [
        ("media", "0001_initial"),
        ("audit", "0003_admin_roles"),
    ]

    operations = [migrations.RunPython(grant_view, migrations.RunPython.noop)]
