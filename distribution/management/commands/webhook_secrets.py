"""Webhook secrets at rest, for operators changing WEBHOOK_SECRET_KEYS. Neither prints a secret:

    python manage.py webhook_secrets reseal [--batch-size N]   # every secret under the newest key; counts
    python manage.py webhook_secrets check   # counts, and the ids of subscriptions whose secret no key decrypts

Both exit with status 1 when a secret cannot be decrypted. Rotation: put the new key first in
WEBHOOK_SECRET_KEYS (the old ones after it) on every host, run `reseal`, check that `check` reports
none under an older key, then remove the old key."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from distribution.services.subscriptions import (
    RESEAL_BATCH_SIZE, subscription_secrets_check, subscription_secrets_reseal,
)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Re-encrypt webhook secrets under the newest WEBHOOK_SECRET_KEYS key, or check that all decrypt."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        reseal = sub.add_parser("reseal", help="Encrypt every secret under the newest key; prints counts.")
        reseal.add_argument("--batch-size", type=_positive, default=RESEAL_BATCH_SIZE,
                            help="Subscriptions per transaction.")
        sub.add_parser("check", help="Count the secrets that decrypt; list the subscriptions whose do not.")

    def handle(self, *args, action: str, **options):
        try:
            if action == "reseal":
                report = subscription_secrets_reseal(batch_size=options["batch_size"])
                self.stdout.write(f"resealed: {report.resealed}")
                self.stdout.write(f"under the newest key: {report.newest}")
            else:
                report = subscription_secrets_check()
                self.stdout.write(f"decrypt: {report.newest + report.older}")
                self.stdout.write(f"under the newest key: {report.newest}")
                self.stdout.write(f"under an older key: {report.older}")
        except ImproperlyConfigured as exc:  # a malformed WEBHOOK_SECRET_KEYS; the message names no key
            raise CommandError(str(exc)) from None
        self.stdout.write(f"subscriptions with a secret that does not decrypt: {len(report.unreadable)}")
        if action == "check":
            for subscription_id in report.unreadable:
                self.stdout.write(str(subscription_id))
        if report.unreadable:
            raise CommandError(
                "Some secrets cannot be decrypted with WEBHOOK_SECRET_KEYS (`webhook_secrets check` lists their "
                "subscriptions): restore the key that sealed them, or have each member rotate its secret with "
                "secret_overlap_seconds 0.")
