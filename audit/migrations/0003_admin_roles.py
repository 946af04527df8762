"""The administrators' roles, as Django groups. Safe to run again: it creates what is missing and adds
permissions, never removing one an operator granted. Undoing it leaves the groups in place, since users
may belong to them by then."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# Approving a key is a role of its own so that the people who register keys (Onboarding) are not the
# ones who make them sign; the admin also refuses to let anyone approve a key they registered.
ROLES = {
    "Onboarding": [
        "members.view_member", "members.add_member", "members.change_member",
        "members.view_sharinggroup",
        "members.view_signingkey", "members.add_signingkey",
        "members.view_apitoken", "members.issue_token", "members.revoke_token",
    ],
    "Key approval": [
        "members.view_member", "members.view_signingkey", "members.approve_signingkey", "members.revoke_signingkey",
    ],
    "Incident duty": [
        "hashes.view_incident", "hashes.add_incident", "hashes.change_incident", "hashes.manage_incident",
        "hashes.view_statement", "hashes.view_label", "members.view_member",
        "distribution.view_subscription", "distribution.view_delivery", "distribution.view_deliveryattempt",
        "distribution.manage_subscription",
    ],
    "Dispute review": [
        "hashes.resolve_dispute", "hashes.view_hash", "hashes.view_corroboration", "hashes.view_statement",
        "hashes.view_event", "hashes.view_label", "hashes.view_incident", "members.view_member",
    ],
}
AUDITOR = "Auditor"
AUDITED_APPS = ["audit", "auth", "members", "hashes", "distribution"]


def create_roles(apps, schema_editor):
    # Permissions are otherwise created after every migration has run: too late for this one.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in ROLES.items():
        wanted = [tuple(perm.split(".")) for perm in perms]
        found = [p for p in Permission.objects.filter(content_type__app_label__in={app for app, _ in wanted})
                 if (p.content_type.app_label, p.codename) in wanted]
        missing = set(wanted) - {(p.content_type.app_label, p.codename) for p in found}
        if missing:
            raise RuntimeError(f"{name}: no such permissions {sorted(missing)}")
        Group.objects.get_or_create(name=name)[0].permissions.add(*found)
    views = Permission.objects.filter(content_type__app_label__in=AUDITED_APPS, codename__startswith="view_")
    Group.objects.get_or_create(name=AUDITOR)[0].permissions.add(*views)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_append_only_trigger"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("members", "0003_admin_permissions_key_registered_by"),
        ("hashes", "0006_incident_and_dispute_permissions"),
        ("distribution", "0005_manage_subscription_permission"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
