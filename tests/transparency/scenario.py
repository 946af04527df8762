"""A consortium's life over five months, played through the real pipeline (signed statements,
verification, publishing, feedback, disputes resolved by dispute_resolve), with a record of what it
did from which the tests work out the true figures on their own: a few lines of Python per figure
over that record, never the statistics' SQL.

Cast: alice and bob (platforms, the "trusted" sharing group), homeoffice (government), watchdog (an NGO), and
charlie (a platform in no group). With `hidden`, the group also shares, corroborates consortium
hashes, keeps one alive after the consortium retracts it, gives verdicts and has its disputes
resolved; none of it may change a figure outsiders see."""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timezone as dt_timezone
from typing import Any, Callable

from hashes.models import Dispute, Hash, Statement
from hashes.services.disputes import dispute_resolve, disputes_open, removal_lift
from tests.actors import Actor
from tests.factories import md5

HASH_FIGURES = ("added", "retracted_by_submitters", "removed_by_dispute")
OUTCOMES = ("upheld", "relabelled", "removed")
KINDS = ("platform", "government", "ngo")
ALL = object()  # every label
NAMES = {  # the default taxonomy's names (hashes/migrations/0002_default_taxonomy.py)
    "graphic-violence": "Graphic violence", "glorification": "Glorification", "recruitment": "Recruitment",
    "instruction": "Instruction", "imminent-threat": "Imminent threat", "attacker-manifesto": "Attacker manifesto",
}


class Clock:
    """Stands in for django.utils.timezone.now: every row the pipeline writes carries this time."""

    def __init__(self) -> None:
        self.now = datetime(2024, 12, 1, tzinfo=dt_timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def set(self, when: str) -> None:
        moment = datetime.fromisoformat(when).replace(tzinfo=dt_timezone.utc)
        assert moment >= self.now, "the scenario runs forward"
        self.now = moment


def month(moment: datetime) -> str:
    return f"{moment:%Y-%m}"


@dataclass
class HashRecord:
    """One hash as the test knows it: its audience (None: the consortium), its live statements
    (jti: (member slug, group or None)), the labels consortium-wide statements gave it, and the
    labels an administrator set."""

    n: int
    group: str | None
    live: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    labels: set[str] = field(default_factory=set)
    override: list[str] | None = None

    def consortium_live(self) -> bool:
        return any(group is None for _, group in self.live.values())

    def current_labels(self) -> set[str]:
        return set(self.override) if self.override is not None else self.labels


@dataclass
class DisputeRecord:
    id: int
    hash: HashRecord
    audience: str | None
    public: bool
    opened: datetime
    resolved: datetime | None = None
    outcome: str | None = None


@dataclass
class Record:
    hashes: dict[tuple[int, str | None], HashRecord] = field(default_factory=dict)
    statement_hash: dict[tuple[str, str], HashRecord] = field(default_factory=dict)
    facts: list[tuple[str, str, HashRecord]] = field(default_factory=list)  # (month, figure, hash): public
    group_facts: list[tuple[str, str]] = field(default_factory=list)
    # (month, member kind, labels, member slug)
    contributions: list[tuple[str, str, frozenset[str], str]] = field(default_factory=list)
    group_contributions: list[str] = field(default_factory=list)
    disputes: list[DisputeRecord] = field(default_factory=list)


class World:
    """Acts through the real system and writes down what it did."""

    def __init__(self, actors: dict[str, Actor], clock: Clock, pipeline: Callable[[], None]) -> None:
        self.actors, self.clock, self.pipeline = actors, clock, pipeline
        self.record = Record()
        self.serial = itertools.count(1)

    @property
    def iat(self) -> int:
        """Statements are signed at the scenario's time: verification refuses any from its future."""
        return int(self.clock.now.timestamp())

    @property
    def month(self) -> str:
        return month(self.clock.now)

    def share(self, who: str, n: int, labels: tuple[str, ...] = (), group: str | None = None) -> str:
        actor = self.actors[who]
        jti = f"{who}-{next(self.serial)}"
        actor.submit(actor.statement([md5(n)], labels=list(labels), share=group or "consortium", jti=jti, iat=self.iat))
        self.pipeline()
        got = Statement.objects.get(member=actor.member, jti=jti)
        assert got.state == "published", (got.state, got.rejection_code, got.rejection_message)
        hashes = self.record.hashes
        # A group's statement meets its own group's hash first, then the consortium's, as publishing does.
        key = (n, None) if group is None or (n, group) not in hashes and (n, None) in hashes else (n, group)
        record = hashes.setdefault(key, HashRecord(n, key[1]))
        if group is None:
            self.record.contributions.append((self.month, actor.member.kind, frozenset(labels), who))
            if not record.consortium_live():
                self.record.facts.append((self.month, "added", record))
            record.labels |= set(labels)
        else:
            self.record.group_contributions.append(self.month)
            if record.group is not None and not record.live:
                self.record.group_facts.append((self.month, "added"))
        record.live[jti] = (who, group)
        self.record.statement_hash[(who, jti)] = record
        return jti

    def retract(self, who: str, jti: str) -> None:
        actor = self.actors[who]
        actor.submit(actor.retraction(jti, jti=f"{who}-{next(self.serial)}", iat=self.iat))
        self.pipeline()
        record = self.record.statement_hash[(who, jti)]
        was_live = record.consortium_live()
        record.live.pop(jti)
        if record.group is None and was_live and not record.consortium_live():
            self.record.facts.append((self.month, "retracted_by_submitters", record))
        if record.group is not None and not record.live:
            self.record.group_facts.append((self.month, "retracted_by_submitters"))

    def hash_record(self, n: int) -> HashRecord:
        (record,) = [r for (value, _), r in self.record.hashes.items() if value == n]
        return record

    def disagree(self, who: str, n: int, reasons: tuple[str, ...] = ("other",),
                 group: str | None = None) -> DisputeRecord:
        """A verdict that opens a dispute (the scenario only gives such verdicts)."""
        actor = self.actors[who]
        before = Dispute.objects.count()
        actor.submit(actor.feedback(md5(n), "disagree", reasons=list(reasons), share=group or "consortium",
                                    iat=self.iat))
        self.pipeline()
        assert Dispute.objects.count() == before + 1, "this verdict was meant to open a dispute"
        record = self.hash_record(n)
        return self.opened(Dispute.objects.latest("id").pk, record, group,
                           public=group is None and record.group is None and record.consortium_live())

    def suppress(self, n: int) -> DisputeRecord:
        """The suppression list covers the hash: a dispute everyone who sees the hash sees."""
        record = self.hash_record(n)
        (dispute,) = disputes_open(hashes=[Hash.objects.get(value=md5(n)["value"])], reasons=["benign_common_image"])
        return self.opened(dispute.pk, record, None, public=record.group is None and record.consortium_live())

    def opened(self, pk: int, record: HashRecord, audience: str | None, *, public: bool) -> DisputeRecord:
        dispute = DisputeRecord(pk, record, audience, public, self.clock.now)
        self.record.disputes.append(dispute)
        return dispute

    def lift(self, n: int) -> None:
        """An administrator lifts the removal of the consortium's hash of md5(n): nothing is published."""
        removal_lift(hash_id=Hash.objects.get(value=md5(n)["value"], share_group__isnull=True).pk,
                     reason="Reviewed again.")

    def resolve(self, dispute: DisputeRecord, outcome: str, labels: list[str] | None = None) -> None:
        dispute_resolve(dispute_id=dispute.id, outcome=outcome, resolution=f"Resolved: {outcome}.", labels=labels)
        closing = [dispute]
        record = dispute.hash
        if outcome == "removed":
            closing += [d for d in self.record.disputes if d.hash is record and d.outcome is None and d is not dispute]
            if record.group is None and record.consortium_live():
                self.record.facts.append((self.month, "removed_by_dispute", record))
            if record.group is not None and record.live:
                self.record.group_facts.append((self.month, "removed_by_dispute"))
            record.live.clear()
        if outcome == "relabelled":
            record.override = sorted(labels or ())
        for each in closing:
            each.outcome, each.resolved = outcome, self.clock.now


def play(world: World, *, hidden: bool) -> dict[str, Any]:
    """The scenario; returns the disputes by name. Group actions only when `hidden`."""
    at, share, retract, disagree, resolve = world.clock.set, world.share, world.retract, world.disagree, world.resolve
    d: dict[str, DisputeRecord] = {}

    at("2024-12-10T10:00:00")
    first = share("alice", 1, ("graphic-violence",))
    share("watchdog", 2, ("recruitment",))
    if hidden:
        share("alice", 50, ("imminent-threat",), group="trusted")
    at("2024-12-31T23:59:59.999999")
    share("bob", 11, ("glorification",))  # the last instant before the months asked for

    at("2025-01-01T00:00:00")  # the first instant of them
    share("bob", 12, ("recruitment",))
    at("2025-01-05T09:00:00")
    three = share("alice", 3, ("graphic-violence",))
    share("homeoffice", 4, ("glorification", "recruitment"))
    share("watchdog", 5)
    share("bob", 6, ("attacker-manifesto",))
    if hidden:
        group_three = share("bob", 3, ("recruitment", "imminent-threat"), group="trusted")
        share("bob", 51, ("imminent-threat",), group="trusted")
    at("2025-01-08T12:00:00")
    office_three = share("homeoffice", 3, ("glorification",))
    at("2025-01-12T08:00:00")
    retract("alice", first)  # added before the months asked for, retracted within them
    at("2025-01-15T10:00:00")
    d["p1"] = disagree("charlie", 4, ("newsworthy",))
    if hidden:
        d["g1"] = disagree("bob", 4, ("not_tvec",), group="trusted")
        d["g0"] = disagree("bob", 50, ("other",))  # consortium-wide, but on a hash only the group holds
    at("2025-01-20T10:00:00")
    d["p2"] = disagree("watchdog", 6, ("counter_speech",))
    at("2025-01-25T10:00:00")
    d["p3"] = world.suppress(5)

    at("2025-02-02T10:00:00")
    resolve(d["p1"], "upheld")
    at("2025-02-03T09:00:00")
    retract("alice", three)  # homeoffice still shares it
    at("2025-02-04T09:00:00")
    retract("homeoffice", office_three)  # gone for the consortium; the group's statement keeps it live
    if hidden:
        at("2025-02-06T09:00:00")
        d["g4"] = disagree("alice", 3, ("other",))  # alice sees it only through bob's group statement
    at("2025-02-10T10:00:00")
    resolve(d["p2"], "removed")
    at("2025-02-14T11:00:00")
    share("watchdog", 7, ("glorification",))
    share("homeoffice", 8, ("recruitment",))
    if hidden:
        group_52 = share("alice", 52, ("recruitment",), group="trusted")
        share("alice", 8, ("imminent-threat",), group="trusted")
    at("2025-02-16T10:00:00")
    d["p4"] = disagree("charlie", 8, ("wrong_label",))
    at("2025-02-20T12:00:00")
    resolve(d["p3"], "relabelled", ["instruction"])  # the unlabelled hash 5 is now "instruction"
    if hidden:
        resolve(d["g1"], "upheld")
        at("2025-02-25T10:00:00")
        retract("alice", group_52)

    at("2025-03-03T10:00:00")
    world.lift(6)  # a removal holds until an administrator lifts it
    share("charlie", 6, ("graphic-violence",))  # removed in February, shared again
    at("2025-03-05T10:00:00")
    resolve(d["p4"], "removed")
    at("2025-03-06T10:00:00")
    d["p5"] = disagree("charlie", 7, ("newsworthy",))
    at("2025-03-06T16:00:00")
    resolve(d["p5"], "upheld")
    at("2025-03-07T10:00:00")
    d["p6"] = disagree("bob", 7, ("low_quality",))  # still open at the end of March
    at("2025-03-10T10:00:00")
    share("alice", 9, ("recruitment", "glorification"))
    ten = share("alice", 10)
    if hidden:
        share("bob", 53, group="trusted")
        at("2025-03-12T10:00:00")
        d["g3"] = disagree("alice", 51, ("other",), group="trusted")
        at("2025-03-14T10:00:00")
        resolve(d["g3"], "removed")
    at("2025-03-20T10:00:00")
    if hidden:
        d["g2"] = disagree("bob", 9, ("other",), group="trusted")
    d["p7"] = disagree("charlie", 9, ("newsworthy",))
    at("2025-03-25T10:00:01")  # an odd number of seconds: March's median of removals ends in .5
    resolve(d["p7"], "removed")  # closes the group's dispute on it too

    at("2025-04-01T00:00:00")  # the first instant after them
    share("homeoffice", 13, ("instruction",))
    at("2025-04-02T10:00:00")
    retract("alice", ten)
    resolve(d["p6"], "upheld")
    if hidden:
        assert group_three  # bob's group statement on hash 3 is still live
    return d


# --- the true figures, from the record -----------------------------------------------------------

def seconds(values: list[float]) -> int | float | None:
    if not values:
        return None
    median = round(statistics.median(values), 1)
    return int(median) if median == int(median) else median


def expected(record: Record, months: list[str], *, per_member: bool = False) -> dict[str, Any]:
    """The statistics as the API must answer them, but for `generated_at`."""

    def within(bucket: Any, moment_month: str) -> bool:
        return moment_month in months if bucket is ALL else moment_month == bucket

    def labelled(labels: set[str] | frozenset[str], scope: Any) -> bool:
        return True if scope is ALL else (not labels if scope is None else scope in labels)

    public = [d for d in record.disputes if d.public]

    def figures(bucket: Any, scope: Any) -> dict[str, Any]:
        disputes = [d for d in public if labelled(d.hash.current_labels(), scope)]
        resolved = [d for d in disputes if d.resolved is not None and within(bucket, month(d.resolved))]
        spans = {o: [(d.resolved - d.opened).total_seconds() for d in resolved if d.outcome == o] for o in OUTCOMES}
        return {
            "hashes": {name: sum(1 for m, figure, h in record.facts if figure == name and within(bucket, m)
                                 and labelled(h.current_labels(), scope)) for name in HASH_FIGURES},
            "disputes": {
                "opened": sum(1 for d in disputes if within(bucket, month(d.opened))),
                "resolved": {o: len(spans[o]) for o in OUTCOMES},
                "median_resolution_seconds": {"all": seconds([s for o in OUTCOMES for s in spans[o]]),
                                              **{o: seconds(spans[o]) for o in OUTCOMES}},
            },
            "contributions": {kind: sum(1 for m, k, labels, _ in record.contributions if k == kind
                                        and within(bucket, m) and labelled(labels, scope)) for kind in KINDS},
        }

    hidden = [d for d in record.disputes if not d.public]

    def group_only(bucket: Any) -> dict[str, Any]:
        return {
            "contributions": sum(1 for m in record.group_contributions if within(bucket, m)),
            "hashes": {name: sum(1 for m, figure in record.group_facts if figure == name and within(bucket, m))
                       for name in HASH_FIGURES},
            "disputes": {"opened": sum(1 for d in hidden if within(bucket, month(d.opened))),
                         "resolved": sum(1 for d in hidden if d.resolved and within(bucket, month(d.resolved)))},
        }

    def members(bucket: Any) -> list[dict[str, Any]]:
        counts: dict[tuple[str, str], int] = {}
        for m, kind, _, slug in record.contributions:
            if within(bucket, m):
                counts[(slug, kind)] = counts.get((slug, kind), 0) + 1
        return [{"member": slug, "kind": kind, "contributions": n} for (slug, kind), n in sorted(counts.items())]

    slugs = sorted(
        {label for m, _, h in record.facts if m in months for label in h.current_labels()}
        | {label for d in public if month(d.opened) in months or d.resolved and month(d.resolved) in months
           for label in d.hash.current_labels()}
        | {label for m, _, labels, _ in record.contributions if m in months for label in labels}
    )

    def block(bucket: Any) -> dict[str, Any]:
        body = {"all_labels": figures(bucket, ALL), "by_label": {slug: figures(bucket, slug) for slug in slugs},
                "unlabelled": figures(bucket, None), "group_only": group_only(bucket)}
        if per_member:
            body["members"] = members(bucket)
        return body

    return {
        "period": "month", "from": months[0], "to": months[-1],
        "labels": [{"slug": slug, "name": NAMES[slug]} for slug in slugs],
        "periods": [{"period": m, **block(m)} for m in months],
        "total": block(ALL),
    }
