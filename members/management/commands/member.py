"""Scriptable onboarding. Each subcommand prints only its result, so it composes in shell scripts:

    python manage.py member add <slug> --name "<name>" --kind platform|government|ngo
    python manage.py member token <slug> --scopes submit,read,match [--name N] [--expires-days D]
    python manage.py member key <slug> --jwk '<public JWK JSON>' [--approve]
    python manage.py member revoke-key [--compromised-since 2026-11-30T18:00:00Z] [--] <kid>
    (`--` before a kid that begins with `-`, as a thumbprint may)
"""

from __future__ import annotations

import json
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from consortium.api.errors import CodedError
from members.models import Member, SigningKey
from members.services import key_register, key_set_state, member_create, token_create


class Command(BaseCommand):
    help = "Onboard members: add a member, issue an API token, register or revoke a signing key."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="Create a member; prints its slug.")
        add.add_argument("slug")
        add.add_argument("--name", required=True)
        add.add_argument("--kind", required=True, choices=Member.MEMBER_KINDS)
        token = sub.add_parser("token", help="Issue an API token; prints it (shown once).")
        token.add_argument("slug")
        token.add_argument("--scopes", default="submit,read,match")
        token.add_argument("--name", default="")
        token.add_argument("--expires-days", type=int, default=None)
        key = sub.add_parser("key", help="Register a public JWK; prints its kid.")
        key.add_argument("slug")
        key.add_argument("--jwk", required=True)
        key.add_argument("--approve", action="store_true", help="Make it active at once.")
        revoke = sub.add_parser("revoke-key", help="Revoke a key as compromised, withdrawing what it signed; "
                                                   "prints its kid.")
        revoke.add_argument("kid")
        revoke.add_argument("--compromised-since", default=None,
                            help="ISO 8601 time: withdraw only statements received from then on (default: all).")

    def handle(self, *args, action: str, **options):
        try:
            if action == "add":
                member = member_create(slug=options["slug"], name=options["name"], kind=options["kind"])
                self.stdout.write(member.slug)
                return
            if action == "revoke-key":
                self.stdout.write(self.revoke_key(options["kid"], options["compromised_since"]).kid)
                return
            member = self.get_member(options["slug"])
            if action == "token":
                days = options["expires_days"]
                issued = token_create(
                    member=member, scopes=options["scopes"].split(","), name=options["name"],
                    expires_at=timezone.now() + timedelta(days=days) if days else None,
                )
                self.stdout.write(issued.plaintext)
            else:
                try:
                    jwk = json.loads(options["jwk"])
                except json.JSONDecodeError as exc:
                    raise CommandError(f"jwk_invalid: --jwk is not JSON ({exc.msg}).") from None
                key = key_register(member=member, jwk=jwk, approve=options["approve"])
                self.stdout.write(key.kid)
        except CodedError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None

    @staticmethod
    def revoke_key(kid: str, since: str | None) -> SigningKey:
        key = SigningKey.objects.filter(kid=kid).first()
        if key is None:
            raise CommandError(f"key_unknown: no key has the kid {kid!r}.")
        when = None
        if since is not None:
            try:
                when = parse_datetime(since)
            except ValueError:
                when = None
            if when is None or timezone.is_naive(when):
                raise CommandError("compromised_since_invalid: give an ISO 8601 time with its offset, "
                                   "e.g. 2026-11-30T18:00:00Z.")
        return key_set_state(key=key, state=SigningKey.State.REVOKED, compromised_since=when)

    @staticmethod
    def get_member(slug: str) -> Member:
        member = Member.objects.filter(slug=slug).first()
        if member is None:
            raise CommandError(f"member_unknown: no member has the slug {slug!r}.")
        return member
