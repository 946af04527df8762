"""A member's request to hash one uploaded file, run by a worker on the `media` queue."""

from __future__ import annotations

import uuid

from django.db import models


class MediaJob(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    ACTIVE = (State.QUEUED, State.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey("members.Member", on_delete=models.CASCADE, related_name="media_jobs")
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    progress = models.FloatField(default=0.0)  # 0..1, while running
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    result = models.JSONField(null=True, blank=True)  # the signals, once done
    # The upload, under MEDIA_JOB_DIR until it is hashed or has failed; empty afterwards.
    file_path = models.CharField(max_length=500, blank=True)
    file_size = models.BigIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The attempt holding the job: its heartbeat, progress and answer count only while it is this one's.
    lease = models.UUIDField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["state", "heartbeat_at"], name="media_job_state_heartbeat"),
            models.Index(fields=["owner", "state"], name="media_job_owner_state"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(progress__gte=0, progress__lte=1), name="media_job_progress_0_1"),
        ]

    def __str__(self) -> str:
        return f"media job {self.id} ({self.state})"
