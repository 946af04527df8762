"""Thin Celery wrappers. The database is the source of truth: a lost message delays work, the
sweep finds it again, and every service is safe to run twice. Services say what to queue next;
this module queues it."""

from __future__ import annotations

import logging
from typing import Any, Iterable

from celery import shared_task
from django.conf import settings

from .services import pipeline, publishing, revocation, verification

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def verify_statements(ids: list[str]) -> None:
    # Publishing right here, rather than in a task of its own, keeps a verified statement from
    # queueing behind unverified ones: in verification's own transaction once the feed lock is
    # free (waiting for it a bounded time); if another worker holds it longer, it takes these too.
    # Publish after rejections too: a rejected target releases the retraction waiting for it.
    # Most tasks have published all there was: one look, without the lock or a transaction, tells
    # whether anything waits (stored verified while another worker held the lock, and committed
    # before it let go) before taking the lock and reading a batch.
    if verification.statements_verify(ids=ids, publish=True) and publishing.publishable().exists():
        publish()


@shared_task(ignore_result=True)
def publish_verified() -> None:
    publish()


def publish() -> None:
    run = publishing.publish_verified(batch_size=settings.PUBLISH_BATCH_SIZE)
    if not run.finished:
        publish_verified.delay()


@shared_task(ignore_result=True)
def withdraw_revoked_key(key_id: int) -> None:
    """Withdraw what a revoked key signed, a batch at a time under the feed lock (on the `publish`
    queue, as publishing); queued again while work is left, and by the sweep if lost."""
    if not revocation.withdraw_key_statements(key_id=key_id, batch_size=settings.PUBLISH_BATCH_SIZE):
        withdraw_revoked_key.delay(key_id)


def enqueue_withdrawal(key_id: int) -> None:
    """Best effort, after the revocation commits: the sweep queues it if the broker is unreachable."""
    try:
        withdraw_revoked_key.delay(key_id)
    except Exception:
        logger.exception("Could not queue the withdrawal of key %s's statements; the sweep will retry.", key_id)


# Runs on its own queue, taken first, so that recovery still happens under a backlog.
@shared_task(ignore_result=True)
def sweep_pipeline() -> None:
    sweep(stale_after_seconds=settings.SWEEP_STALE_AFTER_SECONDS)


def sweep(*, stale_after_seconds: int) -> dict[str, int]:
    found = pipeline.sweep(stale_after_seconds=stale_after_seconds)
    enqueue_verification(found.stale)
    if found.publishable:
        publish_verified.delay()
    for key_id in revocation.unfinished_keys():  # a withdrawal whose task was lost, or stopped by a crash
        withdraw_revoked_key.delay(key_id)
    return {"requeued": len(found.stale), "publish": int(found.publishable)}


def enqueue_verification(ids: Iterable[Any], *, fast: set[Any] = frozenset()) -> None:
    """Best effort: the statements are stored, so if the broker is unreachable the periodic sweep
    finds them in the database and queues them later (on the ordinary queue). The client's 202
    stands either way. Those in `fast` go on the `priority` queue, which workers take first."""
    ids = list(ids)
    try:
        for lane in (True, False):
            chosen = [str(i) for i in ids if (i in fast) is lane]
            size = settings.VERIFY_CHUNK_SIZE
            for start in range(0, len(chosen), size):
                options = {"queue": "priority"} if lane else {}
                verify_statements.apply_async(args=[chosen[start:start + size]], **options)
    except Exception:
        logger.exception("Could not queue verification of %d statements; the sweep will retry.", len(ids))
