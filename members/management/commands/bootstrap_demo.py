"""First-run demo data for the embedded mode: an administrator and two members (a platform and the
Home Office), each with an API token and an approved signing key. Runs only on an empty database
and prints the secrets once; nothing secret is written to disk."""

from __future__ import annotations

import json
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from consortium_client.keys import generate_private_key, private_jwk, public_jwk
from members.models import Member
from members.services import key_register, member_create, token_create

DEMO_MEMBERS = [
    ("demo-platform", "Demo Platform", Member.Kind.PLATFORM),
    ("home-office", "UK Home Office (demo)", Member.Kind.GOVERNMENT),
]


class Command(BaseCommand):
    help = "Create a demo administrator and two demo members if the database has none."

    def handle(self, *args, **options):
        User = get_user_model()
        if Member.objects.exists() or User.objects.filter(is_superuser=True).exists():
            self.stdout.write("Demo data not created: members or an administrator exist already.")
            return
        password = secrets.token_urlsafe(12)
        lines = []
        with transaction.atomic():
            User.objects.create_superuser("admin", "", password)
            lines.append(f"Administrator: admin / {password}  (http://127.0.0.1:8000/admin/)")
            for slug, name, kind in DEMO_MEMBERS:
                member = member_create(slug=slug, name=name, kind=kind)
                token = token_create(member=member, scopes=["submit", "read", "match", "subscribe"],
                                     name="demo")
                private = generate_private_key()
                key = key_register(member=member, jwk=public_jwk(private), approve=True)
                lines += [f"Member {slug} ({kind})", f"  API token:   {token.plaintext}",
                          f"  signing key: {json.dumps(private_jwk(private, key.kid))}"]
        self.stdout.write("\n".join(["", "Demo credentials (shown once, not stored):", *lines, ""]))
