"""Feedback statements under the feed lock: a member's verdict on a hash it can see, the dispute a
`disagree` opens, and what each event keeps of a hash's feedback and disputes (DESIGN.md,
"Feedback, disputes and corrections").

Publishing decides here, not at verification, because only under the lock is it settled whether the
target exists, is live and is visible to the member, and what the member said of it before."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from django.db.models import Q

from audit.services import audit_record
from members.models import Member

from ..models import Dispute, Feedback, Hash, Statement
from ..visibility import Viewer

if TYPE_CHECKING:
    from .publishing import Batch


@dataclass(frozen=True)
class LiveFeedback:
    statement_id: str
    member_id: int
    verdict: str
    reasons: tuple[str, ...]
    is_answer: bool


@dataclass
class HashGovernance:
    """A hash's live feedback (by statement id, in the order given) and the disputes events carry."""

    feedback: dict[str, LiveFeedback]
    disputes: list[Dispute]

    def votes(self) -> list[str]:
        return [sid for sid, row in self.feedback.items() if not row.is_answer]

    def snapshots(self) -> list[dict[str, Any]]:
        return [d.snapshot() for d in carried_disputes(self.disputes)]


def carried_disputes(disputes: Iterable[Dispute]) -> list[Dispute]:
    """The disputes a hash view chooses from: every open one and the latest of each audience (its
    sharing group, and within a group its member, so that no reader loses sight of a dispute it may
    see because of one it may not). Bounded by members and groups, not by history."""
    latest: dict[tuple, Dispute] = {}
    for dispute in sorted(disputes, key=lambda d: (d.opened_at, d.pk or 0)):
        audience = (dispute.share_group_id, dispute.member_id if dispute.share_group_id else None)
        if dispute.state == Dispute.State.OPEN:
            latest[(*audience, "open", dispute.pk)] = dispute
        else:
            latest[audience] = dispute
    return sorted(latest.values(), key=lambda d: (d.opened_at, d.pk or 0))


def load_governance(hash_ids: Iterable[int]) -> dict[int, HashGovernance]:
    ids = list(set(hash_ids))
    state = {pk: HashGovernance({}, []) for pk in ids}
    if not ids:
        return state
    for hash_id, statement_id, member_id, verdict, reasons, is_answer in (
        Feedback.objects.filter(hash_id__in=ids, ended_at__isnull=True).order_by("id")
        .values_list("hash_id", "statement_id", "member_id", "verdict", "reasons", "is_answer")
    ):
        state[hash_id].feedback[str(statement_id)] = LiveFeedback(str(statement_id), member_id, verdict,
                                                                 tuple(reasons), is_answer)
    for dispute in Dispute.objects.filter(hash_id__in=ids).order_by("opened_at", "id"):
        state[dispute.hash_id].disputes.append(dispute)
    for governance in state.values():
        governance.disputes = carried_disputes(governance.disputes)
    return state


def sees_dispute(viewer: Viewer, dispute: Dispute) -> bool:
    """Whoever may see the statement that opened a dispute sees it; a dispute the suppression list
    opened (no statement) is seen by everyone who sees the hash."""
    return dispute.opened_by_id is None or viewer.sees(share_group_id=dispute.share_group_id,
                                                       member_id=dispute.member_id)


class FeedbackRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def apply_feedback(batch: Batch, statement: Statement, viewer: Viewer) -> None:
    """Record a verdict on every live hash with the target's value that the member can see.

    Raises FeedbackRejected (nothing recorded) when there is none (`target_not_found`, the same
    whether the value is unknown or only held where the member cannot see it), when the member
    submitted the hash (`feedback_on_own_hash`, unless it agrees with an open dispute: an answer),
    or when the member's live verdict says exactly this already (`feedback_duplicate`)."""
    target = statement.target or {}
    candidates = [
        h for h in batch.hashes.values()
        if h.pk is not None and h.signal_type == target.get("type") and h.value == target.get("value")
        and h.state == Hash.State.ACTIVE
    ]
    hashes = [h for h in candidates if any(batch.sees(viewer, sid) for sid in batch.live.get(h.pk, ()))]
    if not hashes:
        raise FeedbackRejected("target_not_found", "No live hash you can see has this type and value.")
    plans: list[tuple[Hash, str, Dispute | None]] = []
    refusal: FeedbackRejected | None = None
    reasons = tuple(statement.reasons or ())
    for hash_ in sorted(hashes, key=lambda h: h.pk):
        governance = batch.governance(hash_.pk)
        submitter = any(batch.audience[sid][0] == statement.member_id for sid in batch.live[hash_.pk])
        open_disputes = [d for d in governance.disputes if d.state == Dispute.State.OPEN and sees_dispute(viewer, d)]
        if submitter:
            if statement.verdict == Feedback.Verdict.AGREE and open_disputes:
                plans.append((hash_, "answer", open_disputes[0]))
            else:
                refusal = refusal or FeedbackRejected(
                    "feedback_on_own_hash", "A submitter gives no verdict on its own hash; it may retract, or "
                                            "answer an open dispute with agree.")
            continue
        current = [row for row in governance.feedback.values() if row.member_id == statement.member_id
                   and not row.is_answer]
        if current and current[-1].verdict == statement.verdict and current[-1].reasons == reasons:
            refusal = refusal or FeedbackRejected("feedback_duplicate", "Your live verdict on this hash says this already.")
            continue
        plans.append((hash_, "vote", None))
    if not plans:
        raise refusal  # type: ignore[misc]
    sid = str(statement.id)
    for hash_, what, dispute in plans:
        governance = batch.governance(hash_.pk)
        live = batch.live[hash_.pk]
        if what == "vote":
            for row in [r for r in governance.feedback.values() if r.member_id == statement.member_id
                        and not r.is_answer]:
                del governance.feedback[row.statement_id]
                batch.ended_feedback.append((row.statement_id, hash_.pk))
        governance.feedback[sid] = LiveFeedback(sid, statement.member_id, statement.verdict, reasons, what == "answer")
        batch.new_feedback.append({
            "statement": statement.pk, "hash": hash_.pk, "member": statement.member_id, "verdict": statement.verdict,
            "reasons": list(reasons), "is_answer": what == "answer", "created_at": batch.now, "ended_at": None,
        })
        change = "feedback"
        if what == "vote" and statement.verdict == Feedback.Verdict.DISAGREE:
            opened = dispute_open(batch, hash_, statement)
            if opened is not None:
                change, dispute = "dispute", opened
        batch.record(hash_, statement, live, live, change=change, dispute=dispute)


# Outcomes by which an administrator decided a member's dispute and kept the hash.
KEPT = (Dispute.State.UPHELD, Dispute.State.RELABELLED)


def dispute_open(batch: Batch, hash_: Hash, statement: Statement) -> Dispute | None:
    """Open a dispute in the feedback's audience unless one is open there already, or the member
    had a dispute on this hash decided already: an administrator kept the hash (`upheld` or
    `relabelled`) in an audience that sees this feedback's (the same sharing group, or the whole
    consortium). Its `disagree` still counts as its verdict; only another member, or an
    administrator, puts the hash in question again. A decision in a group does not bind the
    member's consortium-wide feedback, which outsiders see as if the group's dispute never was.
    A `removed` outcome binds nothing: a hash back live since was lifted by an administrator, or
    asserted in an audience the removal did not cover."""
    governance = batch.governance(hash_.pk)
    if any(d.state == Dispute.State.OPEN and d.share_group_id == statement.share_group_id
           for d in governance.disputes):
        return None
    if Dispute.objects.filter(
        Q(share_group__isnull=True) | Q(share_group_id=statement.share_group_id),
        hash=hash_, member_id=statement.member_id, state__in=KEPT,
    ).exists():
        return None
    dispute = Dispute.objects.create(
        hash=hash_, opened_by=statement, member_id=statement.member_id, share_group_id=statement.share_group_id,
        reasons=list(statement.reasons or ()), opened_at=batch.now,
    )
    governance.disputes = carried_disputes([*governance.disputes, dispute])
    member = Member.objects.get(pk=statement.member_id)
    audit_record(actor=member, action="dispute.open", obj=dispute, after=dispute.snapshot())
    return dispute


def apply_feedback_retraction(batch: Batch, statement: Statement) -> None:
    """Withdraw a verdict: each hash it was live on gets an event its readers see through the cause."""
    target_id = str(statement.retracts_id)
    for hash_id in batch.feedback_targets.get(statement.retracts_id, ()):
        governance = batch.governance(hash_id)
        if governance.feedback.pop(target_id, None) is None:
            continue
        batch.ended_feedback.append((target_id, hash_id))
        hash_ = batch.by_pk(hash_id)
        live = batch.live[hash_id]
        batch.record(hash_, statement, live, live, change="feedback")
