"""Pipeline step 2: verify. Every check of DESIGN.md "Signed statements", each failure with its own
stable code. Runs in parallel workers; each statement's result is written once."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone as dt_timezone
from typing import Any, Iterable

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.db.models import F
from django.utils import timezone

import orjson
from billiard.exceptions import SoftTimeLimitExceeded
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consortium.db import AnyOf, insert_rows, update_rows
from consortium_client import jws
from consortium_client.keys import load_public_jwk
from members.models import CONSORTIUM_SHARE, Member, SigningKey
from members.selectors import sharing_groups_of
from suppression.entries import BenignList
from suppression.selectors import benign_list

from ..models import Feedback, Incident, Label, Statement
from . import publishing
from ..signals.parse import Signal, SignalError, parse_signals, parse_target

logger = logging.getLogger(__name__)

CONTENT_TYPES = ("photo", "video", "file")
MAX_REASON_CHARS = 2000


class Rejection(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class Context:
    """Everything the checks look up, loaded once per batch instead of once per statement."""

    keys: dict[str, SigningKey]
    labels: dict[str, Label]
    incidents: dict[str, Incident]
    groups_by_member: dict[int, dict[str, int]]
    own_statements: dict[tuple[int, str], Statement]
    members: dict[int, Member] = field(default_factory=dict)
    now: datetime = field(default_factory=lambda: timezone.now())  # looked up per call: tests move the clock
    benign: BenignList = field(default_factory=BenignList.empty)
    public_keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)

    def public_key(self, key: SigningKey) -> Ed25519PublicKey:
        """The key's public half, validated once a batch rather than once a statement."""
        if key.kid not in self.public_keys:
            self.public_keys[key.kid] = load_public_jwk(key.jwk())
        return self.public_keys[key.kid]


def load_context(statements: list[Statement], parsed: dict[Any, jws.ParsedJWS]) -> Context:
    kids = {p.kid for p in parsed.values()}
    payloads = {statement_id: p.payload for statement_id, p in parsed.items()}
    member_ids = {s.member_id for s in statements}
    incident_slugs = {p.get("incident") for p in payloads.values() if isinstance(p.get("incident"), str)}
    retract_keys = {(s.member_id, payloads[s.id].get("retracts")) for s in statements
                    if isinstance(payloads[s.id].get("retracts"), str)}
    groups = sharing_groups_of(member_ids)
    own: dict[tuple[int, str], Statement] = {}
    if retract_keys:
        for target in Statement.objects.filter(
            member_id__in=member_ids, jti__in={jti for _, jti in retract_keys}
        ).only("id", "member_id", "jti", "kind", "state", "retracted_at", "share_group_id"):
            own[(target.member_id, target.jti)] = target
    return Context(
        keys={k.kid: k for k in SigningKey.objects.filter(kid__in=kids)},
        labels={label.slug: label for label in Label.objects.filter(is_active=True)},
        incidents={i.slug: i for i in Incident.objects.filter(slug__in=incident_slugs)},
        groups_by_member=groups,
        own_statements=own,
        # A batch holds a few members' statements: read once each, not joined to every row.
        members=Member.objects.in_bulk(member_ids) if member_ids else {},
        benign=benign_list(),
    )


@dataclass
class Verified:
    key: SigningKey
    issued_at: datetime
    fields: dict[str, Any]
    labels: list[Label] = field(default_factory=list)


def check_key(statement: Statement, parsed: jws.ParsedJWS, ctx: Context) -> SigningKey:
    key = ctx.keys.get(parsed.kid)
    if key is None:
        raise Rejection("key_unknown", "No key has this kid.")
    if key.member_id != statement.member_id:
        raise Rejection("key_wrong_member", "This key belongs to another member.")
    if key.state == SigningKey.State.PENDING:
        raise Rejection("key_pending", "This key has not been approved by an administrator yet.")
    if key.state == SigningKey.State.REVOKED:
        raise Rejection("key_revoked", "This key has been revoked.")
    # A retired key signs nothing new, but what it signed before retirement stays valid.
    if key.state == SigningKey.State.RETIRED and statement.received_at >= key.state_changed_at:
        raise Rejection("key_retired", "This key was retired before the statement was received.")
    if not jws.verify_signature(parsed, ctx.public_key(key)):
        raise Rejection("signature_invalid", "The signature does not verify with this key.")
    return key


def check_iat(payload: dict[str, Any], ctx: Context) -> datetime:
    iat = payload.get("iat")
    if not isinstance(iat, int) or isinstance(iat, bool) or iat < 0:
        raise Rejection("iat_invalid", "iat must be a whole number of Unix seconds.")
    try:
        issued = datetime.fromtimestamp(iat, tz=dt_timezone.utc)
    except (OverflowError, ValueError, OSError):
        raise Rejection("iat_invalid", "iat is out of range.") from None
    if issued > ctx.now + timedelta(seconds=settings.IAT_MAX_FUTURE_SECONDS):
        raise Rejection("iat_in_future", f"iat is more than {settings.IAT_MAX_FUTURE_SECONDS} seconds in the future.")
    return issued


def check_hash_payload(statement: Statement, payload: dict[str, Any], ctx: Context) -> Verified | dict[str, Any]:
    try:
        signals = parse_signals(
            payload.get("signals"), min_quality=settings.PDQ_MIN_QUALITY,
            max_signals=settings.STATEMENT_MAX_SIGNALS, max_frames=settings.VPDQ_MAX_FRAMES,
        )
    except SignalError as exc:
        raise Rejection(exc.code, exc.message) from None
    content_type = payload.get("content_type")
    if content_type not in CONTENT_TYPES:
        raise Rejection("content_type_invalid", f"content_type must be one of {', '.join(CONTENT_TYPES)}.")
    labels = check_labels(payload, ctx)
    incident = None
    if payload.get("incident") is not None:
        incident = ctx.incidents.get(payload["incident"]) if isinstance(payload["incident"], str) else None
        if incident is None:
            raise Rejection("incident_unknown", "No incident has this slug.")
        # Judged at receipt, like keys: closing an incident does not reject what arrived while it was open.
        if incident.state != Incident.State.ACTIVE and (
            incident.closed_at is None or incident.closed_at <= statement.received_at
        ):
            raise Rejection("incident_closed", "This incident is closed.")
    share_group_id = check_share(statement, payload, ctx)
    note = check_note(payload)
    check_benign(signals, ctx)
    return {
        "fields": {
            "content_type": content_type, "signals": [s.as_json() for s in signals], "note": note,
            "incident": incident, "share_group_id": share_group_id,
            # Published (and pushed) first: decided here, with the signature and incident checked,
            # never from the envelope on receipt.
            "priority": incident is not None,
        },
        "labels": labels,
    }


def check_benign(signals: list[Signal], ctx: Context) -> None:
    """The suppression list (DESIGN.md): a statement with a listed value, or a PDQ within
    BENIGN_DISTANCE of a listed one, is refused whole."""
    listed = ctx.benign.first_covered([(signal.type, signal.value) for signal in signals])
    if listed is not None:
        raise Rejection("benign_match", f"signals[{listed}] is on the suppression list of known-benign content.")


def check_labels(payload: dict[str, Any], ctx: Context) -> list[Label]:
    slugs = payload.get("labels", [])
    if not isinstance(slugs, list) or not all(isinstance(s, str) for s in slugs):
        raise Rejection("labels_invalid", "labels must be a list of label slugs.")
    unknown = sorted(set(slugs) - ctx.labels.keys())
    if unknown:
        raise Rejection("label_unknown", f"Unknown label(s): {', '.join(unknown)[:200]}.")
    return [ctx.labels[s] for s in sorted(set(slugs))]


def check_share(statement: Statement, payload: dict[str, Any], ctx: Context) -> int | None:
    share = payload.get("share", CONSORTIUM_SHARE)
    if share == CONSORTIUM_SHARE:
        return None
    share_group_id = ctx.groups_by_member[statement.member_id].get(share) if isinstance(share, str) else None
    if share_group_id is None:
        raise Rejection("share_not_allowed", "share must be 'consortium' or a sharing group this member belongs to.")
    return share_group_id


def check_note(payload: dict[str, Any]) -> str:
    note = payload.get("note", "")
    if not isinstance(note, str) or len(note) > settings.STATEMENT_NOTE_MAX_CHARS:
        raise Rejection("note_invalid", f"note must be text of at most {settings.STATEMENT_NOTE_MAX_CHARS} characters.")
    return note


def check_feedback_payload(statement: Statement, payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Everything but the target's existence and visibility, which publishing decides under the feed
    lock (a hash may be published or retracted meanwhile)."""
    try:
        target_type, target_value = parse_target(payload.get("target"))
    except SignalError as exc:
        raise Rejection(exc.code, exc.message) from None
    verdict = payload.get("verdict")
    if verdict not in Feedback.Verdict.values:
        raise Rejection("verdict_invalid", f"verdict must be one of {', '.join(Feedback.Verdict.values)}.")
    reasons = payload.get("reasons", [])
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise Rejection("reasons_invalid", "reasons must be a list of reason codes.")
    if verdict == Feedback.Verdict.DISAGREE:
        if not reasons:
            raise Rejection("reasons_required", "A disagree verdict gives one or more reasons.")
        unknown = sorted(set(reasons) - set(settings.FEEDBACK_REASONS))
        if unknown:
            raise Rejection("reason_unknown", f"Unknown reason(s): {', '.join(unknown)[:200]}; known: "
                                              f"{', '.join(settings.FEEDBACK_REASONS)}.")
    elif reasons:
        raise Rejection("reasons_invalid", "Only a disagree verdict gives reasons.")
    labels = check_labels(payload, ctx)
    share_group_id = check_share(statement, payload, ctx)
    note = check_note(payload)
    return {
        "fields": {
            "target": {"type": target_type, "value": target_value}, "verdict": verdict,
            "reasons": sorted(set(reasons)), "note": note, "share_group_id": share_group_id, "priority": False,
        },
        "labels": labels,
    }


def check_retract_payload(statement: Statement, payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    target_jti, reason = payload.get("retracts"), payload.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON_CHARS:
        raise Rejection("reason_invalid", f"reason must be non-empty text of at most {MAX_REASON_CHARS} characters.")
    target = ctx.own_statements.get((statement.member_id, target_jti)) if isinstance(target_jti, str) else None
    # Only the member's own statements are found: another member's jti is simply not there.
    if target is None:
        raise Rejection("retract_target_not_found", "retracts must be the jti of an earlier statement of this member.")
    if target.kind == Statement.Kind.RETRACT or target.state == Statement.State.REJECTED:
        raise Rejection("retract_target_invalid", "Only an accepted hash or feedback statement can be retracted.")
    if target.retracted_at is not None:
        raise Rejection("already_retracted", "That statement has been retracted already.")
    # Its share is set when it is published, from its target's (which may not be verified yet).
    return {"fields": {"retracts": target, "retract_reason": reason, "priority": False}, "labels": []}


def verify_one(statement: Statement, parsed: jws.ParsedJWS, ctx: Context) -> Verified:
    key = check_key(statement, parsed, ctx)
    payload = parsed.payload
    member = ctx.members[statement.member_id]
    if payload.get("iss") != member.slug:
        raise Rejection("iss_mismatch", "iss is not the submitting member.")
    if not member.is_active:
        raise Rejection("member_suspended", "The member was suspended before this statement was verified.")
    issued_at = check_iat(payload, ctx)
    if statement.kind == Statement.Kind.HASH:
        checked = check_hash_payload(statement, payload, ctx)
    elif statement.kind == Statement.Kind.FEEDBACK:
        checked = check_feedback_payload(statement, payload, ctx)
    else:
        checked = check_retract_payload(statement, payload, ctx)
    return Verified(key=key, issued_at=issued_at, fields=checked["fields"], labels=checked["labels"])


UNAVAILABLE = (OperationalError, InterfaceError)


def statements_verify(*, ids: Iterable[str], publish: bool = False) -> int:
    """Verify the received statements among `ids`; returns how many it settled (verified or
    rejected). With `publish`, hash statements verified here are published in the same transaction
    when the feed lock is free (see publishing.publish_just_verified); the caller still publishes
    afterwards whatever is left, as after any verification.

    If writing a batch's results fails, the statements are verified one by one, so one statement
    the database cannot take never holds up the others; a statement that fails even alone is
    rejected as `statement_unprocessable` instead of being retried for ever. A database that is
    unavailable (OperationalError: restarting, connection lost; InterfaceError: connection closed)
    is no statement's fault: that error goes up, the statements stay `received`, and the sweep
    queues them again."""
    ids = list(ids)
    try:
        return verify_batch(ids, publish=publish)
    except UNAVAILABLE:
        raise
    except DatabaseError:
        logger.exception("Verification of a batch of %d failed; verifying one at a time.", len(ids))
    settled = 0
    for statement_id in ids:
        try:
            settled += verify_batch([statement_id])
        except UNAVAILABLE:
            raise
        except DatabaseError:
            logger.exception("Statement %s cannot be stored as verified; rejecting it.", statement_id)
            settled += Statement.objects.filter(id=statement_id, state=Statement.State.RECEIVED).update(
                state=Statement.State.REJECTED, rejection_code="statement_unprocessable",
                rejection_message="The statement could not be processed.", verified_at=timezone.now(),
            )
    return settled


REJECTED_COLUMNS = ("state", "rejection_code", "rejection_message", "verified_at", "priority")
# A statement that no active key of its member signed (check_key's codes) says nothing on anyone's
# behalf: a stolen token alone, or any junk, makes one. Its JWS is kept only as far as an auditor
# needs to see who sent what (the header with its kid, the start of the payload with iss, jti and
# kind): the first REJECTED_RAW_KEPT characters. Its member, jti, kind, digest (SHA-256 of the whole
# JWS as received), size, code, message and times stay. Other rejections are of statements an active
# key of the member signed, evidence of what that member said: kept whole (the byte quota bounds them).
UNSIGNED_CODES = frozenset({"key_unknown", "key_wrong_member", "key_pending", "key_revoked", "key_retired",
                            "signature_invalid"})
REJECTED_RAW_KEPT = 1024
REJECTED_CUT_COLUMNS = REJECTED_COLUMNS + ("raw",)
VERIFIED_COLUMNS = ("state", "verified_at", "key", "issued_at")
# The foreign keys verification fills, by the column each is written to.
RELATED_COLUMNS = {"incident": "incident_id", "retracts": "retracts_id"}
# What verification reads of a statement; every column it writes is set before it is written.
READ_COLUMNS = ("id", "member_id", "kind", "raw", "received_at", "state")


def reparse(raw: str) -> jws.ParsedJWS:
    """A stored statement's JWS, decoded again. Its envelope passed jws.parse's strict checks on
    receipt and its bytes never change, so only the parts are decoded here; anything unexpected
    (an integer past 64 bits, which orjson refuses) goes through jws.parse as on receipt."""
    try:
        header, payload, signature = raw.split(".")
        padding = "=" * (-len(payload) % 4)
        payload_bytes = base64.urlsafe_b64decode(payload + padding)
        return jws.ParsedJWS(
            header=orjson.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))),
            payload=orjson.loads(payload_bytes), payload_bytes=payload_bytes,
            signing_input=f"{header}.{payload}".encode("ascii"),
            signature=base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)),
        )
    except (ValueError, orjson.JSONDecodeError):
        return jws.parse(raw)


class PublishingFailed(Exception):
    """Publishing a batch at once, in its verification's transaction, failed (the cause is chained)."""


def verify_batch(ids: list[str], *, publish: bool = False) -> int:
    """Rows are claimed with SKIP LOCKED, so two workers given the same ids (a redelivered message,
    the sweep) never both write a result; a statement already past `received` is left alone.

    With `publish`, a failure of the publishing part never costs the verification: the batch is
    verified again without it (its rows are `received` again, the transaction having rolled back),
    and publishing meets the failure again later on its own, as it would have without this."""
    if publish:
        try:
            return _verify_batch(ids, publish=True)
        except PublishingFailed:
            logger.exception("Publishing %d statements as they were verified failed; verifying them alone.", len(ids))
    return _verify_batch(ids, publish=False)


def _verify_batch(ids: list[str], *, publish: bool) -> int:
    with transaction.atomic():
        statements = list(
            Statement.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(AnyOf(F("id"), list(ids)), state=Statement.State.RECEIVED)
            .only(*READ_COLUMNS)
        )
        if not statements:
            return 0
        parsed = {s.id: reparse(s.raw) for s in statements}
        ctx = load_context(statements, parsed)
        label_links = []
        now = timezone.now()
        # Rows are written in groups of the same columns: each kind fills its own, and a rejection
        # only its code, so no row rewrites columns that stay empty.
        written: dict[tuple[str, ...], list[Statement]] = {}
        for statement in statements:
            try:
                verified = verify_one(statement, parsed[statement.id], ctx)
            except Rejection as exc:
                statement.state = Statement.State.REJECTED
                statement.rejection_code, statement.rejection_message = exc.code, exc.message[:500]
                statement.verified_at, statement.priority = now, False
                columns = REJECTED_COLUMNS
                if exc.code in UNSIGNED_CODES and len(statement.raw) > REJECTED_RAW_KEPT:
                    statement.raw, columns = statement.raw[:REJECTED_RAW_KEPT], REJECTED_CUT_COLUMNS
                written.setdefault(columns, []).append(statement)
                continue
            statement.state, statement.verified_at = Statement.State.VERIFIED, now
            # Foreign keys by their columns: nothing reads the related objects afterwards, and setting
            # one through its descriptor (checked and cached) cost a tenth of a batch.
            statement.key_id, statement.issued_at = verified.key.pk, verified.issued_at
            for name, value in verified.fields.items():
                if name in RELATED_COLUMNS:
                    setattr(statement, RELATED_COLUMNS[name], None if value is None else value.pk)
                else:
                    setattr(statement, name, value)
            columns = VERIFIED_COLUMNS + tuple(name.removesuffix("_id") for name in verified.fields)
            written.setdefault(columns, []).append(statement)
            label_links += [{"statement": statement.id, "label": label.id} for label in verified.labels]
        insert_rows(Statement.labels.through, label_links, ignore_conflicts=True)
        if publish:
            written = publish_at_once(written)
        for columns, rows in written.items():
            update_rows(Statement, rows, columns)
    return len(statements)


PUBLISHED_COLUMNS = ("published_at",)
REJECTED_AT_PUBLISHING_COLUMNS = ("rejection_code", "rejection_message")


def publish_at_once(written: dict[tuple[str, ...], list[Statement]]) -> dict[tuple[str, ...], list[Statement]]:
    """Publish the verified hash statements of `written` (their rows not written yet) if the feed
    lock is free; returns what to write of each row then: its verification's columns, and
    `published_at` or the rejection publishing gave it (the state is among the columns already).
    Anything publishing raises but a time limit or a lost database comes up as PublishingFailed."""
    fresh = [s for rows in written.values() for s in rows
             if s.state == Statement.State.VERIFIED and s.kind == Statement.Kind.HASH]
    try:
        batch = publishing.publish_just_verified(fresh, limit=settings.PUBLISH_BATCH_SIZE)
    except (*UNAVAILABLE, SoftTimeLimitExceeded):
        raise
    except Exception as exc:
        raise PublishingFailed() from exc
    if batch is None:
        return written
    regrouped: dict[tuple[str, ...], list[Statement]] = {}
    for columns, rows in written.items():
        for statement in rows:
            if statement.state == Statement.State.PUBLISHED:
                columns_now = columns + PUBLISHED_COLUMNS
            elif statement.state == Statement.State.REJECTED and "rejection_code" not in columns:
                columns_now = columns + REJECTED_AT_PUBLISHING_COLUMNS
            else:
                columns_now = columns
            regrouped.setdefault(columns_now, []).append(statement)
    return regrouped
