"""What a member's junk may cost the server: statements that no active key of the member signed keep
only the start of their JWS once rejected; a JWS whose kid names no key at all is refused before it
is stored; and MEMBER_DAILY_BYTE_QUOTA bounds the bytes of new statements a member sends in any 24
hours, refused whole with 429 `quota_exceeded` like MEMBER_DAILY_STATEMENT_QUOTA. Other members'
statements go on through all of it."""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.db.models import Sum
from django.db.models.functions import Length
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from consortium_client import keys
from consortium_client.statements import StatementSigner, hash_statement
from hashes.models import Event, Hash, Statement
from members.models import SigningKey
from members.services import key_register, key_set_state
from tests.databases import postgresql_only
from tests.factories import forge, md5

KEPT = 1024  # hashes.services.verification.REJECTED_RAW_KEPT


def post(actor, *statements):
    return actor.api.post("/api/v1/statements/", {"statements": list(statements)}, format="json")


def junk(actor, n: int, kid: str, filler: int = 20_000) -> str:
    """A hash statement of `actor`'s under `kid` with a signature no key made, about 4/3 x `filler` long."""
    return forge({"alg": "Ed25519", "kid": kid, "typ": "hash-statement+jws"},
                 {"iss": actor.slug, "iat": 1, "jti": f"junk-{n}", "kind": "hash", "note": "a" * filler})


def bytes_kept(actor) -> int:
    return Statement.objects.filter(member=actor.member).aggregate(total=Sum(Length("raw")))["total"] or 0


def test_a_token_with_no_key_cannot_make_the_server_keep_megabytes(alice, pipeline):
    """40 statements of about 495 KB (20 MB, one request): under a kid no key has they are refused
    on receipt; under the member's own kid (public in keys/) they are stored, rejected
    signature_invalid, and keep 1 KB each."""
    unknown = [junk(alice, n, "no-such-key", 370 * 1024) for n in range(40)]
    own_kid = [junk(alice, 100 + n, alice.key.kid, 370 * 1024) for n in range(40)]

    refused = post(alice, *unknown).json()
    stored = post(alice, *own_kid).json()
    pipeline()

    assert refused["accepted"] == [] and {r["error"]["code"] for r in refused["rejected"]} == {"key_unknown"}
    assert len(stored["accepted"]) == 40
    rejected = Statement.objects.filter(member=alice.member, state="rejected", rejection_code="signature_invalid")
    assert rejected.count() == 40
    assert bytes_kept(alice) == 40 * KEPT


@pytest.mark.parametrize("code", ["signature_invalid", "key_wrong_member", "key_pending", "key_revoked", "key_retired"])
def test_a_statement_no_active_key_of_its_member_signed_keeps_the_start_of_its_jws(alice, bob, pipeline, code):
    payload = hash_statement(iss=alice.slug, signals=[md5(1)], content_type="photo", note="n" * 1500)
    if code == "signature_invalid":
        statement = StatementSigner(keys.generate_private_key(), alice.key.kid).sign(payload)
    elif code == "key_wrong_member":
        statement = bob.signer.sign(payload)
    elif code == "key_retired":
        key_set_state(key=alice.key, state=SigningKey.State.RETIRED)
        statement = alice.signer.sign(payload)
    else:
        private = keys.generate_private_key()
        key = key_register(member=alice.member, jwk=keys.public_jwk(private))
        if code == "key_revoked":
            key_set_state(key=key, state=SigningKey.State.REVOKED)
        statement = StatementSigner(private, key.kid).sign(payload)
    assert len(statement) > 2 * KEPT
    submitted = alice.submit(statement)["accepted"][0]
    pipeline()

    row = Statement.objects.get(id=submitted["id"])
    assert (row.state, row.rejection_code) == ("rejected", code)
    # Who sent what, and why it was refused: the member, jti, kind, the whole JWS's digest and size,
    # and its start, which holds the header (with the kid) whole.
    assert row.raw == statement[:KEPT] and row.size == len(statement)
    assert row.digest == hashlib.sha256(statement.encode()).hexdigest()
    assert (row.member_id, row.jti, row.kind) == (alice.member.pk, json.loads(jws_part(statement, 1))["jti"], "hash")
    assert json.loads(jws_part(row.raw, 0))["kid"] == json.loads(jws_part(statement, 0))["kid"]
    view = alice.api.get(f"/api/v1/statements/{row.id}/").json()
    assert (view["state"], view["rejection_code"], view["statement"], view["statement_truncated"]) == (
        "rejected", code, statement[:KEPT], True)
    listed = alice.api.get("/api/v1/statements/?state=rejected").json()["results"]
    assert [(s["id"], s["statement_truncated"]) for s in listed] == [(str(row.id), True)]
    # The client retrying the very same bytes still gets its submission back, not a conflict.
    assert alice.submit(statement)["accepted"][0] == {**submitted, "state": "rejected"}


def jws_part(statement: str, n: int) -> bytes:
    part = statement.split(".")[n]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_a_statement_an_active_key_of_its_member_signed_is_kept_whole_when_rejected(alice, pipeline):
    """Evidence of what the member said: a signed statement refused for its content stays whole."""
    statement = alice.statement([md5(1)], note="n" * 5000)  # past STATEMENT_NOTE_MAX_CHARS
    submitted = alice.submit(statement)["accepted"][0]
    pipeline()

    row = Statement.objects.get(id=submitted["id"])
    assert (row.rejection_code, row.raw, row.size) == ("note_invalid", statement, len(statement))
    view = alice.api.get(f"/api/v1/statements/{row.id}/").json()
    assert (view["statement"], view["statement_truncated"]) == (statement, False)


def test_a_kid_no_key_has_is_refused_on_receipt_and_the_rest_of_the_request_goes_on(alice, pipeline):
    stranger = StatementSigner(keys.generate_private_key(), "nobody-has-this-kid")
    good = alice.statement([md5(1)])

    body = alice.submit(stranger.sign(hash_statement(iss=alice.slug, signals=[md5(2)], content_type="photo")), good)
    pipeline()

    assert [r["index"] for r in body["rejected"]] == [0]
    assert body["rejected"][0]["error"]["code"] == "key_unknown"
    assert [a["index"] for a in body["accepted"]] == [1]
    assert list(Statement.objects.values_list("state", flat=True)) == ["published"]

    # A kid found once is not read again; one not found is, so a key registered since is found.
    private = keys.generate_private_key()
    key = key_register(member=alice.member, jwk=keys.public_jwk(private), approve=True)
    with CaptureQueriesContext(connection) as queries:
        alice.submit(alice.statement([md5(3)]))
    assert not [q for q in queries.captured_queries if "members_signingkey" in q["sql"]]
    assert alice.submit(StatementSigner(private, key.kid).sign(
        hash_statement(iss=alice.slug, signals=[md5(4)], content_type="photo")))["rejected"] == []


def test_junk_exhausts_its_members_byte_quota_while_another_members_statements_pass(alice, bob, pipeline, settings):
    settings.MEMBER_DAILY_BYTE_QUOTA = 200_000
    sent = []
    for n in range(20):  # about 26,700 bytes each: the quota takes 7
        response = post(alice, junk(alice, n, alice.key.kid))
        if response.status_code != 202:
            break
        sent.append(n)
    pipeline()

    assert len(sent) == 7 and response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded" and error["details"]["unit"] == "bytes"
    assert error["details"]["quota"] == 200_000 and error["details"]["requested"] == len(junk(alice, 7, alice.key.kid))
    assert error["details"]["used"] == sum(len(junk(alice, n, alice.key.kid)) for n in sent)
    assert 23 * 3600 < int(response["Retry-After"]) <= 24 * 3600
    assert Statement.objects.filter(member=alice.member).count() == 7  # the refused request stored nothing
    assert bytes_kept(alice) == 7 * KEPT

    for n in range(3):  # bob's own quota, untouched
        assert post(bob, bob.statement([md5(n)], note="b" * 1900)).status_code == 202
    pipeline()
    assert Statement.objects.filter(member=bob.member, state="published").count() == 3
    assert Hash.objects.count() == 3 and Event.objects.count() == 3


def test_byte_quota_retry_after_is_when_enough_bytes_have_left_the_window(alice, settings):
    statements = [alice.statement([md5(n)], note="x" * 1500) for n in range(4)]
    assert post(alice, *statements).status_code == 202
    settings.MEMBER_DAILY_BYTE_QUOTA = 10_000
    now = timezone.now()
    for hours_ago, size, jti in zip((23, 20, 10, 1), (1000, 3000, 4000, 1000),
                                    Statement.objects.order_by("jti").values_list("jti", flat=True)):
        Statement.objects.filter(jti=jti).update(received_at=now - timedelta(hours=hours_ago), size=size)

    refused = post(alice, alice.statement([md5(10)], note="y" * 1500))
    requested = refused.json()["error"]["details"]["requested"]

    # 9,000 used: 9,000 + requested - 10,000 must go; the statements received 23 and 20 hours ago
    # free 1,000 and 4,000 between them, the second in 4 hours.
    assert 1000 < 9000 + requested - 10_000 <= 4000
    retry_after = int(refused["Retry-After"])
    assert refused.status_code == 429 and abs(retry_after - 4 * 3600) <= 5
    assert refused.json()["error"]["details"] == {
        "quota": 10_000, "used": 9000, "requested": requested, "unit": "bytes", "window_seconds": 86400,
        "retry_after_seconds": retry_after}


def test_resubmissions_do_not_count_bytes_again_and_a_request_larger_than_the_quota_says_so(alice, settings):
    statements = [alice.statement([md5(n)]) for n in range(3)]
    settings.MEMBER_DAILY_BYTE_QUOTA = sum(map(len, statements))
    assert post(alice, *statements).status_code == 202
    assert post(alice, *statements).status_code == 202  # the same jtis and bytes: nothing new

    settings.MEMBER_DAILY_BYTE_QUOTA = 10
    refused = post(alice, alice.statement([md5(5)]))

    assert refused.status_code == 429 and "at most 10 bytes" in refused.json()["error"]["message"]
    assert Statement.objects.count() == 3
    settings.MEMBER_DAILY_BYTE_QUOTA = 0  # no quota
    assert post(alice, junk(alice, 1, alice.key.kid, 300_000)).status_code == 202


def test_the_migration_sizes_the_quotas_window_and_cuts_earlier_unsigned_rejections(alice):
    migration = importlib.import_module("hashes.migrations.0016_statement_member_recent_size")
    now = timezone.now()
    legacy = dict(member=alice.member, kind="hash", digest="0" * 64, size=None)
    recent = Statement.objects.create(jti="recent", raw="r" * 3000, received_at=now - timedelta(hours=2), **legacy)
    old = Statement.objects.create(jti="old", raw="o" * 3000, received_at=now - timedelta(days=3), **legacy)
    unsigned = Statement.objects.create(jti="unsigned", raw="u" * 5000, received_at=now - timedelta(days=3),
                                        state="rejected", rejection_code="key_unknown", **legacy)
    signed = Statement.objects.create(jti="signed", raw="s" * 5000, received_at=now - timedelta(days=3),
                                      state="rejected", rejection_code="note_invalid", **legacy)

    migration.sizes_and_cuts(django_apps, None)
    migration.sizes_and_cuts(django_apps, None)  # run again: nothing more changes

    def stored(row):
        row.refresh_from_db()
        return row.size, len(row.raw)

    assert stored(recent) == (3000, 3000) and stored(old) == (None, 3000)
    assert stored(unsigned) == (5000, KEPT) and stored(signed) == (None, 5000)


def test_the_admin_shows_who_sent_a_cut_statement_and_why_it_was_refused(admin_client, alice, pipeline):
    statement = StatementSigner(keys.generate_private_key(), alice.key.kid).sign(
        hash_statement(iss=alice.slug, signals=[md5(1)], content_type="photo", note="n" * 1500))
    row_id = alice.submit(statement)["accepted"][0]["id"]
    pipeline()

    page = admin_client.get(f"/admin/hashes/statement/{row_id}/change/")

    assert page.status_code == 200
    text = page.content.decode()
    for shown in ("alice", "signature_invalid", hashlib.sha256(statement.encode()).hexdigest(), str(len(statement)),
                  statement[:KEPT]):
        assert shown in text
    assert statement[:KEPT + 1] not in text


@postgresql_only("index-only scans are read from PostgreSQL's plan")
def test_both_quotas_are_counted_from_the_index_alone(alice, settings):
    """The count and the sum of sizes of a member's last 24 hours need no row of the table: on a
    member near its quota, reading 100,000 rows (heap pages) to add their sizes cost several times
    the count alone."""
    settings.MEMBER_DAILY_STATEMENT_QUOTA = 1000
    post(alice, alice.statement([md5(1)]))
    with CaptureQueriesContext(connection) as queries:
        post(alice, alice.statement([md5(2)]))
    [quota_query] = [q["sql"] for q in queries.captured_queries if "SUM(" in q["sql"].upper()]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute("EXPLAIN " + quota_query)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Only Scan using statement_member_recent_size" in plan, plan
