"""Withdrawing what a revoked key signed (DESIGN.md, "Keys": revoked means compromised). Revoking a
key (members.services.key_set_state) stops new statements at verification; this withdraws, for
everyone, the hash statements it signed that the server received at or after the key's
`compromised_since` (all of them when none was given), as a dispute's removal does: a retraction
signed by the server for each, events under the feed lock, the hash retracted when nothing live is
left. The rows are the truth: a withdrawn statement carries `retracted_at` and the code
WITHDRAWN, so a batch lost midway is done again by the next run, and nothing is withdrawn twice."""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.services import audit_record
from members.models import SigningKey

from ..matching import indexes
from ..models import Corroboration, Hash, Statement
from .disputes import server_statement
from .families import live_statements
from .feed import events_append, feed_lock
from .feedback import load_governance

WITHDRAWN = "key_revoked"
WITHDRAWN_MESSAGE = "Withdrawn by the server: the key that signed it was revoked as compromised."


def withdrawable(key: SigningKey) -> QuerySet[Statement]:
    """What the key signed that is still to withdraw: hash statements published and not retracted,
    and those verified but not yet published (refused before they are), from `compromised_since` on."""
    statements = Statement.objects.filter(
        key_id=key.pk, kind=Statement.Kind.HASH, retracted_at__isnull=True,
        state__in=[Statement.State.PUBLISHED, Statement.State.VERIFIED])
    if key.compromised_since is not None:
        statements = statements.filter(received_at__gte=key.compromised_since)
    return statements


def unfinished_keys() -> list[int]:
    """Revoked keys whose statements are still being withdrawn (for the sweep)."""
    return list(SigningKey.objects.filter(state=SigningKey.State.REVOKED, withdrawn_at__isnull=True)
                .values_list("pk", flat=True)[:100])


def removal_payload(statement: Statement) -> dict[str, Any]:
    """What the server signs to withdraw one statement: which one, and why."""
    return {
        "iss": settings.SERVER_ISSUER, "iat": int(time.time()), "jti": str(uuid.uuid4()), "kind": "retract",
        "retracts": {"iss": statement.member.slug, "jti": statement.jti}, "reason": WITHDRAWN,
    }


def withdraw_batch(*, key_id: int, limit: int, after: Any = None) -> tuple[int, Any] | None:
    """Withdraw up to `limit` of the key's statements in one transaction under the feed lock, in the
    order they were received, from `after` (when the last statement the previous batch withdrew was
    received: each batch reads its own rows through the index statement_key_received, not all of
    the key's again; those it withdrew leave the set); returns how many and when the last of them
    was received, or None when nothing was left (the key is then marked finished and audited)."""
    from .publishing import Batch, hash_key

    with transaction.atomic():
        head = feed_lock(wait=True)
        key = SigningKey.objects.select_for_update().select_related("member").filter(pk=key_id).first()
        if key is None or key.state != SigningKey.State.REVOKED or key.withdrawn_at is not None:
            return None
        now = timezone.now()
        remaining = withdrawable(key) if after is None else withdrawable(key).filter(received_at__gte=after)
        statements = list(remaining.select_related("member").order_by("received_at", "id")[:limit])
        if not statements:
            if after is not None and withdrawable(key).exists():  # published meanwhile below `after`
                return 0, None
            key.withdrawn_at = now
            key.save(update_fields=["withdrawn_at"])
            withdrawn = Statement.objects.filter(key_id=key.pk, rejection_code=WITHDRAWN).count()
            audit_record(actor=None, action="key.withdrawn", obj=key,
                         after={"kid": key.kid, "member": key.member.slug, "statements_withdrawn": withdrawn,
                                "compromised_since": key.compromised_since.isoformat() if key.compromised_since else None})
            return None
        ids = [s.pk for s in statements]
        targets: dict[Any, list[int]] = {}
        for statement_id, hash_id in Corroboration.objects.filter(
                statement_id__in=ids, retracted_at__isnull=True).values_list("statement_id", "hash_id"):
            targets.setdefault(statement_id, []).append(hash_id)
        hash_ids = sorted({h for hs in targets.values() for h in hs})
        hashes = {h.pk: h for h in Hash.objects.select_for_update().filter(pk__in=hash_ids).order_by("pk")}
        batch = Batch(now=now, hashes={hash_key(h): h for h in hashes.values()}, live=live_statements(hash_ids))
        batch.governance_of = load_governance(hash_ids)
        for statement in statements:
            if statement.state == Statement.State.PUBLISHED and statement.pk in targets:
                # Seen by whoever could see the statement, and nobody else (as a member's retraction).
                cause = server_statement(removal_payload(statement), now=now, retracts=statement,
                                         share_group_id=statement.share_group_id)
                sid = str(statement.pk)
                for hash_id in sorted(targets[statement.pk]):
                    hash_ = hashes[hash_id]
                    before = batch.live[hash_id]
                    after = [s for s in before if s != sid]
                    batch.live[hash_id] = after
                    if not after:
                        hash_.state = Hash.State.RETRACTED
                    hash_.updated_at = now
                    batch.record(hash_, cause, before, after)
            if statement.state == Statement.State.VERIFIED:  # never published: refused, as verification would
                statement.state = Statement.State.REJECTED
            else:
                statement.retracted_at = now
            statement.rejection_code, statement.rejection_message = WITHDRAWN, WITHDRAWN_MESSAGE
            statement.save(update_fields=["state", "retracted_at", "rejection_code", "rejection_message"])
        Corroboration.objects.filter(statement_id__in=ids, retracted_at__isnull=True).update(retracted_at=now)
        for hash_ in hashes.values():
            hash_.save(update_fields=["state", "updated_at"])
        events_append(head, batch.events)
        if batch.events:
            indexes.mark_stale()
    return len(statements), statements[-1].received_at


def withdraw_key_statements(*, key_id: int, batch_size: int, max_batches: int = 20) -> bool:
    """Withdraw in batches; True when finished, False when it stopped at max_batches with work left."""
    after = None
    for _ in range(max_batches):
        done = withdraw_batch(key_id=key_id, limit=batch_size, after=after)
        if done is None:
            return True
        after = done[1]
    return False
