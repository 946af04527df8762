"""Thin Celery wrappers. The database is the source of truth: a lost message delays work, the
sweep finds it again, and every service is safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from .services import pipeline, publishing, verification


@shared_task(ignore_result=True)
def verify_statements(ids: list[str]) -> None:
    passed = verification.statements_verify(ids=ids)
    if passed:
        priority = any(s.priority for s in passed)
        publish_verified.apply_async(queue="priority" if priority else "publish")


@shared_task(ignore_result=True)
def publish_verified() -> None:
    publishing.publish_verified(batch_size=settings.PUBLISH_BATCH_SIZE)


@shared_task(ignore_result=True)
def sweep_pipeline() -> None:
    pipeline.sweep(stale_after_seconds=settings.SWEEP_STALE_AFTER_SECONDS)
