"""Recovery: find work that a lost message or a killed worker left in the database and queue it."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from ..models import Statement
from .publishing import publishable
from .submission import enqueue_verification

logger = logging.getLogger(__name__)


def sweep(*, stale_after_seconds: int) -> dict[str, int]:
    from ..tasks import publish_verified

    now = timezone.now()
    cutoff = now - timedelta(seconds=stale_after_seconds)
    # queued_at moves on when a statement is queued again, so one that is merely waiting in a long
    # queue is re-queued at most once per stale window, not at every sweep.
    stale = list(
        Statement.objects.filter(state=Statement.State.RECEIVED, queued_at__lt=cutoff)
        .order_by("-priority", "received_at").only("id", "priority")[:20000]
    )
    if stale:
        logger.warning("Sweep: re-queueing verification of %d statements queued before %s.", len(stale), cutoff)
        Statement.objects.filter(id__in=[s.id for s in stale]).update(queued_at=now)
        enqueue_verification(stale)
    waiting = publishable().exists()
    if waiting:
        publish_verified.delay()
    return {"requeued": len(stale), "publish": int(waiting)}


def drain(*, batch_size: int = 500) -> None:
    """Run the whole pipeline in this process until nothing is left (operator command, tests)."""
    from . import publishing, verification

    while True:
        ids = list(Statement.objects.filter(state=Statement.State.RECEIVED).values_list("id", flat=True)[:batch_size])
        if not ids:
            break
        verification.statements_verify(ids=ids)
    publishing.publish_verified(batch_size=batch_size)
