"""The media jobs' admin pages: a list and a read-only page for whoever may view media jobs, a 403
for every other staff user, and no way to add, change or delete a job by hand."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as global_apps
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse

from media.models import MediaJob
from tests.factories import md5

SIGNAL = md5(41)


def url(view: str, *args) -> str:
    return reverse(f"admin:media_mediajob_{view}", args=args)


@pytest.fixture
def staff(db, django_user_model):
    """A logged-in staff user (not a superuser) with exactly these permissions."""

    def make(*codenames: str) -> Client:
        user = django_user_model.objects.create_user("staffer", is_staff=True)
        user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def jobs(alice, bob) -> tuple[MediaJob, MediaJob]:
    done = MediaJob.objects.create(owner=alice.member, state=MediaJob.State.DONE, progress=1.0, result=[SIGNAL])
    failed = MediaJob.objects.create(owner=bob.member, state=MediaJob.State.FAILED, progress=0.25,
                                     error_code="media_unreadable", error_message="The file is not an image.")
    return done, failed


def test_a_staff_user_without_the_view_permission_is_refused(staff, jobs):
    # Every other permission of a staff user's everyday roles, but not this one.
    client = staff("view_member", "view_statement", "view_delivery", "change_member")

    assert client.get(url("changelist")).status_code == 403
    assert client.get(url("change", jobs[0].pk)).status_code == 403
    assert client.get(reverse("admin:index")).content.decode().count("Media jobs") == 0


def test_a_viewer_sees_each_jobs_member_state_progress_and_error(staff, jobs):
    client = staff("view_mediajob")
    done, failed = jobs

    listing = client.get(url("changelist"))

    assert listing.status_code == 200
    rows = {row.pk: row for row in listing.context["cl"].result_list}
    assert rows.keys() == {done.pk, failed.pk}
    page = listing.content.decode()
    for text in ("alice", "bob", "media_unreadable", "25%", "100%", "Failed", "Done"):
        assert text in page, text
    detail = client.get(url("change", failed.pk)).content.decode()
    assert "The file is not an image." in detail and "media_unreadable" in detail


def test_a_jobs_signals_are_counted_not_shown(staff, jobs):
    page = staff("view_mediajob").get(url("change", jobs[0].pk))

    assert page.status_code == 200
    assert SIGNAL["value"] not in page.content.decode()
    assert "Signals found" in page.content.decode()


@pytest.mark.parametrize("codenames", [("view_mediajob",), ("view_mediajob", "add_mediajob", "change_mediajob",
                                                             "delete_mediajob")])
def test_no_one_adds_changes_or_deletes_a_job_by_hand(staff, jobs, codenames):
    client = staff(*codenames)
    job = jobs[1]

    assert client.get(url("add")).status_code == 403
    assert client.post(url("change", job.pk), {"state": "queued"}).status_code == 403
    assert client.post(url("delete", job.pk), {"post": "yes"}).status_code == 403
    assert client.post(url("changelist"), {"action": "delete_selected", "_selected_action": [job.pk],
                                           "post": "yes"}).status_code in (200, 302, 403)
    job.refresh_from_db()
    assert (job.state, job.error_code) == ("failed", "media_unreadable")
    assert MediaJob.objects.count() == 2


def test_auditors_may_view_media_jobs_and_granting_it_again_changes_nothing(db, django_user_model, jobs):
    grant = importlib.import_module("media.migrations.0002_auditor_views_media_jobs").grant_view
    auditors = Group.objects.get(name="Auditor")
    before = set(auditors.permissions.values_list("codename", flat=True))

    grant(global_apps, None)

    assert set(auditors.permissions.values_list("codename", flat=True)) == before
    assert "view_mediajob" in before and not {"add_mediajob", "change_mediajob", "delete_mediajob"} & before
    user = django_user_model.objects.create_user("auditor", is_staff=True)
    user.groups.add(auditors)
    client = Client()
    client.force_login(user)
    assert client.get(url("changelist")).status_code == 200
    assert client.get(url("add")).status_code == 403
