"""Revoking a key as compromised withdraws, for everyone, the hash statements it signed (DESIGN.md,
"Keys"): each by a retraction the server signs (code `key_revoked` on the statement), the hash
retracted when nothing live is left; another key's and other members' statements stay. A group's
statements are withdrawn without outsiders seeing anything; the work is batched, resumable and
idempotent; who revoked and how much was withdrawn is audited."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from consortium.server_keys import server_jwks
from consortium_client import jws, keys
from consortium_client.keys import load_public_jwk
from consortium_client.statements import StatementSigner
from distribution import rendering
from hashes import tasks
from hashes.models import Corroboration, Event, Hash, Statement
from hashes.visibility import Viewer
from members.models import SigningKey
from members.services import key_register, key_set_state
from tests.databases import postgresql_only
from tests.factories import md5
from tests.hashes.test_non_interference import IAT, normalise, observe, reset


def revoke(django_capture_on_commit_callbacks, key, **fields):
    """Revoke as the admin and the command do; the withdrawal task runs once the revocation commits."""
    with django_capture_on_commit_callbacks(execute=True):
        return key_set_state(key=key, state=SigningKey.State.REVOKED, **fields)


def second_key(actor):
    private = keys.generate_private_key()
    key = key_register(member=actor.member, jwk=keys.public_jwk(private), approve=True)
    return dataclasses.replace(actor, signer=StatementSigner(private, key.kid), key=key)


def hash_of(signal) -> Hash:
    return Hash.objects.get(signal_type=signal["type"], value=signal["value"], share_group__isnull=True)


def statement(actor, jti) -> Statement:
    return Statement.objects.get(member=actor.member, jti=jti)


def server_payload(cause: dict) -> dict:
    """The payload of the server's retraction in an event's cause, after checking its signature."""
    published = {k["kid"]: load_public_jwk(k) for k in server_jwks()["keys"]}
    parsed = jws.parse(cause["statement"])
    assert jws.verify_signature(parsed, published[parsed.kid])
    return parsed.payload


def test_revoking_withdraws_the_keys_live_statements_and_only_those(
    alice, bob, pipeline, django_capture_on_commit_callbacks, admin_user,
):
    other_key = second_key(alice)
    alice.submit(alice.statement([md5(1)], jti="a1"), alice.statement([md5(2), md5(3)], jti="a2"),
                 other_key.statement([md5(4)], jti="a3"))
    bob.submit(bob.statement([md5(5)], jti="b1"))
    pipeline()

    revoke(django_capture_on_commit_callbacks, alice.key, actor=admin_user)

    for jti in ("a1", "a2"):
        withdrawn = statement(alice, jti)
        assert (withdrawn.state, withdrawn.rejection_code) == ("published", "key_revoked")
        assert withdrawn.retracted_at is not None
        assert not Corroboration.objects.filter(statement=withdrawn, retracted_at__isnull=True).exists()
        removal = Statement.objects.get(retracts=withdrawn)
        assert removal.member.slug == settings.SERVER_ISSUER and removal.kind == "retract"
    assert [hash_of(md5(n)).state for n in (1, 2, 3)] == ["retracted"] * 3
    # Another key of the same member, and another member, untouched.
    for actor, jti, n in ((alice, "a3", 4), (bob, "b1", 5)):
        kept = statement(actor, jti)
        assert (kept.retracted_at, kept.rejection_code) == (None, "")
        assert hash_of(md5(n)).state == "active"
        assert Corroboration.objects.filter(statement=kept, retracted_at__isnull=True).exists()
    # Audited: who revoked, and how many statements were withdrawn.
    revoked = AuditEvent.objects.get(action="key.revoked")
    assert revoked.actor_user_id == admin_user.pk and revoked.after["compromised_since"] is None
    assert AuditEvent.objects.get(action="key.withdrawn").after["statements_withdrawn"] == 2
    assert SigningKey.objects.get(pk=alice.key.pk).withdrawn_at is not None
    # The statement's own record says why (the status an auditor and its member read).
    answer = alice.api.get(f"/api/v1/statements/{statement(alice, 'a1').pk}/").json()
    assert answer["state"] == "published" and answer["rejection_code"] == "key_revoked" and answer["retracted_at"]


def test_a_hash_another_member_corroborates_stays_active(alice, bob, pipeline, django_capture_on_commit_callbacks):
    alice.submit(alice.statement([md5(1)], jti="a1"))
    bob.submit(bob.statement([md5(1)], jti="b1"))
    pipeline()

    revoke(django_capture_on_commit_callbacks, alice.key)

    hash_ = hash_of(md5(1))
    assert hash_.state == "active"
    event = Event.objects.filter(hash=hash_).last()
    assert event.type == "hash.updated" and event.statements_after == [str(statement(bob, "b1").pk)]
    assert event.cause.member.slug == settings.SERVER_ISSUER


def test_the_feed_and_webhooks_carry_the_servers_signed_withdrawal(
    alice, bob, pipeline, django_capture_on_commit_callbacks,
):
    alice.submit(alice.statement([md5(1)], jti="a1"))
    pipeline()
    head = Event.objects.order_by("-seq").first().seq

    revoke(django_capture_on_commit_callbacks, alice.key)

    events = bob.feed(after=head)["events"]
    assert [e["type"] for e in events] == ["hash.retracted"]
    viewer = Viewer.for_member(bob.member)
    rendering.clear_caches()
    batch = rendering.range_batch(viewer, rendering.Filters(), after=head, through=Event.objects.last().seq)
    webhook = json.loads(rendering.events_body(lane="main", events=batch.events))["data"]["events"]
    for event in (events[0], webhook[0]):
        assert event["type"] == "hash.retracted" and event["hash"]["state"] == "retracted"
        cause = event["cause"]
        assert (cause["member"], cause["kind"]) == (settings.SERVER_ISSUER, "retract")
        payload = server_payload(cause)
        assert payload["iss"] == settings.SERVER_ISSUER and payload["kind"] == "retract"
        assert payload["retracts"] == {"iss": "alice", "jti": "a1"} and payload["reason"] == "key_revoked"


def test_only_what_was_received_from_compromised_since_is_withdrawn(
    alice, pipeline, django_capture_on_commit_callbacks,
):
    alice.submit(alice.statement([md5(1)], jti="old"), alice.statement([md5(2)], jti="new"))
    pipeline()
    since = timezone.now() - timedelta(hours=1)
    Statement.objects.filter(jti="old").update(received_at=since - timedelta(hours=1))

    revoke(django_capture_on_commit_callbacks, alice.key, compromised_since=since)

    assert statement(alice, "old").retracted_at is None and hash_of(md5(1)).state == "active"
    assert statement(alice, "new").rejection_code == "key_revoked" and hash_of(md5(2)).state == "retracted"
    assert AuditEvent.objects.get(action="key.revoked").after["compromised_since"] == since.isoformat()


def test_a_retired_key_keeps_its_statements(alice, pipeline, django_capture_on_commit_callbacks):
    """A guard: retiring never withdrew anything, before this change or after."""
    alice.submit(alice.statement([md5(1)], jti="a1"))
    pipeline()

    with django_capture_on_commit_callbacks(execute=True):
        key_set_state(key=alice.key, state=SigningKey.State.RETIRED)

    assert statement(alice, "a1").retracted_at is None and hash_of(md5(1)).state == "active"


def test_a_crash_midway_and_a_rerun_finish_the_job_without_double_events(alice, bob, pipeline):
    from hashes.services import revocation

    alice.submit(*(alice.statement([md5(n)], jti=f"a{n}") for n in range(5)))
    bob.submit(bob.statement([md5(0)], jti="b0"))
    pipeline()
    key_set_state(key=alice.key, state=SigningKey.State.REVOKED)  # its task is lost (never committed here)
    first = Event.objects.order_by("-seq").first().seq

    assert revocation.withdraw_batch(key_id=alice.key.pk, limit=2)[0] == 2
    with mock.patch.object(revocation, "events_append", side_effect=RuntimeError("worker died")):
        with pytest.raises(RuntimeError):  # the second batch dies before it commits
            revocation.withdraw_batch(key_id=alice.key.pk, limit=2)
    assert Statement.objects.filter(member=alice.member, rejection_code="key_revoked").count() == 2  # rolled back

    tasks.sweep(stale_after_seconds=30)  # finds the unfinished withdrawal and runs it (eager here)
    assert revocation.withdraw_key_statements(key_id=alice.key.pk, batch_size=2)  # finished: nothing more

    events = list(Event.objects.filter(seq__gt=first).order_by("seq"))
    assert sorted(e.hash.value for e in events) == sorted(md5(n)["value"] for n in range(5))  # one each
    assert Statement.objects.filter(member__slug=settings.SERVER_ISSUER, kind="retract").count() == 5
    assert all(s.rejection_code == "key_revoked" for s in Statement.objects.filter(member=alice.member))
    assert hash_of(md5(0)).state == "active" and all(hash_of(md5(n)).state == "retracted" for n in range(1, 5))
    assert AuditEvent.objects.filter(action="key.withdrawn").count() == 1
    assert AuditEvent.objects.get(action="key.withdrawn").after["statements_withdrawn"] == 5


def test_a_statement_verified_but_not_yet_published_is_refused(alice, pipeline, django_capture_on_commit_callbacks):
    alice.submit(alice.statement([md5(1)], jti="a1"))
    pipeline()
    alice.submit(alice.statement([md5(2)], jti="a2"))
    from hashes.services.verification import statements_verify
    statements_verify(ids=[statement(alice, "a2").pk], publish=False)
    assert statement(alice, "a2").state == "verified"

    revoke(django_capture_on_commit_callbacks, alice.key)
    pipeline()

    assert (statement(alice, "a2").state, statement(alice, "a2").rejection_code) == ("rejected", "key_revoked")
    assert not Hash.objects.filter(value=md5(2)["value"]).exists()


@pytest.mark.parametrize("since, published", [(None, False), ("before", False), ("after", True)])
def test_a_statement_verified_before_the_revocation_and_published_after_its_withdrawal_is_refused(
        alice, pipeline, since, published):
    """The race the withdrawal cannot see: a statement verified while the key was active (in a
    transaction still open, or left verified) reaches the publisher after the withdrawal finished.
    The publisher refuses it, unless it was received before the time the key was compromised."""
    from hashes.services.verification import statements_verify

    alice.submit(alice.statement([md5(2)], jti="a2"))
    statements_verify(ids=[statement(alice, "a2").pk], publish=False)
    received = statement(alice, "a2").received_at
    compromised_since = {None: None, "before": received - timedelta(seconds=1),
                         "after": received + timedelta(seconds=1)}[since]
    SigningKey.objects.filter(pk=alice.key.pk).update(  # revoked, and its withdrawal already done
        state=SigningKey.State.REVOKED, compromised_since=compromised_since, withdrawn_at=timezone.now())

    pipeline()

    a2 = statement(alice, "a2")
    if published:
        assert a2.state == "published" and hash_of(md5(2)).state == "active"
    else:
        assert (a2.state, a2.rejection_code) == ("rejected", "key_revoked")
        assert not Hash.objects.filter(value=md5(2)["value"]).exists()


def group_scenario(actors, pipeline, *, hidden: bool) -> None:
    """Alice shares consortium-wide and, in the second run, with the "trusted" group too, all with
    the key about to be revoked; bob and the Home Office corroborate some of it."""
    alice, bob, homeoffice = actors["alice"], actors["bob"], actors["homeoffice"]
    sign = lambda actor, signals, jti, **f: actor.statement(signals, jti=jti, iat=IAT, **f)  # noqa: E731
    group = [sign(alice, [md5(1), md5(4)], "g1", share="trusted"), sign(alice, [md5(5)], "g2", share="trusted")]
    alice.submit(*(group if hidden else []), sign(alice, [md5(1)], "a1"), sign(alice, [md5(2), md5(3)], "a2"))
    homeoffice.submit(sign(homeoffice, [md5(2)], "h1"))
    if hidden:
        bob.submit(sign(bob, [md5(4)], "bg1", share="trusted"))
    pipeline()


def test_a_groups_withdrawn_statements_are_seen_only_by_the_group(
    alice, bob, charlie, homeoffice, trusted_group, pipeline, django_capture_on_commit_callbacks,
):
    actors = {"alice": alice, "bob": bob, "charlie": charlie, "homeoffice": homeoffice}
    seen = {}
    for hidden in (False, True):
        if hidden:  # the same start: nothing published, alice's key active again
            reset()
            SigningKey.objects.filter(pk=alice.key.pk).update(state="active", withdrawn_at=None)
        group_scenario(actors, pipeline, hidden=hidden)
        revoke(django_capture_on_commit_callbacks, SigningKey.objects.get(pk=alice.key.pk))
        assert statement(alice, "a1").rejection_code == "key_revoked"
        seen[hidden] = normalise(observe(charlie))

    # The group's statements were withdrawn (g1 off two group hashes, g2 off its own), bob saw it...
    assert Statement.objects.filter(member=alice.member, share_group=trusted_group,
                                    rejection_code="key_revoked").count() == 2
    bob_events = bob.feed()["events"]
    withdrawn = [e for e in bob_events if (e.get("cause") or {}).get("member") == settings.SERVER_ISSUER]
    assert {server_payload(e["cause"])["retracts"]["jti"] for e in withdrawn} == {"a1", "a2", "g1", "g2"}
    assert Hash.objects.get(value=md5(4)["value"], share_group=trusted_group).state == "active"  # bob's bg1
    assert Hash.objects.get(value=md5(5)["value"], share_group=trusted_group).state == "retracted"
    # ...and charlie reads exactly what it read when the group shared nothing.
    assert seen[True] == seen[False]
    assert any(e["type"] == "hash.retracted" for e in seen[True]["feed"])


def rows_read(plan: dict) -> int:
    own = plan.get("Actual Rows", 0) * plan.get("Actual Loops", 1) if "Scan" in plan.get("Node Type", "") else 0
    return own + sum(rows_read(child) for child in plan.get("Plans", ()))


@postgresql_only("EXPLAIN ANALYZE is PostgreSQL's")
def test_a_withdrawal_batch_reads_about_its_own_rows_not_all_of_the_keys(alice, bob):
    """A batch runs under the feed lock: it reads its rows from where the last one ended, through
    the index statement_key_received, not every remaining statement of the key again (found by review:
    quadratic in the key's statements)."""
    from hashes.services.revocation import withdrawable

    now = timezone.now()
    Statement.objects.bulk_create([  # the revoked key's 300 among 20,000 of another key's
        Statement(member=actor.member, jti=f"w{n}", kind="hash", raw="x", digest="0" * 64, size=1,
                  state="published", key_id=actor.key.pk, received_at=now - timedelta(seconds=n), queued_at=now,
                  published_at=now) for actor, count in ((alice, 300), (bob, 20_000)) for n in range(count)])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE hashes_statement")
    middle = sorted(Statement.objects.filter(key_id=alice.key.pk).values_list("received_at", flat=True))[150]
    for after in (None, middle):
        remaining = withdrawable(alice.key) if after is None else withdrawable(alice.key).filter(received_at__gte=after)
        sql, params = remaining.order_by("received_at", "id")[:10].values_list("id").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
            plan = cursor.fetchone()[0]
        plan = plan if isinstance(plan, list) else json.loads(plan)
        assert rows_read(plan[0]["Plan"]) <= 100, json.dumps(plan, indent=1)
