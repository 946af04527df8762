"""Disputes resolved by administrators, and the statements the server signs to carry out a removal
(DESIGN.md, "Feedback, disputes and corrections"). Members open disputes with feedback
(hashes.services.feedback); the suppression list opens them through `disputes_open`."""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any, Iterable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from consortium.api.errors import Conflict, DomainError
from consortium.server_keys import server_signing_key
from consortium_client import jws
from consortium_client.keys import public_jwk
from members.models import Member

from ..matching import indexes
from ..models import Corroboration, Dispute, Hash, Label, Statement
from .families import live_statements
from .feed import events_append, feed_lock
from .feedback import carried_disputes, load_governance

OUTCOMES = (Dispute.State.UPHELD, Dispute.State.RELABELLED, Dispute.State.REMOVED)
# What the server's removal statement, and the disputes a removal closes besides the one resolved,
# say when the administrator's own words belong to a sharing group's dispute (see dispute_resolve).
REVIEWED = "removed after review"


def server_member() -> Member:
    """The row that stands for the server as the issuer of its own statements."""
    member, _ = Member.objects.get_or_create(
        slug=settings.SERVER_ISSUER, defaults={"name": "consortium server", "kind": Member.Kind.SERVER})
    return member


def server_statement(payload: dict[str, Any], *, now, **fields: Any) -> Statement:
    """A statement signed with the server's key (kid as in /.well-known/jwks.json), stored published
    (with `fields` besides: what a withdrawal retracts, and its audience)."""
    key = server_signing_key()
    raw = jws.sign(key, public_jwk(key)["kid"], payload)
    return Statement.objects.create(
        member=server_member(), jti=payload["jti"], kind=payload["kind"], raw=raw, size=len(raw),
        digest=hashlib.sha256(raw.encode()).hexdigest(), state=Statement.State.PUBLISHED, received_at=now,
        queued_at=now, verified_at=now, published_at=now, issued_at=now, target=payload.get("target"),
        retract_reason=payload.get("reason", ""), **fields,
    )


def removal_payload(hash_: Hash, reason: str) -> dict[str, Any]:
    """What the server signs to remove a hash. No dispute id: ids are numbered across every
    audience, and signed bytes cannot be renamed per reader (the event carries the dispute)."""
    return {
        "iss": settings.SERVER_ISSUER, "iat": int(time.time()), "jti": str(uuid.uuid4()), "kind": "retract",
        "target": {"type": hash_.signal_type, "value": hash_.value}, "reason": reason,
    }


def dispute_resolve(*, dispute_id: int, outcome: str, resolution: str, labels: Iterable[str] | None = None,
                    actor: Any = None) -> Dispute:
    """Close an open dispute as `upheld` (the hash stays), `relabelled` (its labels replaced for
    everyone) or `removed` (retracted for everyone by a statement the server signs; every other open
    dispute on the hash closes with it). One event on the feed, one audit record per dispute.

    The outcome is the consortium's decision: everyone who sees the hash sees its labels replaced,
    or its retraction, whoever may see the dispute. The dispute, and what opened it, stay within
    the opening feedback's audience, and so does `resolution`, the administrator's words: the
    removal statement (every reader of the hash receives it) carries them only for a dispute shared
    with the whole consortium, and says REVIEWED otherwise; the other disputes a removal closes
    take them only from such a dispute as well."""
    from .publishing import Batch, hash_key

    if outcome not in OUTCOMES:
        raise DomainError("outcome_invalid", f"outcome must be one of {', '.join(OUTCOMES)}.")
    if not isinstance(resolution, str) or not resolution.strip() or len(resolution) > 2000:
        raise DomainError("resolution_required", "Give the reason members will see (at most 2000 characters).")
    chosen: list[str] | None = None
    if outcome == Dispute.State.RELABELLED:
        chosen = sorted(set(labels or ()))
        known = set(Label.objects.filter(slug__in=chosen, is_active=True).values_list("slug", flat=True))
        if not chosen or set(chosen) - known:
            raise DomainError("label_unknown", "relabelled needs one or more active labels.",
                              {"unknown": sorted(set(chosen) - known)})
    with transaction.atomic():
        head = feed_lock(wait=True)
        dispute = Dispute.objects.select_for_update().filter(pk=dispute_id).first()
        if dispute is None:
            raise DomainError("dispute_not_found", "No dispute has this id.")
        if dispute.state != Dispute.State.OPEN:
            raise Conflict("dispute_closed", f"This dispute was resolved already ({dispute.state}).")
        hash_ = Hash.objects.select_for_update().get(pk=dispute.hash_id)
        now = timezone.now()
        closing = [dispute]
        if outcome == Dispute.State.REMOVED:
            closing += list(Dispute.objects.select_for_update().filter(hash=hash_, state=Dispute.State.OPEN)
                            .exclude(pk=dispute.pk))
        words = resolution.strip()
        public = dispute.share_group_id is None  # shared with the whole consortium, or the suppression list's
        for each in closing:
            each.state, each.resolved_at = outcome, now
            each.resolution = words if each is dispute or public else REVIEWED
            each.resolved_by = actor if getattr(actor, "is_authenticated", False) else None
            each.labels = chosen
        audience: dict[str, tuple[int, int | None]] = {}
        live = live_statements([hash_.pk], audience)[hash_.pk]
        after, cause, labels_before = live, None, hash_.labels_override
        if outcome == Dispute.State.RELABELLED:
            hash_.labels_override = chosen
        if outcome == Dispute.State.REMOVED:
            cause = server_statement(removal_payload(hash_, words if public else REVIEWED), now=now)
            for each in closing:
                each.removal = cause
            Corroboration.objects.filter(hash=hash_, retracted_at__isnull=True).update(retracted_at=now)
            hash_.state, after = Hash.State.RETRACTED, []
            # A removal not lifted still holds: a hash back live through an audience it did not cover
            # and removed again holds against both.
            hash_.removal_holds = removal_audiences([*(hash_.removal_holds or ()), *(audience[sid][1] for sid in live)])
        hash_.updated_at = now
        hash_.save(update_fields=["labels_override", "state", "removal_holds", "updated_at"])
        for each in closing:
            each.save(update_fields=["state", "resolved_at", "resolution", "resolved_by", "labels", "removal"])
        batch = Batch(now=now, hashes={hash_key(hash_): hash_}, live={hash_.pk: live})
        batch.governance_of = load_governance([hash_.pk])
        # One event however many disputes close: the disputes it carries show each reader the ones
        # it may see, and one retraction per closed dispute would count, to everyone, disputes that
        # only a sharing group may know of.
        batch.record(hash_, cause, live, after, change="dispute", dispute=dispute, labels_before=labels_before)
        events_append(head, batch.events)
        if outcome == Dispute.State.REMOVED:
            indexes.mark_stale()
        for each in closing:
            audit_record(actor=actor, action="dispute.resolve", obj=each, before={"state": Dispute.State.OPEN},
                         after={"state": outcome, "resolution": each.resolution, "labels": chosen,
                                "removal": str(cause.pk) if cause else None,
                                **({"removal_holds": hash_.removal_holds} if cause else {})})
    return dispute


def removal_audiences(groups: Iterable[int | None]) -> list[int | None] | None:
    """What a removal holds against: the audiences of the statements it ended (None: the whole
    consortium), those that saw the hash go. None when it ended none: nobody saw it live."""
    found = set(groups)
    return sorted(found, key=lambda g: -1 if g is None else g) or None


def removal_lift(*, hash_id: int, reason: str, actor: Any = None) -> Hash:
    """Lift the removal an administrator's `removed` outcome holds on a hash: statements of its value
    are accepted again (one sent while it held stays rejected: send it again, with a new `jti`).
    Nothing members see changes, so no event: the hash stays retracted until a statement asserts it.
    Audited (`hash.removal_lift`), with the administrator's reason."""
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 2000:
        raise DomainError("reason_required", "Say why the removal is lifted (at most 2000 characters).")
    with transaction.atomic():
        hash_ = Hash.objects.select_for_update().filter(pk=hash_id).first()
        if hash_ is None:
            raise DomainError("hash_not_found", "No hash has this id.")
        if hash_.removal_holds is None:
            raise Conflict("removal_not_held", "No removal holds on this hash.")
        before = hash_.removal_holds
        hash_.removal_holds = None
        hash_.save(update_fields=["removal_holds"])
        audit_record(actor=actor, action="hash.removal_lift", obj=hash_, before={"removal_holds": before},
                     after={"removal_holds": None, "reason": reason.strip()})
    return hash_


def disputes_open(*, hashes: Iterable[Hash], reasons: list[str], actor: Any = None) -> list[Dispute]:
    """Open a dispute, seen by everyone who sees the hash, on each live hash that has no open
    dispute of its own audience (the suppression list covering existing hashes)."""
    from .publishing import Batch, hash_key

    opened: list[Dispute] = []
    with transaction.atomic():
        head = feed_lock(wait=True)
        targets = list(Hash.objects.select_for_update().filter(pk__in=[h.pk for h in hashes], state=Hash.State.ACTIVE))
        if not targets:
            return []
        now = timezone.now()
        batch = Batch(now=now, hashes={hash_key(h): h for h in targets},
                      live=live_statements([h.pk for h in targets]))
        batch.governance_of = load_governance([h.pk for h in targets])
        for hash_ in targets:
            governance = batch.governance(hash_.pk)
            if any(d.state == Dispute.State.OPEN and d.share_group_id is None for d in governance.disputes):
                continue
            dispute = Dispute.objects.create(hash=hash_, reasons=list(reasons), opened_at=now)
            governance.disputes = carried_disputes([*governance.disputes, dispute])
            live = batch.live[hash_.pk]
            batch.record(hash_, None, live, live, change="dispute", dispute=dispute)
            opened.append(dispute)
        events_append(head, batch.events)
        for dispute in opened:
            audit_record(actor=actor, action="dispute.open", obj=dispute, after=dispute.snapshot())
    return opened
