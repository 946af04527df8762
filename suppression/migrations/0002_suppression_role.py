"""The role that keeps the suppression list, as a Django group (see audit/migrations/0003_admin_roles.py).

A group of its own, not "Dispute review": adding an entry opens disputes, so whoever keeps the list
should not also be the one who resolves them, just as whoever registers a key is not the one who
approves it; its members see the disputes their entries open. Dispute reviewers and auditors may see
the list (viewing grants no action). Safe to run again: it creates what is missing and adds
permissions, never removing one an operator granted."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLE = "Suppression list"
ROLE_PERMISSIONS = [
    ("suppression", "view_benignentry"), ("suppression", "manage_benignentry"),
    ("hashes", "view_hash"), ("hashes", "view_statement"), ("hashes", "view_label"), ("hashes", "view_dispute"),
]
VIEWERS = ["Dispute review", "Auditor"]


def create_role(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def permission(app_label: str, codename: str):
        return Permission.objects.get(content_type__app_label=app_label, codename=codename)

    Group.objects.get_or_create(name=ROLE)[0].permissions.add(*[permission(*p) for p in ROLE_PERMISSIONS])
    for name in VIEWERS:
        Group.objects.get_or_create(name=name)[0].permissions.add(permission("suppression", "view_benignentry"))


class Migration(migrations.Migration):
    dependencies = [
        ("suppression", "0001_benign_entry"),
        ("audit", "0003_admin_roles"),
        ("hashes", "0007_feedback_and_disputes"),
    ]

    operations = [migrations.RunPython(create_role, migrations.RunPython.noop)]
