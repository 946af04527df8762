"""Prometheus metrics.

Two kinds:
- Counted where things happen, in whichever process they happen (webhook attempts, match latency,
  Celery tasks). With PROMETHEUS_MULTIPROC_DIR set, every process of one gunicorn master or of one
  Celery worker writes its counts to files there, and /metrics (or the worker's exporter) adds them
  up, so several processes read as one.
- Read from the database when scraped (pipeline backlog, feed head, subscriptions, webhook lag,
  media jobs) by `DatabaseCollector`: a few small queries, each answered from an index or a small
  table, under READY_CHECK_TIMEOUT_SECONDS; a database that does not answer gives
  `consortium_database_up 0` rather than a failed scrape. The match index sizes are this process's.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from django.db import DatabaseError, transaction
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from .bounded import run_bounded

logger = logging.getLogger(__name__)

webhook_attempts = Counter(
    "consortium_webhook_attempts", "Webhook delivery attempts recorded, by lane and outcome code (the "
    "receiver's HTTP status, or the error code when it gave none).", ["lane", "code"])
match_seconds = Histogram(
    "consortium_match_seconds", "Time to answer POST match/, by input (signals, or media hashed first).",
    ["input"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
celery_tasks = Counter("consortium_celery_tasks", "Celery tasks run, by task and outcome.", ["task", "outcome"])
celery_task_seconds = Histogram(
    "consortium_celery_task_seconds", "Celery task run time, by task.", ["task"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300))


def webhook_attempt_recorded(lane: str, status: int | None, error: str | None) -> None:
    """Count an attempt once its record commits (distribution.services.delivering)."""
    code = str(status) if status else (error or "none")
    transaction.on_commit(lambda: webhook_attempts.labels(lane=lane, code=code).inc())


def timed_match(post: Callable[..., Any]) -> Callable[..., Any]:
    """Decorates the match view's `post` (hashes.apis.MatchApi)."""

    @functools.wraps(post)
    def timed(view: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        kind = "media" if request.content_type.startswith("multipart/") else "signals"
        started = time.perf_counter()
        try:
            return post(view, request, *args, **kwargs)
        finally:
            match_seconds.labels(input=kind).observe(time.perf_counter() - started)

    return timed


def gauge(name: str, documentation: str, samples: dict[tuple[str, ...], float] | float,
          labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels) if labels else None)
    if isinstance(samples, dict):
        for values, value in samples.items():
            family.add_metric(list(values), value)
    else:
        family.add_metric([], samples)
    return family


def age(moment: datetime | None, now: datetime) -> float:
    return max(0.0, (now - moment).total_seconds()) if moment else 0.0


class DatabaseCollector:
    """The gauges read from the database and this process's match index, at scrape time."""

    def describe(self) -> list[Metric]:
        return []  # read at scrape time only; registering must not query the database

    def collect(self) -> Iterator[Metric]:
        try:
            families = run_bounded(lambda: list(self._database(timezone.now())))
        except (DatabaseError, TimeoutError) as exc:
            logger.warning("Metrics: the database did not answer (%s).", type(exc).__name__)
            families = []
        yield gauge("consortium_database_up", "1 if the database answered this scrape's queries.", 1 if families else 0)
        yield from families
        yield from self._index()

    def _database(self, now: datetime) -> Iterator[Metric]:
        from distribution.models import Delivery, Subscription
        from hashes.models import Event, FeedHead, Statement
        from hashes.services.feed import FEED_HEAD_ID

        backlog, oldest = {}, {}
        for state in (Statement.State.RECEIVED, Statement.State.VERIFIED):
            waiting = Statement.objects.filter(state=state)
            backlog[(state.value,)] = waiting.count()
            # One look per priority, each answered by the state's work-queue index (statement_received or
            # statement_verified: -priority, received_at where the state is this one).
            firsts = [waiting.filter(priority=p).order_by("received_at").values_list("received_at", flat=True).first()
                      for p in (True, False)]
            oldest[(state.value,)] = max(age(first, now) for first in firsts)
        yield gauge("consortium_pipeline_backlog", "Statements waiting, by state (received: to verify; verified: "
                    "to publish).", backlog, ("state",))
        yield gauge("consortium_pipeline_oldest_age_seconds", "Age of the oldest statement waiting, by state.",
                    oldest, ("state",))
        yield gauge("consortium_pipeline_lag_seconds", "Age of the oldest statement not yet published or rejected "
                    "(/readyz compares it with READY_MAX_PIPELINE_LAG_SECONDS).", max(oldest.values()))

        head = FeedHead.objects.filter(pk=FEED_HEAD_ID).values_list("last_seq", flat=True).first() or 0
        newest = Event.objects.filter(seq=head).values_list("occurred_at", "cause__received_at").first()
        yield gauge("consortium_feed_head_seq", "The last seq of the feed.", head)
        yield gauge("consortium_feed_last_event_timestamp_seconds", "When the newest feed event occurred (unix time).",
                    newest[0].timestamp() if newest else 0)
        yield gauge("consortium_publish_lag_seconds", "From receipt of the statement behind the newest feed event "
                    "to that event.", age(newest[1], newest[0]) if newest and newest[1] else 0)

        states = [state for state, _ in Subscription.State.choices]
        rows = {row["state"]: row for row in Subscription.objects.order_by().values("state")
                .annotate(count=Count("pk"), behind=Min("cursor"))}
        lag_events, lag_seconds = {}, {}
        for state in states:
            behind = rows[state]["behind"] if state in rows else head
            lag_events[(state,)] = max(0, head - behind)
            first = Event.objects.filter(seq__gt=behind).order_by("seq").values_list("occurred_at", flat=True).first()
            lag_seconds[(state,)] = age(first, now) if lag_events[(state,)] else 0.0
        yield gauge("consortium_subscriptions", "Webhook subscriptions, by state.",
                    {(state,): rows[state]["count"] if state in rows else 0 for state in states}, ("state",))
        yield gauge("consortium_webhook_lag_events", "Feed events past the cursor of the furthest-behind "
                    "subscription, by subscription state.", lag_events, ("state",))
        yield gauge("consortium_webhook_lag_seconds", "Age of the oldest feed event past the cursor of the "
                    "furthest-behind subscription, by subscription state.", lag_seconds, ("state",))
        pending = dict(Delivery.objects.filter(state=Delivery.State.PENDING).order_by().values("lane")
                       .annotate(count=Count("pk")).values_list("lane", "count"))
        yield gauge("consortium_webhook_deliveries_pending", "Webhook deliveries not yet acknowledged or given up, "
                    "by lane.", {(lane,): pending.get(lane, 0) for lane, _ in Delivery.Lane.choices}, ("lane",))

        from media.models import MediaJob

        jobs = dict(MediaJob.objects.order_by().values("state").annotate(count=Count("pk"))
                    .values_list("state", "count"))
        yield gauge("consortium_media_jobs", "Media hashing jobs, by state.",
                    {(state,): jobs.get(state, 0) for state, _ in MediaJob.State.choices}, ("state",))

    def _index(self) -> Iterator[Metric]:
        from hashes.matching import index_ready, indexes

        if not index_ready():
            return
        parts = {"pdq": getattr(indexes, "pdq", None), "vpdq_frames": getattr(indexes, "frames", None)}
        yield gauge("consortium_match_index_entries", "Entries in this process's match index.",
                    {(name,): len(index) for name, index in parts.items() if index is not None}, ("index",))
        yield gauge("consortium_match_index_bytes", "Bytes held by this process's match index.",
                    {(name,): getattr(index, "nbytes", 0) for name, index in parts.items() if index is not None},
                    ("index",))
        yield gauge("consortium_match_index_applied_seq", "The last feed seq applied to this process's match index.",
                    getattr(indexes, "applied_seq", 0))


class Combined:
    def __init__(self, *collectors: Any) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def counted() -> Any:
    """What this process tree counted: every process's files in multiprocess mode, else this process's."""
    if multiprocess_dir():
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry)
        return registry
    return REGISTRY


def exposition(*, with_database: bool) -> bytes:
    collectors = (counted(), DatabaseCollector()) if with_database else (counted(),)
    return generate_latest(Combined(*collectors))  # type: ignore[arg-type]
