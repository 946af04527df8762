"""Pipeline step 3: dedupe and publish. Runs under the feed lock, so exactly one publisher works at
a time and every dedupe decision sees every hash published before it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet

from django.utils import timezone

from consortium.db import AnyOf, insert_rows, update_rows

from .. import lives
from ..models import Corroboration, Dispute, Event, Feedback, Hash, Statement, of_values, removal_covers
from ..signals.parse import vpdq_digest
from ..matching import indexes
from ..visibility import Viewer, viewers_for_ids
from .families import FamilyPlanner, HashKey, SignalKey, audiences, live_statements
from .feed import events_append, events_number, feed_lock, feed_lock_within
from suppression.entries import BenignList
from members.models import SigningKey
from suppression.selectors import benign_list

from .feedback import FeedbackRejected, HashGovernance, apply_feedback, apply_feedback_retraction, load_governance


def signal_key(signal: dict[str, Any]) -> SignalKey:
    if signal["type"] == "vpdq":
        return "vpdq", vpdq_digest([frame["pdq"] for frame in signal["frames"]])
    return signal["type"], signal["value"]


_UNCHANGED = object()


@dataclass
class Batch:
    """The hashes a batch touches, their live corroborating statements, and what it will write."""

    now: Any
    hashes: dict[HashKey, Hash] = field(default_factory=dict)
    live: dict[int, list[str]] = field(default_factory=dict)
    corroborations: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    changed_hashes: dict[int, Hash] = field(default_factory=dict)
    created_states: dict[int, str] = field(default_factory=dict)  # hashes this batch inserted: their state then
    published: list[Statement] = field(default_factory=list)
    rejected: list[Statement] = field(default_factory=list)
    # One live assertion per member, hash and audience: the corroborations this batch inserts, by
    # (hash, statement id), and the stored ones it ends, {(statement id, hash): the statement replacing it}.
    inserted: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)
    superseded: dict[tuple[str, int], Any] = field(default_factory=dict)
    # Who made each live statement and with which audience (statement id: (member, share group)),
    # read with the live statements (families.live_statements): for superseding and feedback; each
    # touched hash's feedback and disputes, and what the batch writes of them.
    audience: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    governance_of: dict[int, HashGovernance] = field(default_factory=dict)
    feedback_targets: dict[Any, list[int]] = field(default_factory=dict)
    new_feedback: list[dict[str, Any]] = field(default_factory=list)
    ended_feedback: list[tuple[str, int]] = field(default_factory=list)
    # Lives (hashes.lives): for each corroboration this batch inserts, the statement whose life it
    # continues (None: it begins one) and the index of the event it caused; the statements this
    # batch retracted, by (hash, audience): a corroboration of the same audience inserted after
    # them touches their span, so it continues their life.
    continues: dict[tuple[int, str], tuple[str | None, int]] = field(default_factory=dict)
    ended: dict[tuple[int, int | None], str] = field(default_factory=dict)

    def governance(self, hash_id: int) -> HashGovernance:
        if hash_id not in self.governance_of:
            self.governance_of.update(load_governance([hash_id]))
        return self.governance_of[hash_id]

    def sees(self, viewer: Viewer, statement_id: str) -> bool:
        member_id, share_group_id = self.audience[statement_id]
        return viewer.sees(share_group_id=share_group_id, member_id=member_id)

    def supersede(self, hash_id: int, statement_id: str, by: Any) -> None:
        """End `statement_id`'s corroboration of the hash: `by`, its member's later statement of the
        same audience, replaces it."""
        row = self.inserted.get((hash_id, statement_id))
        if row is not None:  # inserted by this batch: written ended
            row["retracted_at"], row["superseded_by"] = self.now, by
        else:
            self.superseded[(statement_id, hash_id)] = by

    def by_pk(self, hash_id: int) -> Hash:
        return next(h for h in self.hashes.values() if h.pk == hash_id)

    def record(self, hash_: Hash, cause: Statement | None, before: list[str], after: list[str],
               cluster_before: int | None = None, *, change: str = "", dispute: Dispute | None = None,
               labels_before: Any = _UNCHANGED) -> None:
        """Append the event of a change to `hash_`; `labels_before` is the administrator's labels
        before it, when the change replaced them (`hash_` holds those after)."""
        kind = Event.Type.of_change(before, after)
        governance = self.governance(hash_.pk)
        self.events.append({
            "type": kind, "occurred_at": self.now, "hash": hash_.pk, "cause": cause.pk if cause else None,
            "statements_before": before, "statements_after": after, "hash_state": hash_.state,
            "cluster_id_at": hash_.cluster_id, "cluster_before": cluster_before, "change": change,
            # None for "none": most events have neither, and an empty JSON value costs as much to write.
            "dispute": dispute.pk if dispute else None, "feedback": governance.votes() or None,
            "disputes": governance.snapshots() or None, "labels_override": hash_.labels_override,
            "labels_override_before": hash_.labels_override if labels_before is _UNCHANGED else labels_before,
        })


def hash_key(hash_: Hash) -> HashKey:
    return hash_.signal_type, hash_.value, hash_.share_group_id


def load_hashes(batch: Batch, keys: set[SignalKey], extra_hash_ids: set[int]) -> None:
    by_type: dict[str, set[str]] = {}
    for signal_type, value in keys:
        by_type.setdefault(signal_type, set()).add(value)
    for signal_type, values in by_type.items():
        for hash_ in Hash.objects.filter(of_values(signal_type, values)):
            batch.hashes[hash_key(hash_)] = hash_
    missing = extra_hash_ids - {h.pk for h in batch.hashes.values()}
    for hash_ in Hash.objects.filter(pk__in=missing):
        batch.hashes[hash_key(hash_)] = hash_
    ids = [h.pk for h in batch.hashes.values()]
    batch.live = live_statements(ids, batch.audience)
    batch.governance_of.update(load_governance(ids))


def place_signals(batch: Batch, statements: list[Statement]) -> FamilyPlanner:
    """Decide where every signal goes (existing hash, near duplicate, new hash in which family) and
    create the new hashes; merged families are moved by `move_merged_clusters`."""
    planner = FamilyPlanner(batch.now, batch.hashes)
    planner.plan(statements, signal_key)
    for hash_ in planner.create_hashes():
        batch.created_states[hash_.pk] = hash_.state
        batch.live[hash_.pk] = []
        batch.governance_of[hash_.pk] = HashGovernance({}, [])  # new: no feedback, no disputes
    # Near duplicates found through the index: their live statements are not loaded yet.
    found = {p.hash.pk: p.hash for p in planner.placements.values() if p.hash.pk not in batch.live}
    batch.live.update(live_statements(list(found), batch.audience))
    batch.governance_of.update(load_governance(list(found)))
    for hash_ in found.values():
        batch.hashes.setdefault(hash_key(hash_), hash_)
    return planner


def move_merged_clusters(batch: Batch, planner: FamilyPlanner) -> None:
    """Hashes of families this batch merged move to the surviving cluster, each with an event."""
    merged = planner.merged_clusters()
    if not merged:
        return
    moved = list(Hash.objects.filter(cluster_id__in=merged).order_by("pk"))
    known = {h.pk: h for h in batch.hashes.values() if h.pk is not None}
    batch.governance_of.update(load_governance([h.pk for h in moved if h.pk not in batch.governance_of]))
    live = live_statements([h.pk for h in moved if h.pk not in batch.live])
    for row in moved:
        hash_ = known.get(row.pk, row)
        old = hash_.cluster_id
        hash_.cluster_id, cause = merged[old]
        statements_now = batch.live.get(hash_.pk, live.get(hash_.pk, []))
        batch.record(hash_, cause, statements_now, statements_now, cluster_before=old)
    for old, (new, _) in merged.items():
        Hash.objects.filter(cluster_id=old).update(cluster_id=new, updated_at=batch.now)


def apply_hash_statement(batch: Batch, planner: FamilyPlanner, statement: Statement) -> None:
    """Corroborate each hash the statement's signals are placed on. One live assertion per member,
    hash and audience (its sharing group, or the consortium): the member's live statement of the
    same audience on that hash ends, superseded by this one, in the same event, so a hash's live
    statements are bounded by members and audiences however often a member repeats a value."""
    sid = str(statement.id)
    audience = (statement.member_id, statement.share_group_id)
    batch.audience[sid] = audience
    for position, signal in enumerate(statement.signals or ()):
        placement = planner.placements[(statement.id, position)]
        hash_ = placement.hash
        before = batch.live[hash_.pk]
        if sid in before:
            continue  # the same signal twice in one statement corroborates once
        replaced = {s for s in before if batch.audience[s] == audience}
        after = [s for s in before if s not in replaced] + [sid]
        for old in replaced:
            batch.supersede(hash_.pk, old, statement.pk)
        batch.live[hash_.pk] = after
        row = {
            "hash": hash_.pk, "statement": statement.pk, "member": statement.member_id,
            "distance": placement.distance, "created_at": batch.now, "retracted_at": None, "superseded_by": None,
        }
        batch.corroborations.append(row)
        batch.inserted[(hash_.pk, sid)] = row
        same = [s for s in before if batch.audience[s][1] == statement.share_group_id]
        batch.continues[(hash_.pk, sid)] = (same[0] if same else batch.ended.get((hash_.pk, statement.share_group_id)),
                                            len(batch.events))
        if hash_.state == Hash.State.RETRACTED:
            hash_.state = Hash.State.ACTIVE
        hash_.updated_at = batch.now
        batch.changed_hashes[hash_.pk] = hash_
        batch.record(hash_, statement, before, after)


def apply_retraction(batch: Batch, statement: Statement, target_hash_ids: list[int]) -> None:
    target = statement.retracts
    target_id = str(target.id)
    for hash_ in (h for h in batch.hashes.values() if h.pk in target_hash_ids):
        before = batch.live[hash_.pk]
        if target_id not in before:
            continue
        after = [s for s in before if s != target_id]
        batch.live[hash_.pk] = after
        batch.ended[(hash_.pk, batch.audience[target_id][1])] = target_id
        if not after:
            hash_.state = Hash.State.RETRACTED
        hash_.updated_at = batch.now
        batch.changed_hashes[hash_.pk] = hash_
        batch.record(hash_, statement, before, after)


def publishable() -> QuerySet[Statement]:
    """Verified statements ready to publish, incidents first. A retraction waits until what it
    retracts is published."""
    return (
        Statement.objects.filter(state=Statement.State.VERIFIED)
        .exclude(kind=Statement.Kind.RETRACT, retracts__state__in=[Statement.State.RECEIVED, Statement.State.VERIFIED])
        .order_by("-priority", "received_at", "id")
    )


def frames_of(statement: Statement) -> int:
    return sum(len(signal.get("frames", ())) for signal in statement.signals or ())


def next_batch(limit: int, max_frames: int | None = None) -> list[Statement]:
    """Up to `limit` statements, and no more video frames than PUBLISH_BATCH_MAX_FRAMES (at least one
    statement): what one batch compares under the feed lock stays bounded however long the videos."""
    max_frames = settings.PUBLISH_BATCH_MAX_FRAMES if max_frames is None else max_frames
    statements = list(
        publishable().select_related("retracts")
        .only("id", "kind", "member_id", "key_id", "signals", "target", "verdict", "reasons", "content_type",
              "priority", "received_at", "share_group_id",
              "retracts__id", "retracts__state", "retracts__retracted_at", "retracts__share_group_id")[:limit]
    )
    frames = 0
    for taken, statement in enumerate(statements):
        frames += frames_of(statement)
        if taken and frames > max_frames:
            return statements[:taken]
    return statements


def publish_batch(*, limit: int) -> int | None:
    """Publish up to `limit` verified statements in one transaction; returns how many were settled
    (published or rejected), or None when another publisher holds the feed lock."""
    with transaction.atomic():
        head = feed_lock(wait=False)
        if head is None:
            return None
        statements = next_batch(limit)
        if not statements:
            return 0
        batch = publish_statements(head, statements)
    return len(batch.published) + len(batch.rejected)


def publish_just_verified(fresh: list[Statement], *, limit: int) -> Batch | None:
    """In the caller's transaction, which has just verified `fresh` (hash statements, their rows
    still `received`): publish them at once, with what else is waiting, once the feed lock is free
    (None if another publisher still holds it after PUBLISH_LOCK_WAIT_SECONDS, or if their videos
    alone would fill a batch). Their rows are left for the caller to write, once, with what
    verification found and what this decided (state, published_at or a rejection): a statement row
    is then written twice (received, published) instead of three times, and is not read back.

    Waiting for the lock, rather than leaving the statements verified for the publisher holding it,
    is what keeps every statement of a burst on this path: a publisher holds the lock for one batch,
    and the statements left verified would cost another write of each row and a read of it back.
    While this waits it holds its claimed statements' rows. The sweep skips locked rows, so it
    neither waits for these nor holds a row the feed holder needs while waiting; should a cycle of
    waits close all the same, PostgreSQL aborts one waiter, and if that is this one only the wait's
    savepoint is lost (feed_lock_within returns None) and the statements are stored verified. The caller looks again for
    publishable work after it commits, as every publisher does (see publish_verified)."""
    frames = sum(frames_of(statement) for statement in fresh)
    if not fresh or frames > settings.PUBLISH_BATCH_MAX_FRAMES:
        return None
    head = feed_lock_within(settings.PUBLISH_LOCK_WAIT_SECONDS)
    if head is None:
        return None
    # What was verified before waits no longer than these: the batch takes it too, in the order a
    # batch of the waiting statements alone would have (incidents first, then by receipt).
    waiting = next_batch(limit - len(fresh), settings.PUBLISH_BATCH_MAX_FRAMES - frames) if limit > len(fresh) else []
    statements = sorted([*waiting, *fresh], key=lambda s: (not s.priority, s.received_at, s.id))
    return publish_statements(head, statements, unwritten={s.id for s in fresh})


def publish_statements(head: Any, statements: list[Statement], *, unwritten: set[Any] = frozenset()) -> Batch:
    """Publish `statements` under the feed lock `head`, in the current transaction. Rows whose id is
    in `unwritten` are left for the caller to write (see publish_just_verified)."""
    batch = Batch(now=timezone.now())
    statements = refuse_revoked_keys(batch, statements)
    statements = refuse_benign(batch, statements)
    retract_targets = [s.retracts_id for s in statements if s.kind == Statement.Kind.RETRACT]
    target_hashes: dict[Any, list[int]] = {}
    for statement_id, hash_id in Corroboration.objects.filter(
        statement_id__in=retract_targets, retracted_at__isnull=True
    ).values_list("statement_id", "hash_id"):
        target_hashes.setdefault(statement_id, []).append(hash_id)
    for statement_id, hash_id in Feedback.objects.filter(
        statement_id__in=retract_targets, ended_at__isnull=True
    ).values_list("statement_id", "hash_id"):
        batch.feedback_targets.setdefault(statement_id, []).append(hash_id)
    superseded_targets = set(Corroboration.objects.filter(
        statement_id__in=retract_targets, superseded_by__isnull=False).values_list("statement_id", flat=True)
    ) if retract_targets else set()
    keys = {signal_key(sig) for s in statements for sig in (s.signals or ())}
    keys |= {(s.target["type"], s.target["value"]) for s in statements if s.kind == Statement.Kind.FEEDBACK}
    load_hashes(batch, keys, {h for ids in (*target_hashes.values(), *batch.feedback_targets.values()) for h in ids})
    statements = refuse_removed(batch, statements)
    planner = place_signals(batch, statements)
    viewers = viewers_for_ids({s.member_id for s in statements if s.kind == Statement.Kind.FEEDBACK})

    retracted_now: set[Any] = set()
    retractions: list[Statement] = []
    for statement in statements:
        if statement.kind == Statement.Kind.HASH:
            apply_hash_statement(batch, planner, statement)
        elif statement.kind == Statement.Kind.FEEDBACK:
            try:
                apply_feedback(batch, statement, viewers[statement.member_id])
            except FeedbackRejected as exc:
                reject(batch, statement, exc.code, exc.message)
                continue
        else:
            target = statement.retracts
            if target.state == Statement.State.REJECTED:
                reject(batch, statement, "retract_target_invalid", "The retracted statement was rejected.")
                continue
            if target.retracted_at is not None or target.id in retracted_now:
                reject(batch, statement, "already_retracted", "That statement has been retracted already.")
                continue
            if target.kind == Statement.Kind.FEEDBACK:
                apply_feedback_retraction(batch, statement)
            else:
                hash_ids = target_hashes.get(target.id, [])
                if superseded(batch, target, hash_ids, superseded_targets):
                    reject(batch, statement, "statement_superseded",
                           "That statement was replaced by a later statement of yours (same value and share); "
                           "retract that one instead.")
                    continue
                apply_retraction(batch, statement, hash_ids)
            retracted_now.add(target.id)
            # The retraction travels with what it retracts: whoever could see the statement sees
            # it go, and nobody else. Set here, where the target is certainly verified.
            statement.share_group_id = target.share_group_id
            retractions.append(statement)
        statement.state, statement.published_at = Statement.State.PUBLISHED, batch.now
        batch.published.append(statement)

    move_merged_clusters(batch, planner)
    events_number(head, batch.events)  # appended last; numbered now, for the lives the rows record
    settle_lives(batch)
    insert_rows(Corroboration, batch.corroborations)
    write_superseded(batch)  # before the retractions' write, which ends what is left live
    write_feedback(batch)
    if retracted_now:
        Corroboration.objects.filter(statement_id__in=retracted_now, retracted_at__isnull=True).update(
            retracted_at=batch.now)
        Statement.objects.filter(id__in=retracted_now).update(retracted_at=batch.now)
    for state in Hash.State.values:
        # A hash this batch inserted was written with this batch's time already: only a state
        # changed since then is written again.
        ids = [h.pk for h in batch.changed_hashes.values()
               if h.state == state and batch.created_states.get(h.pk) != state]
        if ids:
            Hash.objects.filter(AnyOf(F("pk"), ids)).update(state=state, updated_at=batch.now)
    published = [s.id for s in batch.published if s.id not in unwritten]
    if published:
        Statement.objects.filter(AnyOf(F("id"), published)).update(
            state=Statement.State.PUBLISHED, published_at=batch.now)
    update_rows(Statement, [s for s in batch.rejected if s.id not in unwritten],
                ["state", "rejection_code", "rejection_message"])
    update_rows(Statement, retractions, ["share_group"])
    events_append(head, batch.events)
    indexes.mark_stale()  # should this roll back instead, a needless catch-up is all it costs
    return batch


def settle_lives(batch: Batch) -> None:
    """Record on each corroboration inserted its life (hashes.lives): the life of the live (or just
    retracted) statement of its audience it continues, else a new one, numbered after the hash's
    last in that audience and begun by the event it caused. What is read is bounded by the batch:
    the rows continued, and for a life begun on a hash that had rows, its last life's number."""
    if not batch.corroborations:
        return
    stored = {(h, s) for (h, _), (s, _) in batch.continues.items() if s is not None and (h, s) not in batch.inserted}
    known: dict[tuple[int, str], lives.Life | None] = {}
    if stored:
        for hash_id, statement_id, life, seq, began in Corroboration.objects.filter(
                hash_id__in={h for h, _ in stored}, statement_id__in={s for _, s in stored}).values_list(
                "hash_id", "statement_id", "life", "life_seq", "life_began"):
            known[(hash_id, str(statement_id))] = None if life is None else (life, seq, began)
    begun = {(row["hash"], batch.audience[str(row["statement"])][1]) for row in batch.corroborations
             if batch.continues[(row["hash"], str(row["statement"]))][0] is None}
    numbers = last_lives({key for key in begun if key[0] not in batch.created_states})
    computed: dict[int, dict[tuple[int, int | None], dict[str, lives.Life]]] = {}

    def from_history(hash_id: int) -> dict[tuple[int, int | None], dict[str, lives.Life]]:
        """Rows published before migration 0012's backfill reached them: the hash's whole history."""
        if hash_id not in computed:
            computed[hash_id] = lives.compute(Corroboration.objects, Event.objects, [hash_id])
        return computed[hash_id]

    for row in batch.corroborations:
        sid, share_group_id = str(row["statement"]), batch.audience[str(row["statement"])][1]
        key = (row["hash"], sid)
        continued, event_index = batch.continues[key]
        if continued is not None:
            if (row["hash"], continued) in batch.inserted:
                other = batch.inserted[(row["hash"], continued)]
                life = (other["life"], other["life_seq"], other["life_began"])
            else:
                life = known.get((row["hash"], continued))
                if life is None:
                    life = from_history(row["hash"]).get((row["hash"], share_group_id), {}).get(continued)
                if life is None:  # cannot be: the statement continued is a stored corroboration of the hash
                    continued = None
        if continued is None:
            audience = (row["hash"], share_group_id)
            last = numbers.get(audience, -1)
            if last is None:
                last = max((n for n, _, _ in from_history(row["hash"]).get(audience, {}).values()), default=-1)
            numbers[audience] = last + 1
            event = batch.events[event_index]
            life = (last + 1, event["seq"], event["occurred_at"])
        row["life"], row["life_seq"], row["life_began"] = life


def last_lives(keys: set[tuple[int, int | None]]) -> dict[tuple[int, int | None], int | None]:
    """The last life number of each (hash, audience) (-1: it has had none; None: some of its rows
    were published before migration 0012's backfill reached them): read down the index of lives."""
    found: dict[tuple[int, int | None], int | None] = {}
    for hash_id, share_group_id in keys:
        rows = Corroboration.objects.filter(hash_id=hash_id, statement__share_group_id=share_group_id)
        if rows.filter(life__isnull=True).exists():
            found[(hash_id, share_group_id)] = None
            continue
        last = list(rows.filter(life__isnull=False).order_by("-life").values_list("life", flat=True)[:1])
        found[(hash_id, share_group_id)] = last[0] if last else -1
    return found


def superseded(batch: Batch, target: Statement, hash_ids: list[int], superseded_before: set[Any]) -> bool:
    """Whether a hash statement about to be retracted asserts nothing any more because later
    statements of its member replaced it (before this batch, or in it): nothing is left to retract,
    and its member's newer assertion is not this statement's to withdraw."""
    sid = str(target.id)
    if any(sid in batch.live.get(hash_id, ()) for hash_id in hash_ids):
        return False
    return target.id in superseded_before or any(old == sid for old, _ in batch.superseded)


def write_superseded(batch: Batch) -> None:
    """End the stored corroborations this batch's statements superseded (those it inserted and
    superseded are written ended already)."""
    if not batch.superseded:
        return
    rows = []
    for pk, hash_id, statement_id in Corroboration.objects.filter(
        AnyOf(F("statement_id"), {old for old, _ in batch.superseded}), retracted_at__isnull=True,
    ).values_list("pk", "hash_id", "statement_id"):
        by = batch.superseded.get((str(statement_id), hash_id))
        if by is not None:
            rows.append(Corroboration(pk=pk, retracted_at=batch.now, superseded_by_id=by))
    update_rows(Corroboration, rows, ["retracted_at", "superseded_by"])


def refuse_benign(batch: Batch, statements: list[Statement]) -> list[Statement]:
    """Verification refuses what the suppression list covers; a statement verified before its entry
    was added is refused here, before anything of it is placed (see suppression.services' barrier)."""
    keys = {signal_key(sig) for s in statements if s.kind == Statement.Kind.HASH for sig in s.signals or ()}
    benign = benign_list(among=keys) if keys else None
    if not benign:
        return statements
    kept = []
    for statement in statements:
        if statement.kind == Statement.Kind.HASH and benign.first_covered(
                [signal_key(sig) for sig in statement.signals or ()]) is not None:
            reject(batch, statement, "benign_match", "A signal is on the suppression list of known-benign content.")
        else:
            kept.append(statement)
    return kept


def refuse_revoked_keys(batch: Batch, statements: list[Statement]) -> list[Statement]:
    """A statement verified while its key was active, and published after an administrator revoked
    the key as compromised (received at or after `compromised_since`, if given), is rejected
    `key_revoked`: the withdrawal of what the key signed (hashes.services.revocation) may have
    finished before it came here. One read a batch, of the few keys its statements name."""
    keys = {s.key_id for s in statements if s.key_id is not None}
    revoked = dict(SigningKey.objects.filter(pk__in=keys, state=SigningKey.State.REVOKED)
                   .values_list("pk", "compromised_since")) if keys else {}
    if not revoked:
        return statements
    kept = []
    for statement in statements:
        since = revoked.get(statement.key_id, False)
        if since is not False and (since is None or statement.received_at >= since):
            reject(batch, statement, "key_revoked", "This key has been revoked.")
        else:
            kept.append(statement)
    return kept


def refuse_removed(batch: Batch, statements: list[Statement]) -> list[Statement]:
    """A hash an administrator removed after a dispute stays removed until an administrator lifts
    the removal: a hash statement with a signal that would corroborate it, were it live, is refused
    whole (`hash_removed`) in the audiences the removal covered (Hash.removal_covers). That is its
    exact value, placed as FamilyPlanner.same_value places it (the statement's own audience's hash
    first, then the consortium's), or, for a PDQ that meets no stored hash of its value, a removed
    PDQ within DEDUPE_DISTANCE of one of the statement's audiences: another copy of the same picture.

    A statement of an audience the removal did not cover goes where it would had the hash never
    been removed, so the refusal tells nobody of a removal it could not see."""
    hash_statements = [s for s in statements if s.kind == Statement.Kind.HASH]
    if not hash_statements:
        return statements
    held = any(h.removal_holds is not None for h in batch.hashes.values())
    # PDQs that meet no stored hash of their value, by the audience of their statement.
    unplaced: dict[int | None, set[str]] = {}
    for statement in hash_statements:
        for signal in statement.signals or ():
            if signal["type"] == "pdq" and exact_hash(batch, statement, signal_key(signal)) is None:
                unplaced.setdefault(statement.share_group_id, set()).add(signal["value"])
    near = RemovedPdqs.load() if unplaced else None
    copies = {group: near.copies(group, values) for group, values in unplaced.items()} if near else {}
    if not held and not any(copies.values()):
        return statements
    kept = []
    for statement in statements:
        if statement.kind == Statement.Kind.HASH and removed_signal(batch, statement, copies):
            reject(batch, statement, "hash_removed", "An administrator removed this hash after a dispute; "
                                                     "it stays removed until an administrator lifts the removal.")
        else:
            kept.append(statement)
    return kept


def removed_signal(batch: Batch, statement: Statement, copies: dict[int | None, set[str]]) -> bool:
    for signal in statement.signals or ():
        placed = exact_hash(batch, statement, signal_key(signal))
        if placed is not None:
            if placed.removal_covers(statement.share_group_id):
                return True
        elif signal["type"] == "pdq" and signal["value"] in copies.get(statement.share_group_id, ()):
            return True
    return False


def exact_hash(batch: Batch, statement: Statement, key: SignalKey) -> Hash | None:
    """The stored hash of exactly this value that the statement would corroborate."""
    for audience in audiences(statement):
        found = batch.hashes.get((*key, audience))
        if found is not None:
            return found
    return None


@dataclass
class RemovedPdqs:
    """The PDQ hashes holding a removal: one read, of an index of those few (administrators' removals)."""

    rows: list[tuple[str, int | None, list[int | None]]]

    @classmethod
    def load(cls) -> RemovedPdqs:
        return cls(list(Hash.objects.filter(signal_type="pdq", removal_holds__isnull=False)
                        .values_list("value", "share_group_id", "removal_holds")))

    def __bool__(self) -> bool:
        return bool(self.rows)

    def copies(self, share_group_id: int | None, values: set[str]) -> set[str]:
        """Those of `values` (PDQs of statements of this audience) within DEDUPE_DISTANCE of a removed
        PDQ that such a statement may meet (a hash of its audiences) and whose removal covers it.
        One vectorised pass over the removed PDQs for all of them."""
        meets = (None,) if share_group_id is None else (share_group_id, None)
        removed = BenignList.of([("pdq", value) for value, group, holds in self.rows
                                 if group in meets and removal_covers(holds, share_group_id)],
                                distance=settings.DEDUPE_DISTANCE)
        if not removed:
            return set()
        ordered = sorted(values)
        return {value for value, hit in zip(ordered, removed.covered([("pdq", v) for v in ordered])) if hit}


def write_feedback(batch: Batch) -> None:
    """Verdicts this batch gave and ended (one given and replaced within the batch is stored ended)."""
    ended = set(batch.ended_feedback)
    for row in batch.new_feedback:
        key = (str(row["statement"]), row["hash"])
        if key in ended:
            row["ended_at"] = batch.now
            ended.discard(key)
    for statement_id, hash_id in ended:
        Feedback.objects.filter(statement_id=statement_id, hash_id=hash_id, ended_at__isnull=True).update(
            ended_at=batch.now)
    insert_rows(Feedback, batch.new_feedback)


def reject(batch: Batch, statement: Statement, code: str, message: str) -> None:
    statement.state = Statement.State.REJECTED
    statement.rejection_code, statement.rejection_message = code, message
    batch.rejected.append(statement)


@dataclass(frozen=True)
class PublishRun:
    settled: int
    finished: bool  # False: it stopped at max_batches with work left, and the caller should go on


def publish_verified(*, batch_size: int, max_batches: int = 50) -> PublishRun:
    """Publish until nothing is left, unless another publisher is at it.

    Never waits for the lock: the publisher holding it takes whatever others verified meanwhile.
    That publisher looks again after releasing the lock, so work committed by someone who found
    the lock taken is never left behind."""
    total = 0
    for _ in range(max_batches):
        settled = publish_batch(limit=batch_size)
        if settled is None:
            return PublishRun(total, finished=True)
        total += settled
        # A batch that was not full took all there was when it began: one look tells whether more
        # was committed meanwhile, by workers that found the lock taken.
        if settled < batch_size and not publishable().exists():
            return PublishRun(total, finished=True)
    return PublishRun(total, finished=False)
