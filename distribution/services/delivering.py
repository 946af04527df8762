"""Sending deliveries: claim, POST, record.

Main lane: a subscription's next batch is the events after its cursor that its member may see and
its filters pass; it is written down (with its stable `webhook-id`) before it is sent, and the
cursor moves only when a 2xx acknowledges it. Claiming a delivery moves its `next_attempt_at` past
the longest an attempt can take, and every completion is fenced by the attempt number, so a worker
killed at any point leaves a delivery that simply becomes due again: never a skipped event, never a
lost batch, at worst the same `webhook-id` twice (at-least-once).

Time comes from the caller (`now`, `clock`), so tests can walk through days of retries; signatures
always carry the real time, which is what receivers check them against."""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from consortium.db import commit_without_waiting_for_the_disk, insert_rows, update_rows
from consortium.server_keys import delivery_signing_keys
from hashes.services.feed import feed_head
from ops.metrics import webhook_attempt_recorded

from ..delivery import signing, transport
from ..models import Delivery, DeliveryAttempt, Subscription
from ..rendering import (Batch, Filters, LastRows, Rendered, events_body, load_seqs, next_batch, ping_body,
                         range_batch, render_all, viewers_for)
from ..schedule import RetryPolicy
from ..secretbox import unseal
from .heads import announced_head

logger = logging.getLogger(__name__)

# How many windows of WEBHOOK_BATCH_SIZE seqs past the cursor one claim looks through for events
# its subscription receives.
SCAN_WINDOWS = 10
# POSTs sent side by side when incident events are pushed to every subscription at once (a pump
# sends to all the subscriptions it serves side by side).
PUSH_THREADS = 32
# Once one POST of a pump's has ended, how long to wait for others before recording the outcomes
# together (one transaction for all of them).
GATHER_SECONDS = 0.002
# How long a pump waits on POSTs before it looks at the feed head and its budget again.
POLL_SECONDS = 0.05
# How long a pump task whose subscriptions are all caught up waits for more before it ends: events
# published meanwhile go out at once, without a dispatcher's wake and a new task.
LINGER_SECONDS = 0.25
# Pools of sending threads kept between pumps (one per pump running at the same time suffices).
MAX_IDLE_SENDERS = 16
SECRET_UNAVAILABLE = ("The subscription's secret cannot be decrypted with WEBHOOK_SECRET_KEYS; an operator "
                      "must restore the key (see `manage.py webhook_secrets check`) or the member rotate the secret.")
SEND_FAILED = "The delivery could not be sent because of an error in the server; it is retried."

Clock = Callable[[], datetime]


def retry_policy() -> RetryPolicy:
    return RetryPolicy(schedule=tuple(settings.WEBHOOK_RETRY_SCHEDULE), jitter=settings.WEBHOOK_RETRY_JITTER,
                       retry_after_max=settings.WEBHOOK_RETRY_AFTER_MAX_SECONDS)


@dataclass(frozen=True)
class Job:
    """A claimed delivery, ready to send. Never shows its URL, body or secrets when printed."""

    delivery_id: int
    attempt: int
    lane: str
    subscription_id: Any
    webhook_id: str
    claimed_at: datetime
    after_seq: int | None  # main lane: acknowledging moves the cursor from here...
    through_seq: int | None  # ...to here
    url: str = field(repr=False)
    body: bytes | None = field(repr=False)  # None: nothing is left to send (visibility or filters changed)
    secrets: tuple[str, ...] | None = field(repr=False)  # None: they cannot be decrypted (see send)


def _secrets(subscription: Subscription, now: datetime) -> tuple[str, ...] | None:
    """The secrets that sign for this subscription now, or None if one cannot be decrypted (the
    encryption keys changed): that subscription's deliveries then fail with `secret_unavailable`,
    on the normal retry schedule, where its member and the admin see it, while every other
    subscription carries on."""
    try:
        secrets = [unseal(subscription.secret_encrypted)]
        expires = subscription.previous_secret_expires_at
        if subscription.previous_secret_encrypted and expires and now < expires:
            secrets.append(unseal(subscription.previous_secret_encrypted))
    except ImproperlyConfigured:
        logger.error("The secret of webhook subscription %s cannot be decrypted with WEBHOOK_SECRET_KEYS.",
                     subscription.pk)
        return None
    return tuple(secrets)


@lru_cache(maxsize=16)
def digest(body: bytes | None) -> str:
    """Subscriptions in step share one body object (rendering's body cache), so it is hashed once."""
    return "" if body is None else hashlib.sha256(body).hexdigest()


def _take(deliveries: list[Delivery], now: datetime) -> None:
    """Claim these pending deliveries, whose rows the caller holds locked: one more attempt each, due
    again only once the attempt can no longer be running (WEBHOOK_CLAIM_SECONDS)."""
    for delivery in deliveries:
        delivery.attempt_count += 1
        delivery.next_attempt_at = now + timedelta(seconds=settings.WEBHOOK_CLAIM_SECONDS)
        delivery.enqueued_at, delivery.last_attempt_at = None, now
    update_rows(Delivery, deliveries, ["attempt_count", "next_attempt_at", "enqueued_at", "last_attempt_at"])


def _insert(model: type[Delivery] | type[DeliveryAttempt], rows: list[Any]) -> None:
    """bulk_create for the rows every batch writes, without the ORM's per-value preparation (see
    consortium/db.py); each row gets its key."""
    if not rows:
        return
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    keys = insert_rows(model, [{f.name: getattr(row, f.attname) for f in fields} for row in rows], returning=["id"])
    for row, (key,) in zip(rows, keys):
        row.pk = key
        row._state.adding = False


def _supersede(delivery_ids: list[int], now: datetime) -> None:
    if delivery_ids:
        Delivery.objects.filter(pk__in=delivery_ids, state=Delivery.State.PENDING).update(
            state=Delivery.State.SUPERSEDED, next_attempt_at=None, finished_at=now)


def _job(subscription: Subscription, delivery: Delivery, body: bytes | None, now: datetime) -> Job:
    return Job(delivery.pk, delivery.attempt_count, delivery.lane, subscription.pk, delivery.webhook_id, now,
               delivery.after_seq, delivery.through_seq, subscription.url, body, _secrets(subscription, now))


def _body(batch: Batch, lane: str) -> bytes | None:
    return events_body(lane=lane, events=batch.events, key=batch.key) if batch.events else None


@dataclass
class Claimed:
    jobs: list[Job] = field(default_factory=list)
    advanced: list[Any] = field(default_factory=list)  # the cursor only moved past events not received: claim again
    idle: list[Any] = field(default_factory=list)  # caught up with `through`, not due, or not active


def claim(subscription_ids: list[Any], *, now: datetime, through: int | None = None) -> Claimed:
    """Take each subscription's main-lane batch in flight if it is due, or make its next one from its
    cursor (up to `through`, if given), all in one transaction, with the subscriptions' rows locked
    in key order. A batch in flight that renders differently now (the member's filters or sharing
    groups, or a family's links, changed since it was first sent) is superseded and the same range
    of seqs goes out as a new delivery: receivers drop a `webhook-id` they have seen, so a changed
    body must not go out under the old one."""
    claimed = Claimed()
    with transaction.atomic():
        subscriptions = list(Subscription.objects.select_for_update(of=("self",), no_key=True)
                             .select_related("member").filter(pk__in=subscription_ids).order_by("pk"))
        viewers = viewers_for([subscription.member for subscription in subscriptions])
        pending = {delivery.subscription_id: delivery for delivery in Delivery.objects.select_for_update().filter(
            subscription__in=subscriptions, lane=Delivery.Lane.MAIN, state=Delivery.State.PENDING).order_by("pk")}
        retried: list[tuple[Subscription, Delivery, bytes | None]] = []
        new: list[tuple[Subscription, Delivery, bytes]] = []
        superseded: list[int] = []
        advanced: list[Subscription] = []
        seen: LastRows = {}
        for subscription in subscriptions:
            if subscription.state != Subscription.State.ACTIVE or not subscription.member.is_active:
                claimed.idle.append(subscription.pk)
                continue
            viewer, filters = viewers[subscription.member_id], Filters.of(subscription)
            in_flight = pending.get(subscription.pk)
            if in_flight is not None:
                if in_flight.next_attempt_at is None or in_flight.next_attempt_at > now:
                    claimed.idle.append(subscription.pk)
                    continue
                batch = range_batch(viewer, filters, after=in_flight.after_seq, through=in_flight.through_seq, seen=seen)
                body = _body(batch, in_flight.lane)
                if body is not None and in_flight.body_digest and digest(body) != in_flight.body_digest:
                    superseded.append(in_flight.pk)
                    new.append((subscription, _new_main(subscription, batch, body, after=in_flight.after_seq,
                                                        through=in_flight.through_seq, now=now), body))
                else:
                    retried.append((subscription, in_flight, body))
                continue
            batch = next_batch(viewer, filters, after=subscription.cursor, size=settings.WEBHOOK_BATCH_SIZE,
                               windows=SCAN_WINDOWS, max_bytes=settings.WEBHOOK_MAX_BATCH_BYTES, through=through,
                               seen=seen)
            if batch.events:
                body = _body(batch, Delivery.Lane.MAIN)
                new.append((subscription, _new_main(subscription, batch, body, after=subscription.cursor,
                                                    through=batch.scanned_to, now=now), body))
            elif batch.scanned_to > subscription.cursor:
                subscription.cursor = batch.scanned_to
                advanced.append(subscription)
                claimed.advanced.append(subscription.pk)
            else:
                claimed.idle.append(subscription.pk)
        _supersede(superseded, now)
        update_rows(Subscription, advanced, ["cursor"])
        _insert(Delivery, [delivery for _, delivery, _ in new])
        _take([delivery for _, delivery, _ in retried], now)
        claimed.jobs += [_job(subscription, delivery, body, now) for subscription, delivery, body in (*retried, *new)]
    return claimed


def _new_main(subscription: Subscription, batch: Batch, body: bytes, *, after: int, through: int,
              now: datetime) -> Delivery:
    """A new main-lane batch for (after, through], already claimed (to be created by the caller)."""
    return Delivery(
        subscription=subscription, lane=Delivery.Lane.MAIN, webhook_id=signing.new_message_id(),
        after_seq=after, through_seq=through, first_seq=batch.events[0].seq, last_seq=batch.events[-1].seq,
        event_count=len(batch.events), body_digest=digest(body), created_at=now, attempt_count=1,
        next_attempt_at=now + timedelta(seconds=settings.WEBHOOK_CLAIM_SECONDS), last_attempt_at=now,
    )


def claim_pushes(delivery_ids: list[int], *, now: datetime) -> list[Job]:
    """Take these priority pushes and test pings where due, in one transaction (the incident pushes
    of one dispatch are claimed together). A priority push the main lane has caught up with, or
    whose events the subscription no longer receives, is superseded instead of sent."""
    with transaction.atomic():
        deliveries = [delivery for delivery in (
            Delivery.objects.select_for_update().filter(pk__in=delivery_ids, state=Delivery.State.PENDING)
            .exclude(lane=Delivery.Lane.MAIN).order_by("pk"))
            if delivery.next_attempt_at is not None and delivery.next_attempt_at <= now]
        subscriptions = Subscription.objects.select_related("member").in_bulk(
            {delivery.subscription_id for delivery in deliveries})
        viewers = viewers_for([subscription.member for subscription in subscriptions.values()])
        loaded = {loaded.event.seq: loaded for loaded in load_seqs(sorted(
            {seq for delivery in deliveries if delivery.lane == Delivery.Lane.PRIORITY for seq in delivery.seqs}))}
        ready: list[tuple[Subscription, Delivery, bytes]] = []
        superseded: list[int] = []
        for delivery in deliveries:
            subscription = subscriptions[delivery.subscription_id]
            if delivery.lane == Delivery.Lane.TEST:
                ready.append((subscription, delivery, ping_body(subscription_id=str(subscription.pk),
                                                                timestamp=delivery.created_at)))
                continue
            if subscription.state != Subscription.State.ACTIVE or not subscription.member.is_active:
                continue
            events = [loaded[seq] for seq in delivery.seqs if seq > subscription.cursor and seq in loaded]
            passing = [r for r in render_all(events, viewers[subscription.member_id])
                       if r is not None and r.passes(Filters.of(subscription))]
            body = events_body(lane=delivery.lane, events=passing) if passing else None
            # Nothing left to push, or not what was pushed before (a receiver would drop the
            # changed body as a repeat of its webhook-id): the main lane brings these events.
            if body is None or (delivery.body_digest and digest(body) != delivery.body_digest):
                superseded.append(delivery.pk)
            else:
                ready.append((subscription, delivery, body))
        _supersede(superseded, now)
        _take([delivery for _, delivery, _ in ready], now)
    return [_job(subscription, delivery, body, now) for subscription, delivery, body in ready]


def send(job: Job, *, now: datetime) -> transport.DeliveryResult:
    """One signed POST. The target is checked again here, since DNS may have changed since the URL
    was accepted."""
    if job.body is None:
        return transport.DeliveryResult(error=None, elapsed=0.0, detail="Nothing left to send.")
    if job.secrets is None:
        return transport.DeliveryResult(error="secret_unavailable", elapsed=0.0, detail=SECRET_UNAVAILABLE)
    signer = signing.Signer(secrets=job.secrets, signing_keys=delivery_signing_keys(now))
    headers = {"Content-Type": "application/json", **signer.headers(job.webhook_id, int(time.time()), job.body)}
    return transport.post(
        job.url, job.body, headers=headers,
        allow_private=settings.WEBHOOK_ALLOW_PRIVATE_TARGETS, require_https=settings.WEBHOOK_REQUIRE_HTTPS,
        connect_timeout=settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS, timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
        max_body=settings.WEBHOOK_MAX_RESPONSE_BYTES,
    )


def _disable(subscription: Subscription, reason: str, now: datetime) -> None:
    subscription.state, subscription.state_reason, subscription.state_changed_at = (
        Subscription.State.DISABLED, reason, now)
    logger.warning("Webhook subscription %s disabled (%s); last error %s.", subscription.pk, reason,
                   subscription.last_error_code or "-")


def _attempt(job: Job, result: transport.DeliveryResult) -> DeliveryAttempt:
    webhook_attempt_recorded(job.lane, result.status, result.error)  # counted for /metrics once it commits
    return DeliveryAttempt(
        delivery_id=job.delivery_id, number=job.attempt, started_at=job.claimed_at,
        duration_ms=int(result.elapsed * 1000), status=result.status, error=result.error or "",
        detail=result.detail[:300],
        retry_after=None if result.retry_after is None else int(min(result.retry_after, 2**31 - 1)),
    )


# What one POST achieved, and when it ended.
Outcome = tuple[Job, transport.DeliveryResult, datetime]


def complete(done: list[Outcome], *, rng: random.Random | None = None) -> list[str]:
    """Record attempts' outcomes, each as of the time its POST ended; for each, in order: `delivered`,
    `retry`, `disabled`, `failed` (a push or ping given up), or `stale` (the delivery was taken
    over, superseded or deleted meanwhile: nothing written). Acknowledgements are written together,
    failures one by one. Rows are always locked subscription first, then delivery, as every other
    writer does."""
    acknowledged = _acknowledge([outcome for outcome in done if outcome[1].ok])
    return [("delivered" if job.delivery_id in acknowledged else "stale") if result.ok
            else _failed(job, result, ended, rng) for job, result, ended in done]


def _acknowledge(done: list[Outcome]) -> set[int]:
    """2xx answers: each delivery is marked done if its worker still owns it (the attempt is still
    the one sent), and a main-lane batch moves its subscription's cursor only from where the batch
    began; the ids of the deliveries acknowledged."""
    if not done:
        return set()
    with transaction.atomic():
        # Lost in a database crash, an acknowledgement leaves its delivery claimed and the cursor
        # where it was: the batch goes again, under the same webhook-id, once the claim runs out.
        commit_without_waiting_for_the_disk()
        cursors = dict(Subscription.objects.select_for_update(no_key=True).filter(
            pk__in={job.subscription_id for job, _, _ in done if job.lane != Delivery.Lane.TEST})
            .order_by("pk").values_list("pk", "cursor"))
        fenced = [(job, result, ended) for job, result, ended in done if job.lane == Delivery.Lane.TEST or (
            job.subscription_id in cursors
            and (job.lane != Delivery.Lane.MAIN or cursors[job.subscription_id] == job.after_seq))]
        owned = update_rows(Delivery, [
            Delivery(pk=job.delivery_id, attempt_count=job.attempt, state=Delivery.State.DELIVERED,
                     next_attempt_at=None, finished_at=ended, last_status=result.status, last_error="")
            for job, result, ended in fenced
        ], ["state", "next_attempt_at", "finished_at", "last_status", "last_error"],
            match=["attempt_count"], where={"state": Delivery.State.PENDING})
        acknowledged = [(job, result, ended) for job, result, ended in fenced if job.delivery_id in owned]
        _insert(DeliveryAttempt, [_attempt(job, result) for job, result, _ in acknowledged])
        update_rows(Subscription, [Subscription(pk=job.subscription_id, cursor=job.through_seq, last_success_at=ended)
                                   for job, _, ended in acknowledged if job.lane == Delivery.Lane.MAIN],
                    ["cursor", "last_success_at"])
        update_rows(Subscription, [Subscription(pk=job.subscription_id, last_success_at=ended)
                                   for job, _, ended in acknowledged if job.lane == Delivery.Lane.PRIORITY],
                    ["last_success_at"])
    return {job.delivery_id for job, _, _ in acknowledged}


def _failed(job: Job, result: transport.DeliveryResult, now: datetime, rng: random.Random | None) -> str:
    with transaction.atomic():
        subscription = Subscription.objects.select_for_update(no_key=True).filter(pk=job.subscription_id).first()
        delivery = Delivery.objects.select_for_update().filter(
            pk=job.delivery_id, state=Delivery.State.PENDING, attempt_count=job.attempt).first()
        if subscription is None or delivery is None:
            return "stale"
        attempt = _attempt(job, result)
        delivery.last_status, delivery.last_error = result.status, result.error or ""
        lane = delivery.lane
        if lane == Delivery.Lane.TEST:
            outcome = "failed"
            delivery.state, delivery.next_attempt_at, delivery.finished_at = Delivery.State.FAILED, None, now
        else:
            subscription.last_error_at, subscription.last_error_code = now, result.error or ""
            subscription.last_error_status, subscription.last_error_message = result.status, result.detail[:300]
            delivery.failures += 1
            retry_after = result.retry_after if result.status in (429, 503) else None
            delay = None if result.status == 410 else retry_policy().delay_after(
                delivery.failures, retry_after=retry_after, rng=rng)
            if delay is not None:
                outcome = "retry"
                delivery.next_attempt_at = attempt.next_attempt_at = now + timedelta(seconds=delay)
            else:
                delivery.next_attempt_at = None
                if lane == Delivery.Lane.PRIORITY:
                    delivery.state, delivery.finished_at = Delivery.State.FAILED, now
                if result.status == 410 or lane == Delivery.Lane.MAIN:
                    outcome = "disabled"
                    reason = (Subscription.Reason.ENDPOINT_GONE if result.status == 410
                              else Subscription.Reason.RETRIES_EXHAUSTED)
                    if subscription.state == Subscription.State.ACTIVE:
                        _disable(subscription, reason, now)
                else:
                    outcome = "failed"
            subscription.save(update_fields=["state", "state_reason", "state_changed_at", "last_error_at",
                                             "last_error_code", "last_error_status", "last_error_message"])
        attempt.save()
        delivery.save(update_fields=["state", "next_attempt_at", "finished_at", "failures", "last_status",
                                     "last_error"])
    return outcome


def _timed_send(job: Job, clock: Clock) -> Outcome:
    """`send`, which never raises for a receiver's faults; should it raise all the same, the attempt
    fails like any other (and is retried), instead of taking down every subscription of the pump."""
    try:
        result = send(job, now=clock())
    except Exception:
        logger.exception("Webhook delivery %s could not be sent.", job.webhook_id)
        result = transport.DeliveryResult(error="send_failed", elapsed=0.0, detail=SEND_FAILED)
    return job, result, clock()


def _gather(inflight: dict[Future, Job]) -> list[Outcome]:
    """Wait (at most POLL_SECONDS) for a POST to end, and for a moment for others, so outcomes are
    recorded together. Never longer: the pump meanwhile follows the feed head for the subscriptions
    it has nothing in flight for, and hands them on when its budget is spent."""
    done, rest = wait(inflight, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
    if done and rest:
        done |= wait(rest, timeout=GATHER_SECONDS)[0]
    for future in done:
        del inflight[future]
    return [future.result() for future in done]


def pump(subscription_ids: list[Any], *, clock: Clock = timezone.now, budget: float | None = None,
         linger: float = 0.0, rng: random.Random | None = None) -> Iterator[list[Any]]:
    """Send these subscriptions' batches up to the feed head the dispatcher announced, side by side,
    until each is caught up or a batch of its fails, or `budget` seconds (WEBHOOK_PUMP_SECONDS) are
    spent. A generator: nothing is sent until it is iterated. It yields the subscriptions that have
    more to do, for the caller to wake again (so other work gets a turn between long backlogs): as
    soon as the budget is spent, without waiting for the POSTs still in flight, and those the
    dispatcher announced more for as the pump was ending.

    Each subscription has one batch in flight at a time and gets its next one as soon as its
    receiver acknowledges, whatever the others do: a slow receiver holds up only itself. Claims and
    acknowledgements are written for all the subscriptions ready at that moment in one transaction
    each. The member's visibility is read again for every claim, under the subscription's lock, so
    a member removed from a sharing group gets nothing more of it from the next batch on.

    While the pump runs, its subscriptions keep the `wake_requested_at` that queued it, so the
    dispatcher does not queue more pumps for them: this one follows the feed head itself (it starts
    at the head the dispatcher announced, which subscriptions woken together share, and reads the
    feed's own head as it goes, so events committed meanwhile need not wait for a dispatcher). Once
    every subscription is caught up it waits `linger` seconds (within its budget) for more before
    it ends. When it ends (or hands a subscription on) it clears that mark and only then looks at
    the head once more; the dispatcher announces a head before it looks at the marks, and the feed
    head is never behind the announced one, so one of the two always sees the other."""
    ids = list(dict.fromkeys(subscription_ids))
    through = announced_head()
    budget = settings.WEBHOOK_PUMP_SECONDS if budget is None else budget
    started = time.monotonic()
    ready: list[Any] = ids
    caught_up: list[Any] = []
    handed: set[Any] = set()
    inflight: dict[Future, Job] = {}
    look_at_head = started + POLL_SECONDS
    linger_until: float | None = None

    def in_time() -> bool:
        return time.monotonic() - started < budget

    with _senders(len(ids)) as pool:
        while True:
            while ready and in_time():  # a subscription that only skipped events it does not receive goes again
                claimed = claim(ready, now=clock(), through=through)
                ready = claimed.advanced
                caught_up += claimed.idle
                for job in claimed.jobs:
                    inflight[pool.submit(_timed_send, job, clock)] = job
            if caught_up and time.monotonic() >= look_at_head:
                look_at_head = time.monotonic() + POLL_SECONDS
                moved_on = feed_head()  # more may have been published meanwhile
                if moved_on > through:
                    if in_time():
                        through, ready, caught_up = moved_on, caught_up, []
                        continue
                    ready, caught_up = ready + caught_up, []
            if ready:  # the budget is spent: hand them on now
                _clear_wake_marks(ready)
                handed.update(ready)
                yield ready
                ready = []
            if not inflight:
                now = time.monotonic()
                linger_until = now + linger if linger_until is None else linger_until
                if caught_up and now < linger_until and in_time():
                    time.sleep(max(0.0, min(look_at_head, linger_until) - now))
                    continue
                break
            linger_until = None
            finished = _gather(inflight)
            outcomes = complete(finished, rng=rng)  # a failed batch waits for its retry
            for (job, _, _), outcome in zip(finished, outcomes):
                if outcome == "delivered":
                    # A batch that reached `through` leaves nothing to claim below it: such a
                    # subscription waits with the others for the head to move.
                    (caught_up if job.through_seq >= through else ready).append(job.subscription_id)
    _clear_wake_marks([i for i in ids if i not in handed])
    if caught_up and feed_head() > through:
        yield caught_up  # published as the pump was ending


_idle_senders: list[tuple[int, ThreadPoolExecutor]] = []
_idle_senders_lock = threading.Lock()


@contextmanager
def _senders(size: int) -> Iterator[ThreadPoolExecutor]:
    """A pool of `size` threads (at least) for one pump's POSTs, kept for the next pump once this
    one is done with it: starting fifty threads for every pump cost more than the pump's own
    work when receivers answer quickly. A pool is only ever used by one pump at a time, so a
    slow receiver never holds up another pump's POSTs; one left with POSTs running (the pump
    was abandoned) is not kept."""
    with _idle_senders_lock:
        found = next((entry for entry in _idle_senders if entry[0] >= size), None)
        if found is not None:
            _idle_senders.remove(found)
    workers, pool = found or (max(size, 1), ThreadPoolExecutor(max_workers=max(size, 1), thread_name_prefix="pump"))
    done = False
    try:
        yield pool
        done = True
    finally:
        if done:
            with _idle_senders_lock:
                if len(_idle_senders) < MAX_IDLE_SENDERS:
                    _idle_senders.append((workers, pool))
                    pool = None
        if pool is not None:
            pool.shutdown()


def _clear_wake_marks(ids: list[Any]) -> None:
    """Rows are locked in key order, as every writer of several subscriptions does (no deadlocks).
    A mark lost in a database crash only keeps the dispatcher from waking these subscriptions until
    it goes stale (WEBHOOK_WAKE_STALE_SECONDS)."""
    with transaction.atomic():
        commit_without_waiting_for_the_disk()
        locked = list(Subscription.objects.select_for_update(no_key=True).filter(pk__in=ids).order_by("pk")
                      .values_list("pk", flat=True))
        Subscription.objects.filter(pk__in=locked).update(wake_requested_at=None)


def new_pushes(chosen: list[tuple[Subscription, list[Rendered]]], *, now: datetime) -> list[int]:
    """Priority-lane deliveries of these events, one per subscription, due now and marked queued
    (the caller queues them for `push_deliveries`; the sweep queues them again if that is lost)."""
    deliveries = Delivery.objects.bulk_create([
        Delivery(subscription=subscription, lane=Delivery.Lane.PRIORITY, webhook_id=signing.new_message_id(),
                 seqs=[e.seq for e in events], first_seq=events[0].seq, last_seq=events[-1].seq,
                 event_count=len(events), body_digest=digest(events_body(lane=Delivery.Lane.PRIORITY, events=events)),
                 created_at=now, next_attempt_at=now, enqueued_at=now)
        for subscription, events in chosen
    ])
    return [delivery.pk for delivery in deliveries]


def push_deliveries(delivery_ids: list[int], *, clock: Clock = timezone.now,
                    rng: random.Random | None = None) -> list[str]:
    """Claim these priority pushes and test pings and send them side by side: only the POSTs run in
    threads, each outcome is recorded here with the time its POST ended. A receiver that hangs
    holds up its own POST, never the others', nor the dispatcher, which only queued this."""
    jobs = claim_pushes(delivery_ids, now=clock())
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=min(len(jobs), PUSH_THREADS), thread_name_prefix="push") as pool:
        sent = list(pool.map(lambda job: _timed_send(job, clock), jobs))
    return complete(sent, rng=rng)
