"""Dedupe and publish: exact duplicates corroborate, retractions withdraw, the feed tells it all."""

from __future__ import annotations

from hashes.models import Corroboration, Hash, Incident, Statement
from tests.factories import BASE_PDQ, flip, md5, pdq, pdq_value, vpdq


def test_an_exact_duplicate_corroborates_the_existing_hash(alice, homeoffice, bob, pipeline):
    alice.submit(alice.statement([md5(1)], labels=["glorification"]))
    pipeline()
    homeoffice.submit(homeoffice.statement([md5(1)], labels=["graphic-violence"]))
    pipeline()

    assert Hash.objects.count() == 1
    events = bob.feed()["events"]
    assert [e["type"] for e in events] == ["hash.added", "hash.updated"]
    latest = events[-1]["hash"]
    assert latest["submitters"] == [{"member": "alice", "kind": "platform"}, {"member": "homeoffice", "kind": "government"}]
    assert latest["corroboration_count"] == 2
    assert latest["labels"] == ["glorification", "graphic-violence"]
    assert len(latest["statements"]) == 2
    assert events[0]["hash"]["id"] == latest["id"]


def test_duplicates_within_one_batch_make_one_hash(alice, bob, pipeline):
    alice.submit(alice.statement([md5(5)]), alice.statement([md5(5)]))
    bob.submit(bob.statement([md5(5)]))
    pipeline()

    assert Hash.objects.count() == 1
    assert Corroboration.objects.count() == 3


def test_a_signal_given_twice_in_one_statement_corroborates_once(alice, bob, pipeline):
    alice.submit(alice.statement([md5(1), md5(1), pdq_value(BASE_PDQ), pdq_value(flip(BASE_PDQ, range(2)))]))
    pipeline()

    assert (Hash.objects.count(), Corroboration.objects.count()) == (2, 2)
    assert [e["type"] for e in bob.feed()["events"]] == ["hash.added", "hash.added"]

def test_the_same_vpdq_video_is_one_hash(alice, bob, pipeline):
    alice.submit(alice.statement([vpdq(1, 2, 3)], content_type="video"))
    bob.submit(bob.statement([vpdq(1, 2, 3)], content_type="video"))
    pipeline()

    video = Hash.objects.get()
    assert video.corroborations.count() == 2
    assert [f["pdq"] for f in video.frames] == [f"{n:064x}" for n in (1, 2, 3)]


def test_a_statement_with_several_signals_creates_each_hash(alice, pipeline):
    alice.submit(alice.statement([md5(1), pdq(2)]))
    pipeline()

    assert set(Hash.objects.values_list("signal_type", flat=True)) == {"md5", "pdq"}
    assert Hash.objects.values("cluster").distinct().count() == 2


def test_a_retraction_removes_only_that_members_corroboration(alice, bob, charlie, pipeline):
    alice.submit(alice.statement([md5(1)], jti="a1"))
    bob.submit(bob.statement([md5(1)]))
    pipeline()

    alice.submit(alice.retraction("a1"))
    pipeline()

    events = charlie.feed()["events"]
    assert [e["type"] for e in events] == ["hash.added", "hash.updated", "hash.updated"]
    assert events[-1]["hash"]["submitters"] == [{"member": "bob", "kind": "platform"}]
    assert events[-1]["hash"]["state"] == "active"
    assert Statement.objects.get(jti="a1").retracted_at is not None


def test_a_retracted_statements_labels_leave_the_hash(alice, bob, charlie, pipeline):
    alice.submit(alice.statement([md5(1)], labels=["recruitment"], jti="a1"))
    bob.submit(bob.statement([md5(1)], labels=["glorification"]))
    pipeline()

    alice.submit(alice.retraction("a1"))
    pipeline()

    assert charlie.feed()["events"][-1]["hash"]["labels"] == ["glorification"]
    assert charlie.api.get(f"/api/v1/hashes/{Hash.objects.get().pk}/").json()["labels"] == ["glorification"]

def test_a_hash_with_no_corroboration_left_is_retracted(alice, bob, pipeline):
    alice.submit(alice.statement([md5(1), md5(2)], jti="a1"))
    pipeline()

    alice.submit(alice.retraction("a1", reason="wrong upload"))
    pipeline()

    events = bob.feed()["events"]
    assert [e["type"] for e in events[-2:]] == ["hash.retracted", "hash.retracted"]
    assert events[-1]["hash"]["state"] == "retracted"
    assert events[-1]["cause"]["member"] == "alice"
    assert set(Hash.objects.values_list("state", flat=True)) == {"retracted"}
    hash_id = events[-1]["hash"]["id"]
    detail = bob.api.get(f"/api/v1/hashes/{hash_id}/").json()
    assert detail["state"] == "retracted"
    assert detail["corroborations"][0]["retracted_at"] is not None


def test_a_retracted_hash_comes_back_when_someone_submits_it_again(alice, bob, pipeline):
    alice.submit(alice.statement([md5(1)], jti="a1"))
    pipeline()
    alice.submit(alice.retraction("a1"))
    pipeline()

    bob.submit(bob.statement([md5(1)]))
    pipeline()

    assert [e["type"] for e in bob.feed()["events"]] == ["hash.added", "hash.retracted", "hash.added"]
    assert Hash.objects.get().state == "active"


def test_a_retraction_submitted_with_its_target_waits_for_it(alice, pipeline):
    alice.submit(alice.statement([md5(1)], jti="a1"))
    alice.submit(alice.retraction("a1"))  # verified before its target is published
    pipeline()

    assert Hash.objects.get().state == "retracted"
    assert set(Statement.objects.values_list("state", flat=True)) == {"published"}


def test_a_member_cannot_retract_another_members_statement(alice, bob, pipeline):
    alice.submit(alice.statement([md5(1)], jti="a1"))
    pipeline()

    bob.submit(bob.retraction("a1"))
    pipeline()

    retraction = Statement.objects.get(member=bob.member)
    assert (retraction.state, retraction.rejection_code) == ("rejected", "retract_target_not_found")
    assert Hash.objects.get().state == "active"


def test_retracting_twice_is_rejected_the_second_time(alice, pipeline):
    alice.submit(alice.statement([md5(1)], jti="a1"))
    pipeline()
    alice.submit(alice.retraction("a1", jti="r1"))
    pipeline()

    alice.submit(alice.retraction("a1", jti="r2"))
    pipeline()

    assert Statement.objects.get(jti="r2").rejection_code == "already_retracted"


def test_a_retraction_needs_a_reason_and_a_hash_statement_target(alice, pipeline):
    alice.submit(alice.statement([md5(1)], jti="a1"))
    pipeline()
    alice.submit(alice.retraction("a1", reason=" ", jti="r1"))
    alice.submit(alice.retraction("a1", jti="r2"))
    pipeline()
    alice.submit(alice.retraction("r2", jti="r3"))
    pipeline()

    codes = dict(Statement.objects.filter(kind="retract").values_list("jti", "rejection_code"))
    assert codes == {"r1": "reason_invalid", "r2": "", "r3": "retract_target_invalid"}


def test_statements_for_an_active_incident_are_published_first(alice, bob, pipeline):
    Incident.objects.create(slug="christchurch", name="Christchurch attack")
    alice.submit(*[alice.statement([md5(n)]) for n in range(1, 6)])
    body = bob.submit(bob.statement([md5(99)], incident="christchurch", labels=["content-incident"]))

    assert Statement.objects.get(id=body["accepted"][0]["id"]).priority is False  # not on the envelope's word
    pipeline()

    assert Statement.objects.get(id=body["accepted"][0]["id"]).priority is True
    events = bob.feed()["events"]
    assert events[0]["hash"]["value"] == f"{99:032x}"


def test_a_verified_incident_statement_is_published_before_a_verified_backlog(alice, bob):
    from hashes.services import publishing, verification

    Incident.objects.create(slug="christchurch", name="Christchurch attack")
    alice.submit(*[alice.statement([md5(n)]) for n in range(1, 21)])
    verification.statements_verify(ids=Statement.objects.values_list("id", flat=True))
    body = bob.submit(bob.statement([md5(99)], incident="christchurch"))
    verification.statements_verify(ids=[body["accepted"][0]["id"]])

    publishing.publish_batch(limit=1)

    (first,) = bob.feed()["events"]
    assert first["hash"]["value"] == f"{99:032x}"


def test_an_unsigned_statement_naming_an_active_incident_never_gets_priority(alice, bob, pipeline):
    from tests.factories import forge

    Incident.objects.create(slug="christchurch", name="Christchurch attack")
    alice.submit(*[alice.statement([md5(n)]) for n in range(1, 6)])
    payload = {"iss": "bob", "iat": 1700000000, "jti": "junk", "kind": "hash", "content_type": "photo",
               "signals": [md5(99)], "incident": "christchurch"}
    body = bob.submit(forge({"alg": "Ed25519", "kid": bob.key.kid, "typ": "hash-statement+jws"}, payload))
    forged = Statement.objects.get(id=body["accepted"][0]["id"])

    assert forged.priority is False
    pipeline()

    forged.refresh_from_db()
    assert (forged.state, forged.rejection_code, forged.priority) == ("rejected", "signature_invalid", False)
    assert Statement.objects.filter(priority=True).count() == 0
    assert [e["hash"]["value"] for e in bob.feed()["events"]] == [f"{n:032x}" for n in range(1, 6)]


def test_the_incident_fast_lane_for_unverified_statements_is_bounded_per_member(
    alice, bob, settings, monkeypatch, django_capture_on_commit_callbacks,
):
    from hashes import tasks

    settings.INCIDENT_FAST_LANE_PER_MINUTE = 3
    settings.VERIFY_CHUNK_SIZE = 1
    queued: list[tuple[str, str]] = []
    monkeypatch.setattr(tasks.verify_statements, "apply_async",
                        lambda args, queue="verify", **kw: queued.extend((i, queue) for i in args[0]))
    Incident.objects.create(slug="christchurch", name="Christchurch attack")

    with django_capture_on_commit_callbacks(execute=True):
        first = alice.submit(*[alice.statement([md5(n)], incident="christchurch") for n in range(2)])
        second = alice.submit(*[alice.statement([md5(n)], incident="christchurch") for n in range(2, 5)])
        ordinary = alice.submit(alice.statement([md5(9)]))
        others = bob.submit(bob.statement([md5(10)], incident="christchurch"))

    lanes = dict(queued)
    ids = [a["id"] for body in (first, second) for a in body["accepted"]]
    assert [lanes[i] for i in ids] == ["priority"] * 3 + ["verify"] * 2
    assert lanes[ordinary["accepted"][0]["id"]] == "verify"
    assert lanes[others["accepted"][0]["id"]] == "priority"  # alice's use of the lane takes nothing from bob's


def test_two_retractions_of_one_statement_in_one_batch_settle_once(alice, pipeline):
    alice.submit(alice.statement([md5(1)], jti="a1"))
    pipeline()
    alice.submit(alice.retraction("a1", jti="r1"), alice.retraction("a1", jti="r2"))
    pipeline()

    codes = dict(Statement.objects.filter(kind="retract").values_list("jti", "rejection_code"))
    assert sorted(codes.values()) == ["", "already_retracted"]
    assert Hash.objects.get().state == "retracted"


def test_a_retraction_published_after_its_target_takes_the_targets_sharing(alice, bob, charlie, trusted_group, pipeline):
    alice.submit(alice.statement([md5(1)], jti="g1", share="trusted"))
    alice.submit(alice.retraction("g1", jti="r1"))  # verified while its target was still unverified
    pipeline()

    retraction = alice.api.get(f"/api/v1/statements/{Statement.objects.get(jti='r1').id}/").json()
    assert retraction["state"] == "published" and retraction["share"] == "trusted"
    assert charlie.feed()["events"] == []
    assert [e["type"] for e in bob.feed()["events"]] == ["hash.added", "hash.retracted"]


def test_a_statement_received_while_its_incident_was_active_survives_the_close(alice, pipeline):
    from hashes.services.taxonomy import incident_close

    incident = Incident.objects.create(slug="attack", name="Attack")
    body = alice.submit(alice.statement([md5(1)], incident="attack"))
    incident_close(incident=incident)
    late = alice.submit(alice.statement([md5(2)], incident="attack"))
    pipeline()

    assert Statement.objects.get(id=body["accepted"][0]["id"]).state == "published"
    assert Statement.objects.get(id=late["accepted"][0]["id"]).rejection_code == "incident_closed"


def test_the_sweep_requeues_a_statement_whose_message_was_lost_once_per_window(alice):
    from datetime import timedelta

    from django.utils import timezone

    from hashes.tasks import sweep

    body = alice.submit(alice.statement([md5(1)]))  # its queue message never fires in this test
    statement = Statement.objects.get(id=body["accepted"][0]["id"])
    assert sweep(stale_after_seconds=30)["requeued"] == 0  # not stale yet
    Statement.objects.filter(id=statement.id).update(queued_at=timezone.now() - timedelta(seconds=31))

    assert sweep(stale_after_seconds=30)["requeued"] == 1
    statement.refresh_from_db()
    assert statement.state == "published"  # the worker (eager here) verified and published it
    assert sweep(stale_after_seconds=30)["requeued"] == 0


def test_event_times_never_go_back_along_seq_when_a_publisher_clock_lags(alice, bob, pipeline, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from hashes.models import Event

    alice.submit(alice.statement([md5(1)]))
    pipeline()
    first = Event.objects.get().occurred_at
    lagging = first - timedelta(milliseconds=40)  # a second host whose clock is behind
    monkeypatch.setattr(timezone, "now", lambda: lagging)
    bob.submit(bob.statement([md5(2)]), bob.statement([md5(3)]))
    pipeline()

    times = list(Event.objects.order_by("seq").values_list("occurred_at", flat=True))
    assert times == [first, first, first]
    assert bob.feed()["events"][-1]["occurred_at"] == first.isoformat()
