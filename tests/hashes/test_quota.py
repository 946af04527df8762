"""MEMBER_DAILY_STATEMENT_QUOTA: new statements a member may submit in any 24 hours. A request that
would pass it is refused whole with 429 `quota_exceeded` and a Retry-After for when the window frees
enough; resubmissions of a known jti are not new; other members are not affected."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from hashes.models import Statement
from tests.factories import md5


def post(actor, *statements):
    return actor.api.post("/api/v1/statements/", {"statements": list(statements)}, format="json")


def test_a_request_past_the_quota_is_refused_whole_and_changes_nothing(alice, bob, settings):
    settings.MEMBER_DAILY_STATEMENT_QUOTA = 5
    assert post(alice, *[alice.statement([md5(n)]) for n in range(3)]).status_code == 202

    refused = post(alice, *[alice.statement([md5(n)]) for n in range(3, 6)])

    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["details"]["quota"] == 5 and error["details"]["used"] == 3 and error["details"]["requested"] == 3
    assert Statement.objects.filter(member=alice.member).count() == 3
    assert post(alice, *[alice.statement([md5(n)]) for n in range(3, 5)]).status_code == 202  # what still fits
    assert post(bob, *[bob.statement([md5(n)]) for n in range(5)]).status_code == 202  # bob's own quota


def test_retry_after_is_when_enough_of_the_window_has_freed(alice, settings):
    settings.MEMBER_DAILY_STATEMENT_QUOTA = 4
    post(alice, *[alice.statement([md5(n)]) for n in range(4)])
    now = timezone.now()
    for hours_ago, jti in zip((23, 20, 10, 1), Statement.objects.order_by("jti").values_list("jti", flat=True)):
        Statement.objects.filter(jti=jti).update(received_at=now - timedelta(hours=hours_ago))

    refused = post(alice, alice.statement([md5(10)]), alice.statement([md5(11)]))

    # Two must leave the window: the second oldest, received 20 hours ago, does in 4 hours.
    retry_after = int(refused["Retry-After"])
    assert refused.status_code == 429 and abs(retry_after - 4 * 3600) <= 5
    assert refused.json()["error"]["details"]["retry_after_seconds"] == retry_after


def test_statements_older_than_24_hours_no_longer_count(alice, settings):
    settings.MEMBER_DAILY_STATEMENT_QUOTA = 2
    post(alice, alice.statement([md5(1)]), alice.statement([md5(2)]))
    Statement.objects.update(received_at=timezone.now() - timedelta(hours=24, seconds=1))

    assert post(alice, alice.statement([md5(3)]), alice.statement([md5(4)])).status_code == 202


def test_resubmissions_of_a_known_jti_do_not_count_again(alice, settings):
    settings.MEMBER_DAILY_STATEMENT_QUOTA = 2
    statements = [alice.statement([md5(1)]), alice.statement([md5(2)])]
    first = post(alice, *statements).json()

    again = post(alice, *statements, statements[0])

    assert again.status_code == 202
    assert [a["id"] for a in again.json()["accepted"]] == [a["id"] for a in first["accepted"]] + [first["accepted"][0]["id"]]
    assert post(alice, alice.statement([md5(3)])).status_code == 429


def test_a_request_larger_than_the_whole_quota_says_so(alice, settings):
    settings.MEMBER_DAILY_STATEMENT_QUOTA = 2

    refused = post(alice, *[alice.statement([md5(n)]) for n in range(3)])

    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert "at most 2" in refused.json()["error"]["message"]
    assert Statement.objects.count() == 0


def test_envelopes_rejected_on_receipt_do_not_count(alice, settings):
    settings.MEMBER_DAILY_STATEMENT_QUOTA = 1

    body = post(alice, "not a jws", 42, alice.statement([md5(1)])).json()

    assert [a["index"] for a in body["accepted"]] == [2]
    assert [r["index"] for r in body["rejected"]] == [0, 1]
