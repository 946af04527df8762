"""Recovery: find work that a lost message or a killed worker left in the database."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from ..models import Statement
from .publishing import publishable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Found:
    stale: list[uuid.UUID]  # received statements to queue for verification again, most urgent first
    publishable: bool  # verified statements wait for a publisher


def sweep(*, stale_after_seconds: int) -> Found:
    now = timezone.now()
    cutoff = now - timedelta(seconds=stale_after_seconds)
    # queued_at moves on when a statement is queued again, so one that is merely waiting in a long
    # queue is re-queued at most once per stale window, not at every sweep.
    # A statement whose row is locked is being verified (claimed by a verification task): it needs
    # no re-queueing, and the sweep must not wait for it. Waiting would hold the rows it had locked
    # already (one verified and committed meanwhile, which a publisher holding the feed lock goes on
    # to write) while the verifier waits for the feed lock: a cycle, which PostgreSQL breaks by
    # aborting one of them. So the sweep locks only rows still `received` that nobody holds.
    with transaction.atomic():
        stale = list(
            Statement.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(state=Statement.State.RECEIVED, queued_at__lt=cutoff)
            .order_by("-priority", "received_at").values_list("id", flat=True)[:20000]
        )
        if stale:
            logger.warning("Sweep: re-queueing verification of %d statements queued before %s.", len(stale), cutoff)
            Statement.objects.filter(id__in=stale).update(queued_at=now)
    return Found(stale=stale, publishable=publishable().exists())


def drain(*, batch_size: int = 500) -> None:
    """Run the whole pipeline in this process until nothing is left (operator command, tests)."""
    from . import publishing, verification

    while True:
        ids = list(Statement.objects.filter(state=Statement.State.RECEIVED).values_list("id", flat=True)[:batch_size])
        if not ids:
            break
        verification.statements_verify(ids=ids, publish=True)
    publishing.publish_verified(batch_size=batch_size)
