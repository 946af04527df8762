"""Non-interference (DESIGN.md, Security rules), proved differentially: the same scenario that charlie
can see runs twice, the second time with the "trusted" group's statements interleaved (the same
values, near duplicates, a bridge between two families, retractions, some in the very batches of the
visible ones). Everything charlie can read (feed, hash detail, match, webhook bodies, errors) must
be identical, up to a consistent renaming of opaque ids (hashes, clusters, events) and of seqs and
times, which only keep their order."""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from django.conf import settings

from consortium.server_keys import server_jwks
from consortium_client import jws
from consortium_client.keys import load_public_jwk
from distribution import rendering
from hashes.models import Dispute, Event, Hash, Statement
from hashes.services.disputes import dispute_resolve
from hashes.visibility import Viewer
from tests.factories import BASE_PDQ, flip, md5, pdq_value
from tests.published import reset_published

IAT = 1_790_000_000  # fixed, so that both runs sign byte-identical statements
FAR = flip(BASE_PDQ, range(40))  # another family, 40 bits away
BRIDGE = flip(BASE_PDQ, range(20))  # 20 bits from both families
VIDEO = [{"i": i, "t": float(i), "pdq": flip(FAR, range(60 + i, 62 + i)), "q": 90} for i in range(4)]
VIDEO_RETIMED = [{**frame, "t": frame["t"] * 2, "q": 70} for frame in VIDEO]
VIDEO_REORDERED = [{**frame, "pdq": VIDEO[-1 - n]["pdq"]} for n, frame in enumerate(VIDEO)]  # a duplicate
QUERIES = [md5(1), md5(2), md5(3), pdq_value(BASE_PDQ), pdq_value(FAR), pdq_value(BRIDGE),
           pdq_value(flip(BASE_PDQ, range(3))), {"type": "vpdq", "frames": VIDEO}]


def scenario(actors: dict[str, Any], pipeline: Callable[[], None], *, hidden: bool) -> None:
    alice, bob, charlie, homeoffice = (actors[k] for k in ("alice", "bob", "charlie", "homeoffice"))

    def sign(actor, signals, jti, **fields):
        return actor.statement(signals, jti=jti, iat=IAT, **fields)

    def group(jti, signals):  # alice, shared with "trusted" only: charlie may never see these
        return [sign(alice, signals, jti, share="trusted")] if hidden else []

    def step(*batches: tuple[Any, list[str]]) -> None:
        for actor, statements in batches:
            if statements:
                actor.submit(*statements)
        pipeline()

    # The group holds the values first: same MD5s, the same PDQ, the same video with other times.
    step((alice, group("g1", [md5(1), md5(2)]) + group("g2", [pdq_value(BASE_PDQ)])
          + group("g3", [{"type": "vpdq", "frames": VIDEO_RETIMED}])))
    step((homeoffice, [sign(homeoffice, [md5(1), pdq_value(BASE_PDQ)], "h1"),
                       sign(homeoffice, [{"type": "vpdq", "frames": VIDEO}], "h2")]))
    # Near duplicates in the group (3 and 5 bits) before charlie's own 5-bit variant; the group
    # corroborates the consortium's video, keeping it live after the Home Office retracts it.
    step((alice, group("g4", [pdq_value(flip(BASE_PDQ, range(3)))]) + group("g5", [pdq_value(flip(BASE_PDQ, range(5)))])
          + group("g9", [{"type": "vpdq", "frames": VIDEO}])))
    step((charlie, [sign(charlie, [md5(1), pdq_value(flip(BASE_PDQ, range(5)))], "c1"),
                    sign(charlie, [pdq_value(flip(BASE_PDQ, range(100, 120)))], "c2")]))
    # A group bridge between two consortium families, then the second family arrives.
    step((alice, group("g6", [pdq_value(BRIDGE)]) + group("g7", [pdq_value(FAR)])))
    step((bob, [sign(bob, [pdq_value(FAR)], "b1"), sign(bob, [pdq_value(flip(FAR, range(200, 215)))], "b2")]),
         )
    # Group and consortium statements in one batch: the same MD5, and a group PDQ 4 bits from bob's
    # (and far from every consortium hash). The group also corroborates charlie's c2 exactly.
    step((alice, group("g8", [md5(3), pdq_value(flip(FAR, range(100, 140)))])
          + group("g10", [pdq_value(flip(BASE_PDQ, range(100, 120)))])),
         (bob, [sign(bob, [md5(3), pdq_value(flip(FAR, range(100, 136)))], "b3")]))
    # charlie retracts c2, which the group's statement keeps live; then a 2-bit variant of it arrives.
    step((charlie, [charlie.retraction("c2", jti="cr2", iat=IAT)]))
    step((homeoffice, [sign(homeoffice, [pdq_value(flip(BASE_PDQ, range(100, 118)))], "h3")]))
    # Retractions on both sides; the consortium's bridge now merges the two families for everyone.
    step((alice, [alice.retraction("g2", jti="gr2", iat=IAT)] if hidden else []),
         (homeoffice, [homeoffice.retraction("h1", jti="hr1", iat=IAT),
                       homeoffice.retraction("h2", jti="hr2", iat=IAT)]))
    step((charlie, [sign(charlie, [{"type": "vpdq", "frames": VIDEO_REORDERED}], "c4")]))
    step((charlie, [sign(charlie, [pdq_value(BRIDGE), md5(2)], "c3")]))
    step((alice, [alice.retraction("g1", jti="gr1", iat=IAT)] if hidden else []),
         (charlie, [charlie.retraction("c3", jti="cr3", iat=IAT)]))

    # Feedback and disputes. The group's verdicts (one opens a dispute on charlie's MD5) and its
    # dispute's resolution must not show; the Home Office's consortium-wide dispute on the same hash
    # opens as if the group's did not exist, and its removal reaches charlie.
    def verdict(actor, target, kind, jti, **fields):
        return actor.feedback(target, kind, jti=jti, iat=IAT, **fields)

    def hidden_verdict(actor, target, kind, jti, **fields):
        return [verdict(actor, target, kind, jti, share="trusted", **fields)] if hidden else []

    step((bob, hidden_verdict(bob, md5(1), "disagree", "gf1", reasons=["newsworthy"])
          + hidden_verdict(bob, pdq_value(FAR), "seen", "gf2")),
         (alice, hidden_verdict(alice, pdq_value(FAR), "agree", "gf3")))
    step((homeoffice, [verdict(homeoffice, md5(1), "disagree", "hf1", reasons=["counter_speech"])]),
         (charlie, [verdict(charlie, pdq_value(FAR), "seen", "cf1"),
                    verdict(charlie, pdq_value(flip(FAR, range(100, 140))), "seen", "cf2")]))  # the group's value only
    if hidden:
        group_dispute = Dispute.objects.get(share_group__isnull=False)
        dispute_resolve(dispute_id=group_dispute.pk, outcome="upheld", resolution="the group keeps it")
    step((bob, hidden_verdict(bob, md5(1), "seen", "gf4")))
    consortium_dispute = Dispute.objects.get(member=homeoffice.member)
    dispute_resolve(dispute_id=consortium_dispute.pk, outcome="removed", resolution="counter-speech")
    step((charlie, [verdict(charlie, md5(1), "agree", "cf3"), charlie.retraction("cf1", jti="cfr1", iat=IAT)]))


def server_statements_opened(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The server signs a removal when it happens, so its `iat` and random `jti` differ between runs:
    compare what it says instead (its payload without them), after checking its signature."""
    keys = {k["kid"]: load_public_jwk(k) for k in server_jwks()["keys"]}
    for event in events:
        cause = event.get("cause") or {}
        if cause.get("member") == settings.SERVER_ISSUER:
            parsed = jws.parse(cause["statement"])
            assert jws.verify_signature(parsed, keys[parsed.kid])
            cause["statement"] = {k: v for k, v in parsed.payload.items() if k not in ("iat", "jti")}
            cause["jti"] = "server"
    return events


def observe(charlie) -> dict[str, Any]:
    """Everything charlie can read."""
    feed = charlie.feed()["events"]
    ids = sorted({e["hash"]["id"] for e in feed})
    details = {i: charlie.api.get(f"/api/v1/hashes/{i}/").json() for i in ids}
    match = charlie.api.post("/api/v1/match/", {"signals": QUERIES}, format="json").json()
    viewer = Viewer.for_member(charlie.member)
    rendering.clear_caches()
    head = Event.objects.order_by("-seq").values_list("seq", flat=True).first()
    batch = rendering.range_batch(viewer, rendering.Filters(), after=0, through=head)
    webhook = json.loads(rendering.events_body(lane="main", events=batch.events))
    missing = charlie.api.get("/api/v1/hashes/999999/").json()
    disputes = charlie.api.get("/api/v1/disputes/").json()
    mine = list(Statement.objects.filter(member=charlie.member).order_by("jti").values_list("jti", "state", "rejection_code"))
    server_statements_opened(feed)
    server_statements_opened(webhook["data"]["events"])
    return {"feed": feed, "details": details, "match": match, "webhook": webhook["data"], "missing": missing,
            "disputes": disputes, "statements": mine}


def hidden_hash_errors(charlie, seen: set[int]) -> set[str]:
    """What charlie gets for every hash it never saw: the same answer as for one that does not exist."""
    answers = set()
    for hash_id in Hash.objects.exclude(pk__in=seen).values_list("pk", flat=True):
        response = charlie.api.get(f"/api/v1/hashes/{hash_id}/")
        answers.add(f"{response.status_code} {response.json()['error']['code']}")
    return answers


ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT")


def normalise(data: Any) -> Any:
    """Opaque ids renamed in order of first appearance, per kind; seqs and times replaced by their rank."""
    names: dict[tuple[str, Any], str] = {}
    seqs: set[int] = set()
    times: set[str] = set()

    def collect(node: Any, key: str | None = None) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                collect(v, k)
        elif isinstance(node, list):
            for v in node:
                collect(v, key)
        elif key in ("seq", "first_seq", "last_seq", "next_after") and isinstance(node, int):
            seqs.add(node)
        elif isinstance(node, str) and ISO_TIME.match(node):
            times.add(node)

    collect(data)
    seq_rank = {s: n for n, s in enumerate(sorted(seqs))}
    time_rank = {t: f"t{n}" for n, t in enumerate(sorted(times))}

    def rename(kind: str, value: Any) -> str:
        return names.setdefault((kind, value), f"{kind}{sum(1 for k in names if k[0] == kind)}")

    def walk(node: Any, key: str | None = None, parent: str | None = None) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, k, key) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, key, parent) for v in node]
        if isinstance(node, str) and ISO_TIME.match(node):
            return time_rank[node]
        if key in ("seq", "first_seq", "last_seq", "next_after") and isinstance(node, int):
            return seq_rank[node]
        if key in ("cluster", "previous_cluster"):
            return rename("cluster", node)
        if key == "id" and parent in ("hash", "details") or key == "hash" and isinstance(node, int):
            return rename("hash", node)
        if key in ("id", "statement_id"):
            return rename(key, node)
        if key == "superseded_by" and node is not None:  # a statement id
            return rename("statement_id", node)
        return node

    # Detail keys are hash ids too.
    data = {**data, "details": [{"id": k, **v} for k, v in data["details"].items()]}
    return walk(data)


def reset() -> None:
    reset_published()


def test_what_charlie_sees_is_the_same_whether_or_not_the_group_shares(
    alice, bob, charlie, homeoffice, trusted_group, pipeline,
):
    actors = {"alice": alice, "bob": bob, "charlie": charlie, "homeoffice": homeoffice}
    scenario(actors, pipeline, hidden=False)
    alone = observe(charlie)
    reset()
    scenario(actors, pipeline, hidden=True)
    interleaved = observe(charlie)

    # The group did share (13 statements, all published but gr2: g4 and g5, near duplicates on g2's
    # group hash, superseded g2, so retracting it is refused).
    assert Statement.objects.filter(member=alice.member, state="published").count() == 12
    assert Statement.objects.get(member=alice.member, jti="gr2").rejection_code == "statement_superseded"
    assert Dispute.objects.filter(share_group__isnull=False, state="upheld").exists()
    assert dict((jti, code) for jti, _, code in alone["statements"])["cf2"] == "target_not_found"
    assert any(e["hash"]["dispute"] and e["hash"]["dispute"]["state"] == "removed" for e in alone["feed"])
    assert any(e["hash"]["feedback"]["seen"] == 1 for e in alone["feed"])
    assert len(alone["feed"]) > 10 and any("previous_cluster" in e["hash"] for e in alone["feed"])
    assert normalise(interleaved) == normalise(alone)
    # Hash ids are integers: they must not betray older hidden hashes by their order either.
    first_seen = list(dict.fromkeys(e["hash"]["id"] for e in interleaved["feed"]))
    assert first_seen == sorted(first_seen)
    assert hidden_hash_errors(charlie, set(first_seen)) == {"404 not_found"}
