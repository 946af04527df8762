"""Names that mean something else are reserved: the server's own slug (SERVER_ISSUER), which the
server finds its row by, and the share `consortium`, which means every member. The server's row
gets no tokens, keys or status changes, from the admin or anywhere else."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.urls import reverse

from consortium.api.errors import DomainError
from consortium_client.keys import generate_private_key, public_jwk
from hashes.services.disputes import server_member
from members.models import ApiToken, Member, SharingGroup, SigningKey
from members.services import key_register, member_set_status, token_create
from tests.factories import md5
from tests.test_admin_permissions import staff  # noqa: F401  (fixture)

CREATED_AT = {"created_at_0": "2026-01-01", "created_at_1": "00:00:00"}


def test_onboarding_cannot_create_a_member_under_the_servers_slug(staff):  # noqa: F811
    client = staff(groups=("Onboarding",))

    page = client.post(reverse("admin:members_member_add"), {
        "slug": settings.SERVER_ISSUER, "name": "Totally the server", "kind": "platform", "status": "active",
        **CREATED_AT})

    assert page.status_code == 200 and "names the server itself" in page.content.decode()  # the form, again
    assert not Member.objects.filter(slug=settings.SERVER_ISSUER).exists()
    assert server_member().kind == Member.Kind.SERVER


def test_the_server_gets_no_token_key_or_status_change(staff):  # noqa: F811
    server = server_member()
    client = staff(groups=("Onboarding",))

    token_page = client.post(reverse("admin:members_member_issue_token", args=[server.pk]), {"scopes": ["submit"]})
    key_page = client.post(reverse("admin:members_member_register_key", args=[server.pk]),
                           {"jwk": json.dumps(public_jwk(generate_private_key(), kid="server-member-key"))})

    assert (token_page.status_code, key_page.status_code) == (404, 404)
    for change in (lambda: token_create(member=server, scopes=["read"]),
                   lambda: key_register(member=server, jwk=public_jwk(generate_private_key())),
                   lambda: member_set_status(member=server, status=Member.Status.SUSPENDED)):
        with pytest.raises(DomainError) as refused:
            change()
        assert refused.value.code == "member_is_server"
    assert not ApiToken.objects.filter(member=server).exists()
    assert not SigningKey.objects.filter(member=server).exists()
    assert Member.objects.get(pk=server.pk).status == Member.Status.ACTIVE


def test_no_sharing_group_takes_the_share_of_every_member(admin_client, alice, charlie, pipeline):
    page = admin_client.post(reverse("admin:members_sharinggroup_add"), {
        "slug": "consortium", "name": "Consortium core", "members": [alice.member.pk], **CREATED_AT})

    assert page.status_code == 200 and not SharingGroup.objects.filter(slug="consortium").exists()
    alice.submit(alice.statement([md5(99)], share="consortium"))  # every member's, as DESIGN says
    pipeline()
    assert [e["hash"]["value"] for e in charlie.feed()["events"]] == [md5(99)["value"]]
