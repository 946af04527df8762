"""Members' media hashing jobs (POST hash/jobs/), for administrators to see what is queued, running,
stuck or failing, and for whom. Read only: the workers and the sweep move a job along (a job a
worker lost is retried or failed by the sweep), and the signals a job found are the member's
answer, shown here only by their number."""

from __future__ import annotations

from django.contrib import admin

from consortium.admin_tools import ReadOnlyAdmin

from .models import MediaJob


@admin.register(MediaJob)
class MediaJobAdmin(ReadOnlyAdmin):
    list_display = ["id", "owner", "state", "progress_percent", "created_at", "finished_at", "error_code"]
    list_filter = ["state", "error_code"]
    search_fields = ["id", "owner__slug"]
    list_select_related = ["owner"]
    ordering = ["-created_at"]
    fields = ["id", "owner", "state", "progress_percent", "attempts", "file_size", "signal_count", "error_code",
              "error_message", "created_at", "enqueued_at", "started_at", "heartbeat_at", "finished_at"]
    readonly_fields = fields

    @admin.display(description="progress", ordering="progress")
    def progress_percent(self, job: MediaJob) -> str:
        return f"{job.progress:.0%}"

    @admin.display(description="signals found")
    def signal_count(self, job: MediaJob) -> int | None:
        return len(job.result) if job.result is not None else None
