"""Webhook subscriptions as cursors on the feed, and the deliveries that move them.

A subscription's `cursor` is the last `seq` its receiver acknowledged (or that its filters and
visibility let it skip). The main lane sends the next batch after the cursor, one batch in flight
at a time; the priority lane pushes incident events at once, ahead of any backlog, without moving
the cursor, so those events arrive again in their place on the main lane."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from members.models import ApiToken, Member


class Subscription(models.Model):
    class State(models.TextChoices):
        ACTIVE = "active"
        PAUSED = "paused"
        DISABLED = "disabled"

    class Reason(models.TextChoices):
        NONE = "", "-"
        MEMBER = "member", "by the member"
        ADMIN = "admin", "by an administrator"
        RETRIES_EXHAUSTED = "retries_exhausted", "every retry failed"
        ENDPOINT_GONE = "endpoint_gone", "the receiver answered 410 Gone"
        TOKEN_REVOKED = "token_revoked", "the API token that set its URL was revoked"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="subscriptions")
    url = models.CharField(max_length=2000)
    # The API token that created it or last changed its URL, that is, the credential answerable for
    # where it sends the member's view: revoking that token disables it. None when an administrator
    # or an operator command made it.
    set_by_token = models.ForeignKey(ApiToken, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="subscriptions")
    description = models.CharField(max_length=200, blank=True)

    # Filters, applied after visibility. Empty lists mean "all".
    signal_types = models.JSONField(default=list, blank=True)
    labels = models.JSONField(default=list, blank=True)
    incident_only = models.BooleanField(default=False)
    min_corroboration = models.PositiveIntegerField(default=1)
    include_retractions = models.BooleanField(default=True)
    # Hold a hash back while a dispute the member can see is open on it: the event that opens the
    # dispute and the one that resolves it still come, nothing in between.
    exclude_disputed = models.BooleanField(default=False)

    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    state_reason = models.CharField(max_length=32, choices=Reason.choices, blank=True)
    state_changed_at = models.DateTimeField(default=timezone.now)
    cursor = models.BigIntegerField(default=0, help_text="Last acknowledged (or skipped) feed seq.")

    # whsec_ secrets, encrypted at rest (distribution.secretbox); the plaintext is shown once.
    secret_encrypted = models.TextField()
    previous_secret_encrypted = models.TextField(blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_error_code = models.CharField(max_length=32, blank=True)
    last_error_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error_message = models.CharField(max_length=300, blank=True)
    # Set when a pump task is queued, cleared when it ends: keeps fan-out to one pump, queued or running,
    # per subscription (taken for lost after WEBHOOK_WAKE_STALE_SECONDS).
    wake_requested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["member__slug", "created_at"]
        indexes = [models.Index(fields=["state", "cursor"], name="subscription_behind")]
        permissions = [("manage_subscription", "Can pause, resume, re-enable and replay subscriptions")]

    def __str__(self) -> str:
        return f"{self.member.slug}:{str(self.pk)[:8]}"


class Delivery(models.Model):
    """One webhook message: a batch of events (or a ping), its stable `webhook-id`, and where its
    retries stand. `next_attempt_at` doubles as the claim: a worker that takes the delivery moves it
    past the longest an attempt can last, so a killed worker's delivery becomes due again by itself."""

    class Lane(models.TextChoices):
        MAIN = "main"
        PRIORITY = "priority"
        TEST = "test"

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed", "failed (given up)"
        SUPERSEDED = "superseded"

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="deliveries")
    lane = models.CharField(max_length=16, choices=Lane.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    webhook_id = models.CharField(max_length=64, unique=True)
    # Main lane: the events in (after_seq, through_seq] that pass visibility and filters; the cursor
    # moves from after_seq to through_seq on acknowledgement. Priority lane: exactly `seqs`.
    after_seq = models.BigIntegerField(null=True, blank=True)
    through_seq = models.BigIntegerField(null=True, blank=True)
    seqs = models.JSONField(null=True, blank=True)
    first_seq = models.BigIntegerField(null=True, blank=True)
    last_seq = models.BigIntegerField(null=True, blank=True)
    event_count = models.PositiveIntegerField(default=0)
    # SHA-256 of the body first sent: a retry whose body renders differently goes out under a new
    # webhook-id, since receivers drop an id they have seen (empty for pings).
    body_digest = models.CharField(max_length=64, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    attempt_count = models.PositiveIntegerField(default=0, help_text="Claims so far; fences stale workers.")
    failures = models.PositiveIntegerField(default=0, help_text="Failed attempts in the current retry schedule.")
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="Empty: not scheduled (paused or disabled).")
    enqueued_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=32, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["subscription"], condition=Q(lane="main", state="pending"), name="one_main_batch_in_flight"
            ),
        ]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="delivery_due"),
            models.Index(fields=["subscription", "-id"], name="delivery_recent"),
            # The sweep prunes finished deliveries past WEBHOOK_RETENTION_DAYS without a full scan.
            models.Index(fields=["finished_at"], name="delivery_finished", condition=~Q(state="pending")),
        ]

    def __str__(self) -> str:
        return self.webhook_id


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=32, blank=True, help_text="Empty: acknowledged with a 2xx.")
    detail = models.CharField(max_length=300, blank=True)
    retry_after = models.PositiveIntegerField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["delivery_id", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="attempt_number_unique")]

    def __str__(self) -> str:
        return f"{self.delivery_id}#{self.number}"


class DispatchMark(models.Model):
    """Single row: the last feed seq the dispatcher has looked at for incident events, and the feed
    head it last announced. Pumps send up to the announced head, so that subscriptions woken
    together cut their batches at the same seqs and share them."""

    scanned_seq = models.BigIntegerField(default=0)
    head = models.BigIntegerField(default=0)
