"""Thin Celery wrappers: the row is the truth, and the sweep recovers what a lost message or a
killed worker left behind."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from . import services


# Acknowledged when it starts, not when it ends (acks_late=False): a job runs for many minutes,
# longer than the broker's visibility timeout, after which Redis would hand an unacknowledged message
# to a second worker. Its lease in the database does what the late acknowledgement does elsewhere.
# The service stops an attempt at MEDIA_JOB_TIME_LIMIT_SECONDS; the hard limit is for a decoder
# that hangs inside FFmpeg, after which the sweep finds the silent job.
@shared_task(ignore_result=True, acks_late=False, soft_time_limit=settings.MEDIA_JOB_TIME_LIMIT_SECONDS + 60,
             time_limit=settings.MEDIA_JOB_TIME_LIMIT_SECONDS + 120)
def run_media_job(job_id: str) -> None:
    services.media_job_run(job_id=job_id)


@shared_task(ignore_result=True)
def sweep_media_jobs() -> None:
    services.media_jobs_sweep()
