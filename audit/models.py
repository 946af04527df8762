from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ValueError("Audit events are append-only.")

    def delete(self):
        raise ValueError("Audit events are append-only.")


class AuditEvent(models.Model):
    """Append-only record of a state change by a member or an administrator.

    Rows are never updated or deleted: the model refuses it, the admin offers no way to, and on
    PostgreSQL a trigger refuses it too (migration 0002)."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_member = models.ForeignKey("members.Member", null=True, blank=True, on_delete=models.PROTECT)
    actor_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    actor_label = models.CharField(max_length=200, help_text="Who, as shown at the time (member slug, admin username).")
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.object_type}:{self.object_id}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit events are append-only.")


class AdminLoginFailure(models.Model):
    """A failed admin sign-in, kept only as long as it can count towards a lockout (see audit.logins).
    The database, not a cache, so that every server process sees the same count."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    username = models.CharField(max_length=150, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username} from {self.ip}"
