from __future__ import annotations

import uuid
from typing import Any, Iterable

from django.conf import settings
from django.db import models
from django.utils import timezone

from consortium.db import AnyOf
from members.models import Member, SharingGroup, SigningKey


class SignalType(models.TextChoices):
    PDQ = "pdq"
    VPDQ = "vpdq"
    MD5 = "md5"
    SHA256 = "sha256"


class Label(models.Model):
    """A taxonomy entry. Administrators manage the taxonomy; statements may only use active labels."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Incident(models.Model):
    """A declared crisis (for example a live-streamed attack). Statements verified to name an active
    incident are published first (Statement.priority, set by verification)."""

    class State(models.TextChoices):
        ACTIVE = "active"
        CLOSED = "closed"

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    declared_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-declared_at"]
        permissions = [("manage_incident", "Can declare and close incidents")]

    def __str__(self) -> str:
        return self.slug


class Statement(models.Model):
    """One signed statement as received: the raw JWS is kept byte for byte so anyone can re-verify it."""

    class Kind(models.TextChoices):
        HASH = "hash"
        RETRACT = "retract"
        FEEDBACK = "feedback"

    class State(models.TextChoices):
        RECEIVED = "received"
        VERIFIED = "verified"
        PUBLISHED = "published"
        REJECTED = "rejected"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Not indexed alone: statement_member_recent_size and statement_jti_unique_per_member lead with it.
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="statements", db_index=False)
    jti = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # The JWS as received. Of a statement that no active key of its member signed (rejected with a key
    # code or signature_invalid) only the first REJECTED_RAW_KEPT characters stay: `digest` and `size`
    # still identify the whole (hashes.services.verification).
    raw = models.TextField()
    digest = models.CharField(max_length=64, help_text="SHA-256 of the raw JWS, to tell a resubmission from a replay.")
    size = models.IntegerField(
        null=True, blank=True,
        help_text="Length of the JWS as received, in bytes (what the daily byte quota counts). Empty: received "
                  "before sizes were recorded.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.RECEIVED)
    rejection_code = models.CharField(max_length=64, blank=True)  # indexed where set: statement_rejected
    rejection_message = models.CharField(max_length=500, blank=True)
    priority = models.BooleanField(default=False, help_text="Names an active incident: processed first.")
    received_at = models.DateTimeField(default=timezone.now)
    queued_at = models.DateTimeField(default=timezone.now, help_text="When it was last queued for verification.")
    verified_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)

    # Filled in by verification, from the signed payload. Indexed where set: statement_key_received.
    key = models.ForeignKey(SigningKey, null=True, blank=True, on_delete=models.PROTECT, db_index=False)
    issued_at = models.DateTimeField(null=True, blank=True)
    content_type = models.CharField(max_length=16, blank=True)
    signals = models.JSONField(null=True, blank=True, help_text="The signals, validated and normalised.")
    note = models.TextField(blank=True)
    labels = models.ManyToManyField(Label, blank=True, related_name="statements")
    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.PROTECT, db_index=False)
    share_group = models.ForeignKey(
        SharingGroup, null=True, blank=True, on_delete=models.PROTECT, db_index=False,
        help_text="Empty: shared with the whole consortium.",
    )  # indexed where set: statement_share_group
    retracts = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="retractions",
                                 db_index=False)
    retract_reason = models.TextField(blank=True)
    retracted_at = models.DateTimeField(null=True, blank=True, help_text="When its member retracted it.")
    # Feedback (kind "feedback"): what it is about, and what it says.
    target = models.JSONField(null=True, blank=True, help_text='Feedback: {"type", "value"} of the hash.')
    verdict = models.CharField(max_length=16, blank=True)
    reasons = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["member", "jti"], name="statement_jti_unique_per_member")]
        indexes = [
            # Every change of a statement's state writes a new entry in each index of the row (the
            # state is indexed, so no update is HOT) whose condition the new version meets: the work
            # queues hold only statements still waiting, which every query of them names (a state
            # `= x` or `IN`, implying the condition), so publishing a statement adds nothing to them
            # and they stay the size of the backlog, not of the table.
            # One index per waiting state, each condition a single `state = x` that the queries name
            # (SQLite uses a partial index only when a term of the query matches its condition; it
            # cannot tell that `state = x` implies `state IN (...)`).
            models.Index(fields=["-priority", "received_at"], name="statement_received",
                         condition=models.Q(state="received")),
            models.Index(fields=["-priority", "received_at"], name="statement_verified",
                         condition=models.Q(state="verified")),
            models.Index(fields=["queued_at"], name="statement_received_queued", condition=models.Q(state="received")),
            # A member's statements by time, with their sizes: the daily quotas count and add them up
            # from the index alone (an index-only scan), and the member's list pages through it.
            models.Index(fields=["member", "-received_at", "size"], name="statement_member_recent_size"),
            # Columns that few statements fill (or none until verified) are indexed where filled.
            # Queries name a value (`= x`, `IN`), which implies the condition.
            models.Index(fields=["rejection_code"], name="statement_rejected", condition=~models.Q(rejection_code="")),
            models.Index(fields=["key", "received_at"], name="statement_key_received",
                         condition=models.Q(key__isnull=False)),
            models.Index(fields=["share_group"], name="statement_share_group",
                         condition=models.Q(share_group__isnull=False)),
            models.Index(fields=["incident"], name="statement_incident", condition=models.Q(incident__isnull=False)),
            models.Index(fields=["retracts"], name="statement_retracts", condition=models.Q(retracts__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}:{self.jti}"


class Cluster(models.Model):
    """A variant family: hashes of the same content (edits, re-encodes) linked by distance."""

    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"cluster {self.pk}"


class Hash(models.Model):
    """One distinct signal value. Every statement asserting it is a corroboration."""

    class State(models.TextChoices):
        ACTIVE = "active"
        RETRACTED = "retracted"

    signal_type = models.CharField(max_length=16, choices=SignalType.choices)
    value = models.CharField(max_length=64, help_text="Lower-case hex; for vPDQ the SHA-256 of its frame list.")
    frames = models.JSONField(null=True, blank=True, help_text="vPDQ frames as submitted.")
    quality = models.PositiveSmallIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=16, blank=True)
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="hashes", db_index=True)
    # The audience of the statement that created it (empty: the whole consortium). What everyone who
    # sees a hash sees of it (its id, value, frames, cluster and links) comes from statements shared
    # with at least that audience, so a sharing group's statements never shape what outsiders see
    # (hashes.services.families).
    share_group = models.ForeignKey(
        SharingGroup, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Empty: a consortium-wide hash.",
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    # Labels an administrator set when resolving a dispute as `relabelled`; they replace the labels
    # of the statements for everyone. None: the statements' labels.
    labels_override = models.JSONField(null=True, blank=True)
    # An administrator's `removed` outcome holds until an administrator lifts it: statements placed on
    # this hash are refused (`hash_removed`) in the audiences its removal covered, those of the
    # statements it ended (sharing group ids; None: the whole consortium, which covers every
    # audience). None: no removal holds (hashes.services.disputes).
    removal_holds = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["signal_type", "value"], condition=models.Q(share_group__isnull=True),
                                    name="hash_signal_unique_consortium"),
            models.UniqueConstraint(fields=["signal_type", "value", "share_group"],
                                    condition=models.Q(share_group__isnull=False), name="hash_signal_unique_group"),
        ]
        # Few hashes hold a removal; publishing reads the PDQs among them (hashes.services.publishing).
        indexes = [models.Index(fields=["signal_type"], name="hash_removal_held",
                                condition=models.Q(removal_holds__isnull=False))]
        # The permission to resolve a Dispute predates the model and stays here: the "Dispute review"
        # group holds it as hashes.resolve_dispute.
        permissions = [("resolve_dispute", "Can resolve disputes on shared hashes")]

    def __str__(self) -> str:
        return f"{self.signal_type}:{self.value[:16]}"

    def removal_covers(self, share_group_id: int | None) -> bool:
        return removal_covers(self.removal_holds, share_group_id)


def of_values(signal_type: str, values: Iterable[str]) -> models.Q:
    """Hashes of one type with any of these values, in every audience. Each of the two unique
    indexes (the consortium's, the groups') is partial, so each arm names its audience: PostgreSQL
    reads the two indexes, where `signal_type = ... AND value = ANY(...)` alone matched neither and
    scanned the whole table (29 ms at 200,000 hashes, on every publishing batch and exact match)."""
    same = models.Q(AnyOf(models.F("value"), list(values)), signal_type=signal_type)
    return (same & models.Q(share_group__isnull=True)) | (same & models.Q(share_group__isnull=False))


def removal_covers(holds: list[int | None] | None, share_group_id: int | None) -> bool:
    """Whether a held removal (Hash.removal_holds) refuses a statement of this audience: one of the
    audiences that saw the hash removed (the whole consortium's removal was seen by every audience).
    Any other audience never saw the hash live, so its statement goes on as if the removal never was."""
    return holds is not None and (None in holds or share_group_id in holds)


class Corroboration(models.Model):
    """A statement asserting a hash. Retracting the statement ends it, and so does the same member's
    later statement of the same hash and audience (`superseded_by`: one live assertion per member,
    hash and audience); the row stays for the record."""

    # Not indexed alone: corroboration_unique and corroboration_live both lead with it.
    hash = models.ForeignKey(Hash, on_delete=models.PROTECT, related_name="corroborations", db_index=False)
    statement = models.ForeignKey(Statement, on_delete=models.PROTECT, related_name="corroborations")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="+")
    distance = models.PositiveSmallIntegerField(default=0, help_text="Bits from the hash's value (0: exact).")
    created_at = models.DateTimeField(default=timezone.now)
    retracted_at = models.DateTimeField(null=True, blank=True, help_text="When it ended (retracted or superseded).")
    # Few rows have one, and nothing looks rows up by it: not indexed.
    superseded_by = models.ForeignKey(Statement, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                      db_index=False, help_text="The member's later statement that replaced it.")
    # The life of the hash it belongs to in its statement's audience (hashes.lives), set when it is
    # published: the life's number, and the feed event that began it (its seq and occurred_at; no
    # seq: no event, occurred_at is then the opener's created_at). Empty on rows published before
    # migration 0012 until its backfill reaches them.
    life = models.IntegerField(null=True, blank=True)  # no CHECK: added without a scan of the table
    life_seq = models.BigIntegerField(null=True, blank=True)
    life_began = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["hash", "statement"], name="corroboration_unique")]
        indexes = [models.Index(fields=["hash", "retracted_at"], name="corroboration_live"),
                   # A hash's lives by number: the last one, where one begins (hashes.lives).
                   models.Index(fields=["hash", "life"], name="corroboration_life")]


class HashLink(models.Model):
    """Why a hash joined its cluster: it was within the match distance (PDQ) or the match
    percentage (vPDQ) of `linked_to` when it was published."""

    hash = models.ForeignKey(Hash, on_delete=models.PROTECT, related_name="links")
    linked_to = models.ForeignKey(Hash, on_delete=models.PROTECT, related_name="+")
    distance = models.PositiveSmallIntegerField(null=True, blank=True)
    query_match_percent = models.FloatField(null=True, blank=True)
    stored_match_percent = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["hash", "linked_to"], name="hash_link_unique")]


class Feedback(models.Model):
    """A member's verdict on a hash, from a feedback statement. One live verdict per member and hash:
    a newer one ends the older, a retraction of its statement ends it. A submitter's `agree` while a
    dispute is open is an answer to it, not a vote (`is_answer`), and is not counted."""

    class Verdict(models.TextChoices):
        AGREE = "agree"
        DISAGREE = "disagree"
        SEEN = "seen"

    statement = models.ForeignKey(Statement, on_delete=models.PROTECT, related_name="feedback")
    hash = models.ForeignKey(Hash, on_delete=models.PROTECT, related_name="feedback")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="+")
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    reasons = models.JSONField(default=list, blank=True)
    is_answer = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True, help_text="Replaced by a newer verdict or retracted.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["hash", "statement"], name="feedback_unique")]
        indexes = [models.Index(fields=["hash", "ended_at"], name="feedback_live")]


class Dispute(models.Model):
    """A hash contested by a member that did not submit it. Its audience is the opening feedback's:
    whoever may see that statement sees the dispute, nobody else (so one member's dispute never tells
    an outsider what a sharing group said). At most one is open per hash and audience."""

    class State(models.TextChoices):
        OPEN = "open"
        UPHELD = "upheld"
        RELABELLED = "relabelled"
        REMOVED = "removed"

    hash = models.ForeignKey(Hash, on_delete=models.PROTECT, related_name="disputes")
    opened_by = models.ForeignKey(Statement, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                  help_text="The disagree feedback that opened it; empty for the suppression list.")
    member = models.ForeignKey(Member, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    share_group = models.ForeignKey(SharingGroup, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    reasons = models.JSONField(default=list, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(blank=True, help_text="Why it was resolved so; shown to members.")
    labels = models.JSONField(null=True, blank=True, help_text="relabelled: the labels that replaced the hash's.")
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    removal = models.ForeignKey(Statement, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                help_text="removed: the retraction the server signed.")

    class Meta:
        ordering = ["opened_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["hash"], condition=models.Q(state="open", share_group__isnull=True),
                                    name="dispute_open_unique_consortium"),
            models.UniqueConstraint(fields=["hash", "share_group"],
                                    condition=models.Q(state="open", share_group__isnull=False),
                                    name="dispute_open_unique_group"),
        ]
        indexes = [models.Index(fields=["state", "opened_at"], name="dispute_queue")]

    def __str__(self) -> str:
        return f"dispute {self.pk} on {self.hash}"

    def snapshot(self) -> dict[str, Any]:
        """What an event keeps of it; `opened_by` decides who sees it (hashes.selectors.dispute_view)."""
        return {
            "id": self.pk, "state": self.state, "opened_by": str(self.opened_by_id) if self.opened_by_id else None,
            "share_group": self.share_group_id, "opened_at": self.opened_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "reasons": list(self.reasons), "resolution": self.resolution,
        }


class Event(models.Model):
    """One entry of the ordered log. `seq` is assigned under the feed lock, so sequence numbers
    become visible in order (see hashes.feed)."""

    class Type(models.TextChoices):
        ADDED = "hash.added"
        UPDATED = "hash.updated"
        RETRACTED = "hash.retracted"

        @classmethod
        def of_change(cls, before: list, after: list) -> Event.Type:
            """What a change of a hash's live statements is: it appears, it goes, or it changes."""
            if not before:
                return cls.ADDED
            return cls.RETRACTED if not after else cls.UPDATED

    seq = models.BigIntegerField(primary_key=True)
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(max_length=32, choices=Type.choices)
    occurred_at = models.DateTimeField(default=timezone.now)
    hash = models.ForeignKey(Hash, on_delete=models.PROTECT, related_name="events")
    cause = models.ForeignKey(Statement, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # Live corroborating statements before and after the change; each reader sees the part its
    # visibility allows, so one row serves every member without leaking across sharing groups.
    statements_before = models.JSONField(default=list)
    statements_after = models.JSONField(default=list)
    hash_state = models.CharField(max_length=16)
    cluster_id_at = models.BigIntegerField()
    # Set when the event moved the hash to another cluster (a merge of variant families).
    cluster_before = models.BigIntegerField(null=True, blank=True)
    # What else the event changed besides live statements: "feedback" (a verdict given or withdrawn:
    # seen by whoever sees the cause) or "dispute" (`dispute` opened, answered or resolved: seen by
    # whoever sees that dispute). Blank: statements or cluster only.
    change = models.CharField(max_length=16, blank=True)
    dispute = models.ForeignKey("Dispute", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                db_index=False)  # indexed where set: event_dispute
    # The hash's live feedback (vote statements) and its disputes (Dispute.snapshot) after the event,
    # and the labels an administrator set, if any; each reader sees the part its visibility allows.
    feedback = models.JSONField(null=True, blank=True)  # None: none
    disputes = models.JSONField(null=True, blank=True)
    labels_override = models.JSONField(null=True, blank=True)
    # The labels an administrator had set before the event: they differ from `labels_override` only on
    # a dispute resolved `relabelled`, an outcome every reader of the hash sees, whoever sees the dispute.
    labels_override_before = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["dispute"], name="event_dispute", condition=models.Q(dispute__isnull=False))]

    def __str__(self) -> str:
        return f"#{self.seq} {self.type} hash {self.hash_id}"

    def refs(self) -> tuple[str, ...]:
        """Every statement the event mentions, in a fixed order: live statements before and after,
        the cause, live feedback, and the statements that opened its disputes."""
        return tuple(dict.fromkeys((
            *self.statements_before, *self.statements_after, *([str(self.cause_id)] if self.cause_id else []),
            *(self.feedback or ()), *(d["opened_by"] for d in self.disputes or () if d.get("opened_by")),
        )))


class FeedHead(models.Model):
    """Single row holding the last assigned seq. Locking it serialises publishers, which is what
    makes the feed gap-free for readers (see hashes.feed)."""

    last_seq = models.BigIntegerField(default=0)
