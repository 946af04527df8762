"""Thin Celery wrappers. The database is the source of truth: a lost message delays work, the
sweep finds it again, and every service is safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from .services import pipeline, publishing, verification


@shared_task(ignore_result=True)
def verify_statements(ids: list[str]) -> None:
    # Publishing right here, rather than in a task of its own, keeps a verified statement from
    # queueing behind unverified ones; if another worker is publishing, it takes these too.
    # Publish after rejections too: a rejected target releases the retraction waiting for it.
    if verification.statements_verify(ids=ids):
        publish()


@shared_task(ignore_result=True)
def publish_verified() -> None:
    publish()


def publish() -> None:
    run = publishing.publish_verified(batch_size=settings.PUBLISH_BATCH_SIZE)
    if not run.finished:
        publish_verified.delay()


# Runs on its own queue, taken first, so that recovery still happens under a backlog.
@shared_task(ignore_result=True)
def sweep_pipeline() -> None:
    pipeline.sweep(stale_after_seconds=settings.SWEEP_STALE_AFTER_SECONDS)
