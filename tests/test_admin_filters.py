"""A changelist filters by query string only on what it offers (list_filter, date_hierarchy):
any other lookup is refused, so no staff user learns a field the admin masks or never shows by
counting the rows a guess leaves (consortium.admin_tools.ConsortiumAdmin)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from consortium.admin_tools import ConsortiumAdmin
from distribution.delivery.signing import generate_secret
from distribution.models import Subscription
from distribution.secretbox import seal
from media.models import MediaJob
from tests.test_admin_permissions import staff  # noqa: F401  (fixture)

REGISTERED = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def changelist(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


@pytest.mark.parametrize("model, model_admin", REGISTERED, ids=[m._meta.label for m, _ in REGISTERED])
def test_every_admin_refuses_lookups_on_fields_it_does_not_offer_as_filters(rf, admin_user, model, model_admin):
    assert isinstance(model_admin, ConsortiumAdmin)
    request = rf.get("/")
    request.user = admin_user
    offered = {model_admin.date_hierarchy} | {
        f if isinstance(f, str) else (f[0] if isinstance(f, (list, tuple)) else f.parameter_name)
        for f in model_admin.get_list_filter(request)}
    hidden = [f.name for f in model._meta.concrete_fields if f.name not in offered]
    assert hidden
    for name in hidden:
        for lookup in (name, f"{name}__contains", f"{name}__startswith", f"{name}__gte"):
            assert not model_admin.lookup_allowed(lookup, "x", request), f"{model._meta.label}: {lookup}"


@pytest.mark.parametrize("model, model_admin", REGISTERED, ids=[m._meta.label for m, _ in REGISTERED])
def test_every_filter_a_changelist_offers_still_works(admin_client, alice, model, model_admin):
    """Each choice of each filter the page shows (its links carry the lookups it needs) answers 200."""
    page = admin_client.get(changelist(model))
    assert page.status_code == 200
    for spec in page.context["cl"].filter_specs:
        for choice in spec.choices(page.context["cl"]):
            assert admin_client.get(changelist(model) + choice["query_string"]).status_code == 200, choice


def a_guess_answers(client: Client, path: str, right: dict, wrong: dict) -> tuple[int, int]:
    return tuple(client.get(f"{path}?{urlencode(guess)}").status_code for guess in (right, wrong))


def test_a_viewer_cannot_read_a_webhook_urls_query_secret_by_filtering(staff, alice):  # noqa: F811
    Subscription.objects.create(member=alice.member, url="https://hooks.example/in?token=s3cr3t-T0KEN",
                                secret_encrypted=seal(generate_secret()))
    client = staff("distribution.view_subscription")

    assert "s3cr3t" not in client.get(changelist(Subscription)).content.decode()  # masked on the page
    assert a_guess_answers(client, changelist(Subscription), {"url__contains": "token=s3cr3t"},
                           {"url__contains": "token=x"}) == (400, 400)


def test_an_auditor_cannot_read_a_media_jobs_signals_by_filtering(staff, alice):  # noqa: F811
    value = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
    MediaJob.objects.create(owner=alice.member, state=MediaJob.State.DONE, progress=1.0,
                            result=[{"type": "pdq", "value": value, "quality": 100}])
    client = staff(groups=("Auditor",))

    assert value not in client.get(changelist(MediaJob)).content.decode()
    assert a_guess_answers(client, changelist(MediaJob), {"result__icontains": value[:8]},
                           {"result__icontains": "00000000"}) == (400, 400)
