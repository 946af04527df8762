from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from hashes.models import SignalType


class BenignEntry(models.Model):
    """Known-benign content (a blank or near-blank frame, a common logo, footage used in news
    reporting) that must never be shared as terrorist content: a new statement asserting it is
    rejected with `benign_match`, match never returns a hash it covers, and adding it opens a dispute
    on every live hash it covers (`covered_at` says that was done). Entries are deactivated, never
    deleted, so the record of what was suppressed and why stays."""

    signal_type = models.CharField(max_length=16, choices=SignalType.choices)
    value = models.CharField(max_length=64, help_text="Lower-case hex; a vPDQ video by its value digest.")
    reason = models.TextField(help_text="Why it is benign; shown to administrators and in the audit trail.")
    active = models.BooleanField(default=True)
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+", help_text="Empty: added by an operator command.")
    added_by_label = models.CharField(max_length=200, help_text="Who added it, as shown at the time.")
    added_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    covered_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When disputes were opened on the live hashes it covered; empty while that is still to do.")

    class Meta:
        ordering = ["-added_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["signal_type", "value"], name="benign_entry_unique")]
        indexes = [models.Index(fields=["active", "signal_type"], name="benign_entry_active")]
        # Viewing grants no action: adding, importing, deactivating and reactivating all need
        # manage_benignentry, and nothing else changes an entry (nor deletes one).
        default_permissions = ("view",)
        permissions = [("manage_benignentry", "Can add, import, deactivate and reactivate suppression list entries")]
        verbose_name = "suppression list entry"
        verbose_name_plural = "suppression list"

    def __str__(self) -> str:
        return f"{self.signal_type}:{self.value[:16]}"

    def snapshot(self) -> dict[str, object]:
        """What an audit record keeps of it."""
        return {"signal_type": self.signal_type, "value": self.value, "reason": self.reason, "active": self.active}
