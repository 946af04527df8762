"""What a subscriber receives, checked by a real receiver on 127.0.0.1 that verifies every delivery
with `standardwebhooks` (v1) and the member-side verifier (v1a): every visible event, in order, with
no gap, nothing another sharing group or a filter excludes; and a worker dying at any point costs a
repeat, never a gap. Time is the test's (see helpers.Clock)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from distribution.models import Delivery, Subscription
from distribution.services import delivering
from hashes.models import Event, Incident, Statement
from members.models import Member
from members.services import member_set_status
from tests.factories import md5, pdq, sha256

from .helpers import advance_to_next_attempt, drive, feed_events, in_flight, subscribe


def seqs(events: list[dict]) -> list[int]:
    return [event["seq"] for event in events]


def test_every_visible_event_arrives_in_order_with_no_gap_and_verifies_with_v1_and_v1a(
    alice, bob, receiver, clock, pipeline, settings,
):
    settings.WEBHOOK_BATCH_SIZE = 40
    subscription = subscribe(bob, receiver, after=0)
    alice.submit(*[alice.statement([md5(n)], labels=["glorification"]) for n in range(100)])
    pipeline()

    drive(clock)

    assert receiver.received and all(r.v1 and r.v1a for r in receiver.received)
    assert [r.status for r in receiver.received] == [200, 200, 200]
    assert len({r.webhook_id for r in receiver.received}) == 3
    assert receiver.events() == feed_events(bob)
    assert seqs(receiver.events()) == list(range(1, 101))
    first = receiver.received[0].body
    assert first["type"] == "hash.events" and first["timestamp"]
    assert (first["data"]["first_seq"], first["data"]["last_seq"]) == (1, 40)
    # The original signed statements travel with the events, byte for byte.
    carried = {raw for event in receiver.events() for raw in event["hash"]["statements"]}
    assert carried == set(Statement.objects.values_list("raw", flat=True))
    assert Subscription.objects.get(pk=subscription["id"]).cursor == 100


def test_nothing_from_another_sharing_group_or_excluded_by_a_filter_ever_arrives(
    alice, bob, charlie, homeoffice, trusted_group, receiver_factory, clock, pipeline,
):
    Incident.objects.create(slug="christchurch", name="Christchurch")
    inboxes = {name: receiver_factory() for name in ("bob", "charlie", "pdq_only", "labelled", "corroborated",
                                                     "incidents", "no_retractions")}
    subscribe(bob, inboxes["bob"], after=0)
    subscribe(charlie, inboxes["charlie"], after=0)
    subscribe(charlie, inboxes["pdq_only"], after=0, filters={"signal_types": ["pdq"]})
    subscribe(charlie, inboxes["labelled"], after=0, filters={"labels": ["recruitment"]})
    subscribe(charlie, inboxes["corroborated"], after=0, filters={"min_corroboration": 2})
    subscribe(charlie, inboxes["incidents"], after=0, filters={"incident_only": True})
    subscribe(charlie, inboxes["no_retractions"], after=0, filters={"include_retractions": False})

    group_only = alice.statement([md5(1), sha256(1)], share="trusted", labels=["recruitment"], jti="secret")
    alice.submit(group_only)
    alice.submit(alice.statement([pdq(2)], labels=["recruitment"], jti="pdq2"))
    homeoffice.submit(homeoffice.statement([md5(3)], labels=["glorification"], incident="christchurch"))
    pipeline()
    bob.submit(bob.statement([md5(3)]), bob.statement([md5(1)], share="trusted"))
    pipeline()
    alice.submit(alice.retraction("pdq2"), alice.retraction("secret"))
    pipeline()

    drive(clock)

    head = Event.objects.count()
    charlie_feed = feed_events(charlie)
    assert inboxes["bob"].events() == feed_events(bob)
    assert inboxes["charlie"].events() == charlie_feed
    assert seqs(inboxes["charlie"].events()) != seqs(inboxes["bob"].events())
    assert inboxes["pdq_only"].events() == [e for e in charlie_feed if e["hash"]["signal_type"] == "pdq"]
    assert [e["type"] for e in inboxes["labelled"].events()] == ["hash.added", "hash.retracted"]
    assert [e["hash"]["value"] for e in inboxes["corroborated"].events()] == [md5(3)["value"]]
    assert [e["hash"]["value"] for e in inboxes["incidents"].events()] == [md5(3)["value"]] * 2
    assert inboxes["no_retractions"].events() == [e for e in charlie_feed if e["type"] != "hash.retracted"]
    # Not a byte of the group's statements reached anyone outside it, on any lane.
    for name in ("charlie", "pdq_only", "labelled", "corroborated", "incidents", "no_retractions"):
        assert all(group_only.encode() not in r.raw for r in inboxes[name].received)
        assert all(r.v1 and r.v1a for r in inboxes[name].received)
    assert any(group_only.encode() in r.raw for r in inboxes["bob"].received)
    # Filtered-out and invisible events still move every cursor to the head.
    assert set(Subscription.objects.values_list("cursor", flat=True)) == {head}


def test_a_batch_over_the_byte_bound_still_carries_one_event_and_skips_none(
    alice, bob, receiver, clock, pipeline, settings,
):
    settings.WEBHOOK_MAX_BATCH_BYTES = 1
    subscribe(bob, receiver, after=0)
    alice.submit(*[alice.statement([md5(n)]) for n in range(3)])
    pipeline()

    drive(clock)

    assert [seqs(r.events) for r in receiver.batches()] == [[1], [2], [3]]

def test_events_filtered_out_move_the_cursor_without_any_delivery(alice, bob, receiver, clock, pipeline):
    subscription = subscribe(bob, receiver, after=0, filters={"signal_types": ["vpdq"]})
    alice.submit(*[alice.statement([md5(n)]) for n in range(30)])
    pipeline()

    drive(clock)

    assert receiver.received == []
    assert Delivery.objects.count() == 0
    assert Subscription.objects.get(pk=subscription["id"]).cursor == 30


def test_a_new_subscription_starts_at_the_head_unless_told_where(alice, bob, receiver_factory, clock, pipeline):
    alice.submit(*[alice.statement([md5(n)]) for n in range(5)])
    pipeline()
    from_now, from_three = receiver_factory(), receiver_factory()
    subscribe(bob, from_now)
    subscribe(bob, from_three, after=3)
    alice.submit(alice.statement([md5(99)]))
    pipeline()

    drive(clock)

    assert seqs(from_now.events()) == [6]
    assert seqs(from_three.events()) == [4, 5, 6]


def test_a_worker_killed_after_claiming_a_batch_leaves_it_due_again_with_the_same_webhook_id(
    alice, bob, receiver, clock, pipeline, settings,
):
    subscription = subscribe(bob, receiver, after=0)
    alice.submit(*[alice.statement([md5(n)]) for n in range(10)])
    pipeline()
    (job,) = delivering.claim([subscription["id"]], now=clock()).jobs  # ...and the worker dies here

    drive(clock)
    assert receiver.received == []  # claimed: nobody else sends it meanwhile

    clock.advance(settings.WEBHOOK_CLAIM_SECONDS)
    drive(clock)

    assert [r.webhook_id for r in receiver.received] == [job.webhook_id]
    assert seqs(receiver.events()) == list(range(1, 11))


def test_a_worker_killed_after_sending_but_before_recording_causes_a_repeat_never_a_gap(
    alice, bob, receiver, clock, pipeline, settings,
):
    subscription = subscribe(bob, receiver, after=0)
    alice.submit(*[alice.statement([md5(n)]) for n in range(10)])
    pipeline()
    (job,) = delivering.claim([subscription["id"]], now=clock()).jobs
    delivering.send(job, now=clock())  # acknowledged by the receiver; the worker dies before recording it
    alice.submit(alice.statement([md5(10)]))
    pipeline()

    clock.advance(settings.WEBHOOK_CLAIM_SECONDS)
    drive(clock)

    ids = [r.webhook_id for r in receiver.received]
    assert ids[:2] == [job.webhook_id, job.webhook_id] and len(ids) == 3
    assert receiver.received[0].raw == receiver.received[1].raw
    assert seqs(receiver.events()) == list(range(1, 12))  # deduplicated by webhook-id, as a receiver does


def test_a_worker_presumed_dead_that_finishes_late_changes_nothing(alice, bob, receiver, clock, pipeline, settings):
    subscription = subscribe(bob, receiver, after=0)
    alice.submit(*[alice.statement([md5(n)]) for n in range(3)])
    pipeline()
    (slow,) = delivering.claim([subscription["id"]], now=clock()).jobs
    clock.advance(settings.WEBHOOK_CLAIM_SECONDS)
    drive(clock)  # another worker takes the batch over and delivers it
    receiver.behaviour.status = 500

    outcomes = delivering.complete([(slow, delivering.send(slow, now=clock()), clock())])

    assert outcomes == ["stale"]
    delivered = Delivery.objects.get()
    assert (delivered.state, delivered.failures) == ("delivered", 0)
    assert Subscription.objects.get(pk=subscription["id"]).last_error_at is None


def test_one_batch_at_a_time_is_in_flight_per_subscription(alice, bob, receiver, clock, pipeline, settings):
    settings.WEBHOOK_BATCH_SIZE = 2
    subscription = subscribe(bob, receiver, after=0)
    alice.submit(*[alice.statement([md5(n)]) for n in range(6)])
    pipeline()

    first = delivering.claim([subscription["id"]], now=clock())
    second = delivering.claim([subscription["id"]], now=clock())

    assert len(first.jobs) == 1 and second.jobs == []
    with pytest.raises(IntegrityError), transaction.atomic():
        Delivery.objects.create(subscription_id=subscription["id"], lane="main", webhook_id="msg_second",
                                after_seq=2, through_seq=4)


def test_a_replay_sends_everything_again_from_the_given_seq(alice, bob, receiver, clock, pipeline):
    subscription = subscribe(bob, receiver, after=0)
    alice.submit(*[alice.statement([md5(n)]) for n in range(8)])
    pipeline()
    drive(clock)

    response = bob.api.post(f"/api/v1/subscriptions/{subscription['id']}/replay/", {"from_seq": 3}, format="json")
    drive(clock)

    assert response.status_code == 202 and response.json()["cursor"] == 2
    assert seqs(receiver.events()) == list(range(1, 9)) + list(range(3, 9))
    assert len({r.webhook_id for r in receiver.received}) == len(receiver.received) == 2


def test_a_replay_supersedes_the_batch_in_flight_so_its_late_acknowledgement_cannot_move_the_cursor(
    alice, bob, receiver, clock, pipeline,
):
    subscription = subscribe(bob, receiver, after=0)
    alice.submit(*[alice.statement([md5(n)]) for n in range(8)])
    pipeline()
    (job,) = delivering.claim([subscription["id"]], now=clock()).jobs
    bob.api.post(f"/api/v1/subscriptions/{subscription['id']}/replay/", {"from_seq": 1}, format="json")

    assert delivering.complete([(job, delivering.send(job, now=clock()), clock())]) == ["stale"]
    assert Subscription.objects.get(pk=subscription["id"]).cursor == 0
    drive(clock)
    assert seqs(receiver.batches()[-1].events) == list(range(1, 9))


def test_a_ping_is_signed_like_every_delivery_and_its_outcome_is_visible_to_the_member(
    bob, receiver, clock, pipeline,
):
    subscription = subscribe(bob, receiver)

    queued = bob.api.post(f"/api/v1/subscriptions/{subscription['id']}/test/")
    drive(clock)

    assert queued.status_code == 202 and queued.json()["lane"] == "test"
    (ping,) = receiver.received
    assert ping.v1 and ping.v1a and ping.webhook_id == queued.json()["webhook_id"]
    assert ping.body["type"] == "ping" and ping.body["data"] == {"subscription": subscription["id"]}
    (listed,) = bob.api.get(f"/api/v1/subscriptions/{subscription['id']}/deliveries/").json()["deliveries"]
    assert (listed["state"], listed["attempts"][0]["status"]) == ("delivered", 200)


def test_during_a_secret_rotation_both_secrets_sign_and_afterwards_only_the_new_one(
    alice, bob, receiver, clock, pipeline,
):
    subscription = subscribe(bob, receiver, after=0)
    old_secret = receiver.secrets[0]
    rotated = bob.api.patch(f"/api/v1/subscriptions/{subscription['id']}/",
                            {"rotate_secret": True, "secret_overlap_seconds": 3600}, format="json").json()
    new_secret = rotated["secret"]
    receiver.secrets = [old_secret]  # a receiver that has not switched yet
    alice.submit(alice.statement([md5(1)]))
    pipeline()
    drive(clock)
    during = receiver.received[-1]

    receiver.secrets = [new_secret]
    clock.advance(3601)
    alice.submit(alice.statement([md5(2)]))
    pipeline()
    drive(clock)
    after = receiver.received[-1]

    assert new_secret != old_secret and rotated["previous_secret_expires_at"]
    assert during.v1 and during.headers["webhook-signature"].count("v1,") == 2
    assert after.v1 and after.headers["webhook-signature"].count("v1,") == 1
    receiver.secrets = [old_secret]
    assert receiver._check(after.headers, after.raw) == (False, True)


def test_during_a_server_key_rotation_both_keys_sign_v1a(alice, bob, receiver, clock, pipeline, settings, tmp_path):
    from consortium_client.keys import generate_private_key, private_key_to_pem

    old = generate_private_key()
    (tmp_path / "old.pem").write_bytes(private_key_to_pem(old))
    settings.CONSORTIUM_SIGNING_KEY_PREVIOUS_FILE = str(tmp_path / "old.pem")
    settings.CONSORTIUM_SIGNING_KEY_PREVIOUS_UNTIL = (clock() + timedelta(hours=1)).isoformat()
    subscribe(bob, receiver, after=0)
    receiver.public_keys = [old.public_key()]  # a receiver that only knows the previous key
    alice.submit(alice.statement([md5(1)]))
    pipeline()
    drive(clock)
    during = receiver.received[-1]

    clock.advance(3601)
    alice.submit(alice.statement([md5(2)]))
    pipeline()
    drive(clock)
    after = receiver.received[-1]

    assert during.v1a and during.headers["webhook-signature"].count("v1a,") == 2
    assert not after.v1a and after.headers["webhook-signature"].count("v1a,") == 1


def test_a_suspended_members_subscriptions_wait_and_resume_where_they_were(
    alice, bob, receiver, clock, pipeline,
):
    subscription = subscribe(bob, receiver, after=0)
    member_set_status(member=bob.member, status=Member.Status.SUSPENDED)
    alice.submit(*[alice.statement([md5(n)]) for n in range(3)])
    pipeline()
    drive(clock)
    assert receiver.received == []

    member_set_status(member=bob.member, status=Member.Status.ACTIVE)
    drive(clock)

    assert seqs(receiver.events()) == [1, 2, 3]
    assert Subscription.objects.get(pk=subscription["id"]).cursor == 3


def test_a_deleted_subscription_receives_nothing_more(alice, bob, receiver, clock, pipeline):
    subscription = subscribe(bob, receiver, after=0)
    alice.submit(alice.statement([md5(1)]))
    pipeline()
    (job,) = delivering.claim([subscription["id"]], now=clock()).jobs

    assert bob.api.delete(f"/api/v1/subscriptions/{subscription['id']}/").status_code == 204
    assert delivering.complete([(job, delivering.send(job, now=clock()), clock())]) == ["stale"]
    alice.submit(alice.statement([md5(2)]))
    pipeline()
    drive(clock)

    assert [seqs(r.events) for r in receiver.received] == [[1]]
    assert in_flight(subscription["id"]) is None


def test_an_event_the_subscription_can_no_longer_see_is_dropped_from_its_retried_batch(
    alice, bob, receiver, clock, pipeline, trusted_group,
):
    subscription = subscribe(bob, receiver, after=0)
    alice.submit(alice.statement([md5(1)], share="trusted"), alice.statement([md5(2)]))
    pipeline()
    receiver.behaviour.status = 500
    drive(clock)
    trusted_group.members.remove(bob.member)  # bob leaves the group while the batch waits for a retry

    receiver.behaviour.status = 200
    advance_to_next_attempt(clock, subscription["id"])
    drive(clock)

    first, retry = receiver.received
    assert seqs(first.events) == [1, 2] and seqs(retry.events) == [2]
    # A webhook-id always names the same bytes: the changed batch goes out under a new one.
    assert first.webhook_id != retry.webhook_id
    assert list(Delivery.objects.filter(lane="main").order_by("pk").values_list("webhook_id", "state")) == [
        (first.webhook_id, "superseded"), (retry.webhook_id, "delivered")]


def test_a_retried_batch_that_now_holds_more_events_goes_out_under_a_new_webhook_id(
    alice, bob, receiver, clock, pipeline, trusted_group,
):
    """Receivers drop a webhook-id they have seen: had the first attempt arrived (its answer lost),
    events added to the batch since (here by joining a sharing group) would be dropped with it."""
    trusted_group.members.remove(bob.member)
    subscription = subscribe(bob, receiver, after=0)
    alice.submit(alice.statement([md5(1)], share="trusted"), alice.statement([md5(2)]))
    pipeline()
    receiver.behaviour.status = 500
    drive(clock)
    trusted_group.members.add(bob.member)

    receiver.behaviour.status = 200
    advance_to_next_attempt(clock, subscription["id"])
    drive(clock)

    first, retry = receiver.received
    assert seqs(first.events) == [2] and seqs(retry.events) == [1, 2]
    assert first.webhook_id != retry.webhook_id
    assert Subscription.objects.get(pk=subscription["id"]).cursor == 2
