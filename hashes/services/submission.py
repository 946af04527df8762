"""Pipeline step 1: receive. Check each statement's envelope, store it durably, answer at once."""

from __future__ import annotations

import hashlib
import logging
import math
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from consortium.api.errors import TooManyRequests
from consortium.db import insert_rows
from consortium.ratelimit import window_hit
from consortium_client import jws
from members.models import Member

from ..models import Incident, Statement

logger = logging.getLogger(__name__)

MAX_JTI_LENGTH = 200
QUOTA_WINDOW = timedelta(hours=24)


@dataclass
class SubmitResult:
    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    # What the caller queues for verification once the transaction has committed: the statements
    # this call stored, and those of them that go on the `priority` queue.
    to_verify: list[uuid.UUID] = field(default_factory=list)
    fast: set[uuid.UUID] = field(default_factory=set)


@dataclass(frozen=True)
class Envelope:
    index: int
    raw: str
    digest: str
    jti: str
    kind: str
    incident: str | None


# Every field a statement of each kind may carry (DESIGN.md, Signed statements). Anything else is
# refused: unknown fields would be stored, signed and repeated to every member for nothing.
PAYLOAD_FIELDS = {
    "hash": frozenset({"iss", "iat", "jti", "kind", "signals", "content_type", "labels", "incident", "share", "note"}),
    "retract": frozenset({"iss", "iat", "jti", "kind", "retracts", "reason"}),
    "feedback": frozenset({"iss", "iat", "jti", "kind", "target", "verdict", "reasons", "labels", "note", "share"}),
}


class EnvelopeError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def check_envelope(index: int, raw: Any, member: Member) -> Envelope:
    """What can be checked without keys or other statements. The rest is verification's job, so
    that a rejected statement is still on record with its code."""
    if not isinstance(raw, str):
        raise EnvelopeError("statement_not_string", "Each statement is a JWS compact serialization string.")
    if len(raw) > settings.STATEMENT_MAX_BYTES:
        raise EnvelopeError("statement_too_large", f"A statement may be at most {settings.STATEMENT_MAX_BYTES} bytes.")
    try:
        parsed = jws.parse(raw)
    except jws.JWSError as exc:
        raise EnvelopeError(exc.code, exc.message) from None
    payload = parsed.payload
    if payload.get("iss") != member.slug:
        raise EnvelopeError("iss_mismatch", "iss must be the slug of the member the token belongs to.")
    jti = payload.get("jti")
    if not jws.is_visible_ascii_id(jti, MAX_JTI_LENGTH):
        raise EnvelopeError("jti_invalid", f"jti must be a string of 1 to {MAX_JTI_LENGTH} visible ASCII "
                                           "characters (no spaces or control characters).")
    kind = payload.get("kind")
    # Statement.Kind's values, without the list Django builds again at every use.
    if not isinstance(kind, str) or kind not in PAYLOAD_FIELDS:
        raise EnvelopeError("kind_invalid", "kind must be 'hash', 'retract' or 'feedback'.")
    unknown = sorted(set(payload) - PAYLOAD_FIELDS[kind])
    if unknown:
        raise EnvelopeError("payload_field_unknown", f"A {kind} statement has no field {unknown[0][:64]!r}.")
    incident = payload.get("incident")
    return Envelope(
        index=index, raw=raw, digest=hashlib.sha256(raw.encode("utf-8")).hexdigest(), jti=jti, kind=kind,
        incident=incident if isinstance(incident, str) else None,
    )


def rejection(index: int, code: str, message: str) -> dict[str, Any]:
    return {"index": index, "error": {"code": code, "message": message}}


def statements_submit(*, member: Member, statements: list[Any]) -> SubmitResult:
    """Store every statement whose envelope is sound; the result says what to queue for verification.

    A jti the member used before answers with the existing submission when the bytes are the same
    (a client retrying) and is rejected when they differ (a replay with other content)."""
    result = SubmitResult()
    envelopes: list[Envelope] = []
    for index, raw in enumerate(statements):
        try:
            envelopes.append(check_envelope(index, raw, member))
        except EnvelopeError as exc:
            result.rejected.append(rejection(index, exc.code, exc.message))

    active_incidents = set(
        Incident.objects.filter(slug__in={e.incident for e in envelopes if e.incident}, state=Incident.State.ACTIVE)
        .values_list("slug", flat=True)
    ) if any(e.incident for e in envelopes) else set()
    with transaction.atomic():
        new_rows: dict[str, dict[str, Any]] = {}
        defaults = {field.name: field.get_default() for field in Statement._meta.concrete_fields}
        for envelope in envelopes:
            if envelope.jti not in new_rows:
                # Never `priority` here: the envelope is unverified. Verification sets it once the
                # signature and the incident check out, and publishing goes by it. Received one after
                # the other: publishing keeps a request's order.
                received_at = timezone.now()
                new_rows[envelope.jti] = {
                    **defaults, "id": uuid.uuid4(), "member": member.pk, "jti": envelope.jti, "kind": envelope.kind,
                    "raw": envelope.raw, "digest": envelope.digest, "received_at": received_at,
                    "queued_at": received_at,
                }
        check_daily_quota(member, jtis=list(new_rows))
        # Concurrent submissions of one jti race here; the unique constraint settles it, and the
        # read below tells each caller which row won.
        # Inserted in jti order, so that two requests carrying the same jtis lock them in one order
        # and cannot deadlock.
        inserted = insert_rows(Statement, [new_rows[jti] for jti in sorted(new_rows)], ignore_conflicts=True,
                               returning=["jti"])
        created_jtis = {jti for (jti,) in inserted}
        stored = {jti: (row["id"], row["digest"], Statement.State.RECEIVED.value)
                  for jti, row in new_rows.items() if jti in created_jtis}
        if len(stored) < len(new_rows):  # resubmissions and conflicts: what is on record for them
            stored.update({
                jti: (statement_id, digest, state)
                for statement_id, jti, digest, state in Statement.objects.filter(
                    member=member, jti__in=[j for j in new_rows if j not in created_jtis])
                .values_list("id", "jti", "digest", "state")
            })
        for envelope in envelopes:
            statement_id, digest, state = stored[envelope.jti]
            if digest != envelope.digest:
                result.rejected.append(rejection(
                    envelope.index, "jti_conflict", "This jti was used before for a different statement."))
            else:
                result.accepted.append({"index": envelope.index, "id": str(statement_id), "jti": envelope.jti, "state": state})
        created = [row["id"] for jti, row in new_rows.items() if jti in created_jtis]
        if created:
            audit_record(
                actor=member, action="statements.submit", object_type="hashes.statement",
                object_id=str(created[0]), after={"count": len(created), "ids": [str(s) for s in created]},
            )
            incident_jtis = dict.fromkeys(
                e.jti for e in envelopes if e.incident in active_incidents and e.jti in created_jtis
            )
            result.to_verify = created
            result.fast = incident_fast_lane(member, [new_rows[jti]["id"] for jti in incident_jtis])  # in the request's order
    result.accepted.sort(key=lambda a: a["index"])
    result.rejected.sort(key=lambda r: r["index"])
    return result


def incident_fast_lane(member: Member, candidates: list[uuid.UUID]) -> set[uuid.UUID]:
    """The ids among `candidates` (new statements whose envelope names an active incident) that are
    verified on the `priority` queue, ahead of any backlog: at most INCIDENT_FAST_LANE_PER_MINUTE a
    member. The envelope is unverified, so this is all it buys; a member sending unsigned junk that
    names an incident takes at most that many places a minute, then queues like everyone else."""
    limit = settings.INCIDENT_FAST_LANE_PER_MINUTE
    if not candidates or limit <= 0:
        return set()
    count, _ = window_hit(f"incident-lane:{member.pk}", period=60, amount=len(candidates))
    room = max(0, limit - (count - len(candidates)))
    return set(candidates[:room])


def check_daily_quota(member: Member, *, jtis: list[str]) -> None:
    """Refuse the whole request (429 quota_exceeded, nothing stored) if its new statements would take
    the member past MEMBER_DAILY_STATEMENT_QUOTA statements received in the last 24 hours. A jti
    already stored (a resubmission, or a conflict rejected below) is not new. Runs in the
    submission's transaction with the member's row locked, so concurrent requests of one member
    are counted one after the other; other members never wait on it."""
    quota = settings.MEMBER_DAILY_STATEMENT_QUOTA
    if quota <= 0 or not jtis:
        return
    list(Member.objects.select_for_update().filter(pk=member.pk).values_list("pk"))
    new = len(jtis) - Statement.objects.filter(member=member, jti__in=jtis).count()
    now = timezone.now()
    recent = Statement.objects.filter(member=member, received_at__gt=now - QUOTA_WINDOW)
    used = recent.count()  # the (member, -received_at) index
    if new <= 0 or used + new <= quota:
        return
    # The window frees a statement 24 hours after it was received: wait until as many as must go
    # have (all of them, for a request larger than the whole quota, which must be split anyway).
    must_free = min(used + new - quota, used)
    frees_at = now
    if must_free:
        frees_at = recent.order_by("received_at").values_list("received_at", flat=True)[must_free - 1]
    retry_after = max(1, math.ceil((frees_at + QUOTA_WINDOW - now).total_seconds()))
    too_large = f" A request may bring at most {quota} new statements." if new > quota else ""
    raise TooManyRequests(
        "quota_exceeded",
        f"This request's {new} new statements would pass the member's quota of {quota} statements "
        f"in 24 hours ({used} used).{too_large}",
        retry_after,
        {"quota": quota, "used": used, "requested": new, "window_seconds": int(QUOTA_WINDOW.total_seconds())},
    )
