"""Pipeline step 1: receive. Check each statement's envelope, store it durably, answer at once."""

from __future__ import annotations

import hashlib
import logging
import math
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NoReturn

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Sum, Window
from django.db.models.expressions import RowRange
from django.utils import timezone

from audit.services import audit_record
from consortium.api.errors import TooManyRequests
from consortium.db import insert_rows
from consortium.ratelimit import window_hit
from consortium_client import jws
from members.models import Member, SigningKey

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
    kid: str


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
        incident=incident if isinstance(incident, str) else None, kid=parsed.kid,
    )


def rejection(index: int, code: str, message: str) -> dict[str, Any]:
    return {"index": index, "error": {"code": code, "message": message}}


# Kids found to name a key. Keys are not deleted (a statement's key protects it), so a kid found once
# is taken as known for the life of the process, and a request whose kids are all known reads nothing;
# one not found is looked up again at each request (a key registered meanwhile is found). Were a key
# deleted after all, its kid's statements would be stored and rejected `key_unknown` by verification,
# as they all were before this check. Bounded: emptied when full (only kids of real keys enter it).
_known_kids: set[str] = set()
KNOWN_KIDS_MAX = 10_000


def refuse_unknown_kids(envelopes: list[Envelope], result: SubmitResult) -> list[Envelope]:
    """The envelopes whose kid names a key; the others are refused `key_unknown` here, as verification
    would refuse them, but before they are stored: bytes that no key can ever verify are neither
    stored nor verified nor counted. At most one read of the keys table (its unique kid index) per
    request, none once the kids are known. Whose key it is, and whether it may sign, stays
    verification's to say (key_wrong_member, key_pending, ...), as does the signature."""
    kids = {envelope.kid for envelope in envelopes} - _known_kids
    if not kids:
        return envelopes
    found = set(SigningKey.objects.filter(kid__in=kids).values_list("kid", flat=True))
    if len(_known_kids) + len(found) > KNOWN_KIDS_MAX:
        _known_kids.clear()
    _known_kids.update(found)
    unknown = kids - found
    if not unknown:
        return envelopes
    for envelope in envelopes:
        if envelope.kid in unknown:
            result.rejected.append(rejection(envelope.index, "key_unknown", "No key has this kid."))
    return [envelope for envelope in envelopes if envelope.kid not in unknown]


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
    envelopes = refuse_unknown_kids(envelopes, result)

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
                    "queued_at": received_at, "size": len(envelope.raw),
                }
        check_daily_quota(member, rows=new_rows)
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


def check_daily_quota(member: Member, *, rows: dict[str, dict[str, Any]]) -> None:
    """Refuse the whole request (429 quota_exceeded, nothing stored) if its new statements would take
    the member past MEMBER_DAILY_STATEMENT_QUOTA statements, or past MEMBER_DAILY_BYTE_QUOTA bytes of
    statements (their JWS as sent), received in the last 24 hours. A jti already stored (a
    resubmission, or a conflict rejected below) is not new. `rows` are the statements to store, by
    jti. Runs in the submission's transaction with the member's row locked, so concurrent requests of
    one member are counted one after the other; other members never wait on it. Both quotas are read
    from the index statement_member_recent_size alone."""
    quota, byte_quota = settings.MEMBER_DAILY_STATEMENT_QUOTA, settings.MEMBER_DAILY_BYTE_QUOTA
    if (quota <= 0 and byte_quota <= 0) or not rows:
        return
    list(Member.objects.select_for_update().filter(pk=member.pk).values_list("pk"))
    known = set(Statement.objects.filter(member=member, jti__in=list(rows)).values_list("jti", flat=True))
    new = len(rows) - len(known)
    if new <= 0:
        return
    now = timezone.now()
    recent = Statement.objects.filter(member=member, received_at__gt=now - QUOTA_WINDOW)
    if byte_quota > 0:  # COUNT(*), not of a column: the index holds what both need
        usage = recent.aggregate(count=Count("*"), size=Sum("size"))
        used, used_bytes = usage["count"], usage["size"] or 0
    else:
        used, used_bytes = recent.count(), 0
    if quota > 0:
        check_statement_quota(quota, used, new, recent, now)
    if byte_quota > 0:
        requested = sum(row["size"] for jti, row in rows.items() if jti not in known)
        check_byte_quota(byte_quota, used_bytes, requested, recent, now)


def check_statement_quota(quota: int, used: int, new: int, recent, now) -> None:
    if new <= 0 or used + new <= quota:
        return
    # The window frees a statement 24 hours after it was received: wait until as many as must go
    # have (all of them, for a request larger than the whole quota, which must be split anyway).
    must_free = min(used + new - quota, used)
    frees_at = now
    if must_free:
        frees_at = recent.order_by("received_at").values_list("received_at", flat=True)[must_free - 1]
    refuse_over_quota("statements", quota, used, new, frees_at, now)


def check_byte_quota(quota: int, used: int, requested: int, recent, now) -> None:
    if used + requested <= quota:
        return
    # As above, by bytes: wait until the oldest statements whose sizes add up to what must go have
    # left the window (a running sum, computed only for a refusal).
    must_free = min(used + requested - quota, used)
    frees_at = now
    if must_free > 0:
        freed = Window(Sum("size"), order_by=F("received_at").asc(), frame=RowRange(start=None, end=0))
        frees_at = (recent.annotate(freed=freed).filter(freed__gte=must_free).order_by("received_at")
                    .values_list("received_at", flat=True).first()) or now
    refuse_over_quota("bytes", quota, used, requested, frees_at, now)


def refuse_over_quota(unit: str, quota: int, used: int, requested: int, frees_at, now) -> NoReturn:
    """429 quota_exceeded, with Retry-After the time the window has freed enough at `frees_at`."""
    what = "new statements" if unit == "statements" else "bytes of new statements"
    too_large = f" A request may bring at most {quota} {what}." if requested > quota else ""
    raise TooManyRequests(
        "quota_exceeded",
        f"This request's {requested} {what} would pass the member's quota of {quota} {unit} "
        f"in 24 hours ({used} used).{too_large}",
        max(1, math.ceil((frees_at + QUOTA_WINDOW - now).total_seconds())),
        {"quota": quota, "used": used, "requested": requested, "unit": unit,
         "window_seconds": int(QUOTA_WINDOW.total_seconds())},
    )
