"""The suppression list in the admin: viewing grants no action; adding an entry, importing a file,
deactivating and reactivating each need suppression.manage_benignentry (held by the "Suppression list"
group only), are audited with the administrator's name, and a refused file is shown with each problem
and changes nothing."""

from __future__ import annotations

from typing import Callable

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from hashes.models import Dispute, Event
from suppression.models import BenignEntry
from tests.factories import BASE_PDQ, md5

GOOD_CSV = f"type,value,reason\nmd5,{md5(7)['value']},empty file\npdq,{BASE_PDQ},blank frame\n"
CHANGELIST = reverse("admin:suppression_benignentry_changelist")
ADD = reverse("admin:suppression_benignentry_add")
IMPORT = reverse("admin:suppression_benignentry_import")
VIEW, MANAGE = "suppression.view_benignentry", "suppression.manage_benignentry"


def permission(name: str) -> Permission:
    app_label, codename = name.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


@pytest.fixture
def staff(db, django_user_model) -> Callable[..., Client]:
    """A logged-in staff user (not a superuser) with exactly these permissions and groups."""

    def make(*perms: str | Permission, groups: tuple[str, ...] = (), name: str = "staffer") -> Client:
        user = django_user_model.objects.create_user(name, is_staff=True)
        user.user_permissions.add(*[p if isinstance(p, Permission) else permission(p) for p in perms])
        user.groups.add(*[Group.objects.get(name=group) for group in groups])
        client = Client()
        client.force_login(user)
        return client

    return make


def state() -> dict:
    return {
        "entries": list(BenignEntry.objects.order_by("pk").values_list("signal_type", "value", "reason", "active",
                                                                        "updated_at")),
        "audit": AuditEvent.objects.count(), "disputes": Dispute.objects.count(), "events": Event.objects.count(),
    }


def upload(client: Client, content: str, name: str = "benign.csv", **extra):
    return client.post(IMPORT, {"file": SimpleUploadedFile(name, content.encode()), **extra})


def act(client: Client, action: str, *entries: BenignEntry):
    return client.post(CHANGELIST, {"action": action, "_selected_action": [e.pk for e in entries]}, follow=True)


def offered_actions(client: Client) -> set[str]:
    form = client.get(CHANGELIST).context["action_form"]
    return {name for name, _ in form.fields["action"].choices if name} if form else set()


def entry(value: str = md5(7)["value"], active: bool = True) -> BenignEntry:
    return BenignEntry.objects.create(signal_type="md5", value=value, reason="empty file", active=active,
                                      added_by_label="operator")


# --- with manage_benignentry -----------------------------------------------------------------------

def test_a_file_imported_in_the_admin_is_listed_audited_and_disputes_what_it_covers(staff, alice, pipeline):
    alice.submit(alice.statement([md5(7)]))
    pipeline()
    client = staff(VIEW, MANAGE)
    assert IMPORT in client.get(CHANGELIST).content.decode()

    response = upload(client, GOOD_CSV)

    assert response.status_code == 302 and response["Location"] == CHANGELIST
    entries = BenignEntry.objects.order_by("signal_type")
    assert [(e.signal_type, e.added_by.username, e.added_by_label) for e in entries] == [
        ("md5", "staffer", "admin:staffer"), ("pdq", "staffer", "admin:staffer")]
    assert {e.actor_label for e in AuditEvent.objects.filter(action__startswith="benignentry.")} == {"admin:staffer"}
    assert AuditEvent.objects.filter(action="benignentry.create").count() == 2
    assert [(d.reasons, d.hash.value) for d in Dispute.objects.all()] == [(["suppression_list"], md5(7)["value"])]
    assert "2 added, 0 reactivated, 0 already listed; 1 disputes opened" in client.get(CHANGELIST).content.decode()


def test_a_bad_file_is_shown_with_each_problem_and_changes_nothing(staff, db):
    client = staff(VIEW, MANAGE)
    before = state()

    response = upload(client, GOOD_CSV + f"md5,{md5(7)['value']},again\nmd5,xyz,\n")

    page = response.content.decode()
    assert response.status_code == 200 and "Nothing was imported" in page
    rows = [(e.line, e.code) for e in response.context["rejected"].errors]
    assert rows == [(4, "duplicate"), (5, "value_invalid")]
    assert "<td>4</td><td><code>duplicate</code></td>" in page
    assert state() == before


def test_importing_the_same_file_again_in_the_admin_changes_nothing(staff, db):
    client = staff(VIEW, MANAGE)
    upload(client, GOOD_CSV)
    before = state()

    response = upload(client, GOOD_CSV)

    assert response.status_code == 302 and state() == before


def test_a_json_file_is_imported_with_the_format_chosen(staff, db):
    client = staff(VIEW, MANAGE)

    response = upload(client, f'[{{"type": "md5", "value": "{md5(7)["value"]}", "reason": "r"}}]', name="upload",
                      format="json")

    assert response.status_code == 302 and BenignEntry.objects.count() == 1


def test_a_file_over_the_size_bound_is_refused_in_the_admin(staff, settings, db):
    settings.BENIGN_IMPORT_MAX_BYTES = 20

    response = upload(staff(VIEW, MANAGE), GOOD_CSV)

    assert response.context["rejected"].code == "file_too_large" and not BenignEntry.objects.exists()


def test_an_entry_added_in_the_admin_is_checked_listed_and_audited(staff, alice, pipeline):
    alice.submit(alice.statement([md5(7)]))
    pipeline()
    client = staff(VIEW, MANAGE)

    refused = client.post(ADD, {"signal_type": "md5", "value": "xyz", "reason": "logo"})
    added = client.post(ADD, {"signal_type": "md5", "value": md5(7)["value"].upper(), "reason": "empty file"})

    assert refused.status_code == 200 and "value_invalid" in refused.content.decode()
    assert added.status_code == 302
    listed = BenignEntry.objects.get()
    assert (listed.value, listed.added_by_label) == (md5(7)["value"], "admin:staffer")
    assert AuditEvent.objects.get(action="benignentry.create").object_id == str(listed.pk)
    assert Dispute.objects.get().reasons == ["suppression_list"]


def test_entries_are_deactivated_and_reactivated_by_actions_each_audited(staff, db):
    listed = entry()
    client = staff(VIEW, MANAGE)

    act(client, "deactivate", listed)
    listed.refresh_from_db()
    assert not listed.active
    act(client, "reactivate", listed)
    listed.refresh_from_db()

    assert listed.active
    events = AuditEvent.objects.filter(object_type="suppression.benignentry", object_id=str(listed.pk)).order_by("id")
    assert [(e.action, e.actor_label, e.before["active"], e.after["active"]) for e in events] == [
        ("benignentry.deactivate", "admin:staffer", True, False),
        ("benignentry.reactivate", "admin:staffer", False, True)]


def test_no_one_edits_or_deletes_an_entry(staff, db):
    listed = entry()
    client = staff(VIEW, MANAGE)
    before = state()

    assert client.post(reverse("admin:suppression_benignentry_change", args=[listed.pk]),
                       {"reason": "changed"}).status_code == 403
    assert client.post(reverse("admin:suppression_benignentry_delete", args=[listed.pk]),
                       {"post": "yes"}).status_code == 403
    assert "delete_selected" not in offered_actions(client)
    assert state() == before


# --- without it --------------------------------------------------------------------------------------

def everything_but_manage() -> list[Permission]:
    return list(Permission.objects.exclude(content_type__app_label="suppression", codename="manage_benignentry"))


@pytest.mark.parametrize("perms", [lambda: [VIEW], everything_but_manage], ids=["view only", "everything else"])
def test_without_manage_nothing_can_be_added_imported_or_deactivated(staff, alice, pipeline, perms):
    alice.submit(alice.statement([md5(7)]))
    pipeline()
    listed = entry(md5(8)["value"])
    client = staff(*perms())
    before = state()

    page = client.get(CHANGELIST)
    assert page.status_code == 200 and IMPORT not in page.content.decode()
    assert offered_actions(client) == set()
    assert client.get(ADD).status_code == 403
    assert client.post(ADD, {"signal_type": "md5", "value": md5(7)["value"], "reason": "r"}).status_code == 403
    assert client.get(IMPORT).status_code == 403
    assert upload(client, GOOD_CSV).status_code == 403
    act(client, "deactivate", listed)

    assert state() == before
    assert BenignEntry.objects.get(pk=listed.pk).active


# --- the shipped groups ------------------------------------------------------------------------------

def test_the_suppression_list_group_keeps_the_list(staff, db):
    client = staff(groups=("Suppression list",))

    assert upload(client, GOOD_CSV).status_code == 302
    assert offered_actions(client) == {"deactivate", "reactivate"}


def test_only_the_suppression_list_group_may_manage_it_and_reviewers_and_auditors_may_see_it(staff, db):
    holders = Group.objects.filter(permissions__codename="manage_benignentry").values_list("name", flat=True)
    viewers = set(Group.objects.filter(permissions__codename="view_benignentry").values_list("name", flat=True))

    assert list(holders) == ["Suppression list"]
    assert viewers == {"Suppression list", "Dispute review", "Auditor"}
    for group in ("Dispute review", "Auditor"):
        client = staff(groups=(group,), name=group.replace(" ", "-"))
        assert client.get(CHANGELIST).status_code == 200 and offered_actions(client) == set()
        assert upload(client, GOOD_CSV).status_code == 403
    assert not BenignEntry.objects.exists()


def test_the_suppression_list_group_resolves_no_dispute(db):
    codenames = set(Group.objects.get(name="Suppression list").permissions.values_list("codename", flat=True))

    assert "resolve_dispute" not in codenames
    assert {"view_benignentry", "manage_benignentry", "view_dispute"} <= codenames
