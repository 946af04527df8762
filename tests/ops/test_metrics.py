"""/metrics: closed unless configured, open to the token or to a direct connection from an allowed
address (never to a forwarded one), and the figures an operator alerts on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from distribution.models import Subscription
from hashes.models import Statement
from media.models import MediaJob
from ops.access import parse_networks, token_digest
from tests.distribution.helpers import Clock, drive, subscribe
from tests.factories import md5

TOKEN = "metrics-token-for-tests-0123456789"


@pytest.fixture
def metrics_token(settings) -> str:
    settings.METRICS_TOKEN_SHA256 = token_digest(TOKEN)
    settings.METRICS_ALLOWED_IPS = parse_networks(["10.0.0.0/8", "fd00::/8"])
    return TOKEN


def scrape(token: str | None = None, *, address: str = "192.0.2.7", **headers: str):
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return Client(REMOTE_ADDR=address, **headers).get("/metrics")


def samples(response) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    assert response.status_code == 200, response.content
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.content.decode()) for s in family.samples}


def test_metrics_are_closed_when_neither_a_token_nor_addresses_are_configured(db, settings):
    settings.METRICS_TOKEN_SHA256, settings.METRICS_ALLOWED_IPS = "", ()

    for response in (scrape(), scrape(TOKEN), scrape(address="127.0.0.1"), scrape("")):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_metrics_refuse_a_missing_or_wrong_token(db, metrics_token):
    for response in (scrape(), scrape("wrong-token-wrong-token-wrong"), scrape(TOKEN + "x"), scrape(TOKEN[:-1]),
                     scrape(address="192.0.2.7", HTTP_AUTHORIZATION=f"Token {TOKEN}")):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "metrics_forbidden"
        assert b"consortium_" not in response.content


def test_metrics_answer_the_right_token_from_anywhere(db, metrics_token):
    response = scrape(TOKEN, HTTP_X_FORWARDED_FOR="198.51.100.1")

    assert response["Content-Type"].startswith("text/plain; version=")
    assert ("consortium_database_up", ()) in samples(response)


def test_metrics_answer_a_direct_connection_from_an_allowed_address(db, metrics_token):
    assert scrape(address="10.20.30.40").status_code == 200
    assert scrape(address="fd12::1").status_code == 200
    assert scrape(address="::ffff:10.1.1.1").status_code == 200
    assert scrape(address="11.0.0.1").status_code == 403


def test_an_allowed_address_does_not_count_for_a_request_that_came_through_a_proxy(db, metrics_token):
    """Behind the TLS proxy every request comes from the proxy's address: forwarding headers mean a
    client stands behind it, whatever X-Forwarded-For claims."""
    for header in ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_FORWARDED", "HTTP_X_REAL_IP"):
        response = scrape(address="10.0.0.1", **{header: "10.0.0.1"})
        assert response.status_code == 403, header


def test_the_token_is_kept_only_as_a_digest(settings, monkeypatch):
    import importlib

    import consortium.settings as project_settings

    monkeypatch.setenv("METRICS_TOKEN", TOKEN)
    reloaded = importlib.reload(project_settings)
    try:
        assert reloaded.METRICS_TOKEN_SHA256 == token_digest(TOKEN)
        assert not [name for name in dir(reloaded) if getattr(reloaded, name) == TOKEN]
    finally:
        monkeypatch.delenv("METRICS_TOKEN")
        importlib.reload(project_settings)


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_report_the_pipeline_feed_subscriptions_and_deliveries(
        committed_db, metrics_token, alice, bob, pipeline, receiver):
    """Counters are this process's and outlive a test: each figure is compared with the scrape before."""
    before = samples(scrape(TOKEN))
    clock = Clock()
    subscribe(bob, receiver, after=0)
    alice.submit(alice.statement([md5(1)]), alice.statement([md5(2)]))
    pipeline()
    drive(clock)
    Statement.objects.create(member=alice.member, jti="waiting", kind="hash", raw="x", digest="0" * 64,
                             received_at=timezone.now() - timedelta(minutes=3))
    match = alice.api.post("/api/v1/match/", {"signals": [md5(1)]}, format="json")
    assert match.status_code == 200
    MediaJob.objects.create(owner=alice.member, state=MediaJob.State.FAILED, error_code="media_unreadable")

    found = samples(scrape(TOKEN))

    assert value(found, "consortium_database_up") == 1
    assert value(found, "consortium_pipeline_backlog", state="received") == 1
    assert value(found, "consortium_pipeline_backlog", state="verified") == 0
    assert value(found, "consortium_pipeline_oldest_age_seconds", state="received") >= 180
    assert value(found, "consortium_pipeline_lag_seconds") >= 180
    assert value(found, "consortium_feed_head_seq") == 2
    assert value(found, "consortium_feed_last_event_timestamp_seconds") > 0
    assert value(found, "consortium_subscriptions", state="active") == 1
    assert value(found, "consortium_subscriptions", state="disabled") == 0
    assert value(found, "consortium_webhook_lag_events", state="active") == 0
    assert value(found, "consortium_webhook_deliveries_pending", lane="main") == 0
    delivered = [labels for name, labels in found if name == "consortium_webhook_attempts_total"
                 and found[(name, labels)] > before.get((name, labels), 0)]
    assert delivered == [(("code", "200"), ("lane", "main"))]
    assert (value(found, "consortium_match_seconds_count", input="signals")
            == value(before, "consortium_match_seconds_count", input="signals") + 1)
    assert ("consortium_match_index_entries", (("index", "pdq"),)) in found
    assert value(found, "consortium_media_jobs", state="failed") == 1
    assert value(found, "consortium_media_jobs", state="queued") == 0
    assert ("consortium_media_jobs", (("state", "running"),)) in found


def test_webhook_lag_counts_the_events_a_subscription_has_not_acknowledged(
        committed_db, metrics_token, alice, bob, pipeline, receiver):
    subscribed = subscribe(bob, receiver, after=0)
    Subscription.objects.filter(pk=subscribed["id"]).update(state=Subscription.State.PAUSED)
    alice.submit(alice.statement([md5(1)]), alice.statement([md5(2)]), alice.statement([md5(3)]))
    pipeline()  # published; a paused subscription receives nothing

    found = samples(scrape(TOKEN))

    assert value(found, "consortium_webhook_lag_events", state="paused") == 3
    assert value(found, "consortium_webhook_lag_seconds", state="paused") > 0
    assert value(found, "consortium_webhook_lag_events", state="active") == 0
    assert value(found, "consortium_subscriptions", state="paused") == 1


def test_a_scrape_still_answers_when_the_database_does_not(db, metrics_token, monkeypatch):
    from ops import metrics

    def unavailable(look_up, **kwargs):
        raise TimeoutError("no answer")

    monkeypatch.setattr(metrics, "run_bounded", unavailable)

    found = samples(scrape(TOKEN))

    assert value(found, "consortium_database_up") == 0
    assert not [name for name, _ in found if name.startswith("consortium_pipeline")]
