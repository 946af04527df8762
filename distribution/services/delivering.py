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
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.utils import timezone

from consortium.db import update_rows
from hashes.visibility import Viewer
from ops.metrics import webhook_attempt_recorded

from ..delivery import signing, transport
from ..keys import delivery_signing_keys
from ..models import Delivery, DeliveryAttempt, Subscription
from ..rendering import (Batch, Filters, Rendered, events_body, load_seqs, next_batch, ping_body, range_batch,
                         render_all, viewers_for)
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


@dataclass(frozen=True)
class Claim:
    job: Job | None
    advanced: bool = False  # the cursor moved past events this subscription does not receive


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


def digest(body: bytes | None) -> str:
    return "" if body is None else hashlib.sha256(body).hexdigest()


def _take(delivery: Delivery, now: datetime) -> int | None:
    attempt = delivery.attempt_count + 1
    taken = Delivery.objects.filter(
        pk=delivery.pk, state=Delivery.State.PENDING, attempt_count=delivery.attempt_count,
    ).update(attempt_count=attempt, next_attempt_at=now + timedelta(seconds=settings.WEBHOOK_CLAIM_SECONDS),
             enqueued_at=None, last_attempt_at=now)
    return attempt if taken else None


def _job(subscription: Subscription, delivery: Delivery, attempt: int, body: bytes | None, now: datetime) -> Job:
    return Job(delivery.pk, attempt, delivery.lane, subscription.pk, delivery.webhook_id, now, delivery.after_seq,
               delivery.through_seq, subscription.url, body, _secrets(subscription, now))


def _body(batch: Batch, lane: str) -> bytes | None:
    return events_body(lane=lane, events=batch.events, key=batch.key) if batch.events else None


def claim_main(subscription_id: Any, *, now: datetime, through: int | None = None) -> Claim:
    """Take the subscription's batch in flight if it is due, or make the next one from its cursor
    (up to `through`, if given): `claim_many` for one subscription."""
    jobs, advanced, _ = claim_many([subscription_id], now=now, through=through)
    return Claim(jobs[0] if jobs else None, advanced=bool(advanced))


def _claim_locked(subscription: Subscription, *, now: datetime, viewer: Viewer, through: int | None,
                  pending: Delivery | None) -> Claim:
    """The claim, with the subscription's row locked by the caller; `pending` is its main-lane batch
    in flight, if any."""
    if subscription.state != Subscription.State.ACTIVE or not subscription.member.is_active:
        return Claim(None)
    filters = Filters.of(subscription)
    if pending is not None:
        if pending.next_attempt_at is None or pending.next_attempt_at > now:
            return Claim(None)
        batch = range_batch(viewer, filters, after=pending.after_seq, through=pending.through_seq)
        body = _body(batch, pending.lane)
        if body is not None and pending.body_digest and digest(body) != pending.body_digest:
            return Claim(_resend_as_new(subscription, pending, batch, body, now))
        attempt = _take(pending, now)
        if attempt is None:
            return Claim(None)
        return Claim(_job(subscription, pending, attempt, body, now))

    batch = next_batch(viewer, filters, after=subscription.cursor, size=settings.WEBHOOK_BATCH_SIZE,
                       windows=SCAN_WINDOWS, max_bytes=settings.WEBHOOK_MAX_BATCH_BYTES, through=through)
    if not batch.events:
        if batch.scanned_to > subscription.cursor:
            Subscription.objects.filter(pk=subscription.pk).update(cursor=batch.scanned_to)
            return Claim(None, advanced=True)
        return Claim(None)
    return Claim(_new_main(subscription, batch, _body(batch, Delivery.Lane.MAIN), after=subscription.cursor,
                           through=batch.scanned_to, now=now))


def _new_main(subscription: Subscription, batch: Batch, body: bytes, *, after: int, through: int,
              now: datetime) -> Job:
    """A new main-lane batch for (after, through], created already claimed by the caller."""
    delivery = Delivery.objects.create(
        subscription=subscription, lane=Delivery.Lane.MAIN, webhook_id=signing.new_message_id(),
        after_seq=after, through_seq=through, first_seq=batch.events[0].seq, last_seq=batch.events[-1].seq,
        event_count=len(batch.events), body_digest=digest(body), created_at=now, attempt_count=1,
        next_attempt_at=now + timedelta(seconds=settings.WEBHOOK_CLAIM_SECONDS), last_attempt_at=now,
    )
    return _job(subscription, delivery, 1, body, now)


def _resend_as_new(subscription: Subscription, pending: Delivery, batch: Batch, body: bytes, now: datetime) -> Job:
    """The batch in flight renders differently now (the member's filters or sharing groups, or a
    family's links, changed since it was first sent). Receivers drop a `webhook-id` they have seen,
    so a changed body must not go out under the old one: the old delivery is superseded and the
    same range of seqs goes out as a new delivery."""
    Delivery.objects.filter(pk=pending.pk, state=Delivery.State.PENDING).update(
        state=Delivery.State.SUPERSEDED, next_attempt_at=None, finished_at=now)
    return _new_main(subscription, batch, body, after=pending.after_seq, through=pending.through_seq, now=now)


def claim_single(delivery_id: int, *, now: datetime) -> Job | None:
    jobs = claim_singles([delivery_id], now=now)
    return jobs[0] if jobs else None


def claim_singles(delivery_ids: list[int], *, now: datetime) -> list[Job]:
    """Take these priority pushes and test pings where due, in one transaction (the incident pushes
    of one dispatch are claimed together). A priority push the main lane has caught up with, or
    whose events the subscription no longer receives, is superseded instead of sent."""
    jobs = []
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
        for delivery in deliveries:
            subscription = subscriptions[delivery.subscription_id]
            if delivery.lane == Delivery.Lane.TEST:
                body: bytes | None = ping_body(subscription_id=str(subscription.pk), timestamp=delivery.created_at)
            else:
                if subscription.state != Subscription.State.ACTIVE or not subscription.member.is_active:
                    continue
                events = [loaded[seq] for seq in delivery.seqs if seq > subscription.cursor and seq in loaded]
                passing = [r for r in render_all(events, viewers[subscription.member_id])
                           if r is not None and r.passes(Filters.of(subscription))]
                body = events_body(lane=delivery.lane, events=passing) if passing else None
                # Nothing left to push, or not what was pushed before (a receiver would drop the
                # changed body as a repeat of its webhook-id): the main lane brings these events.
                if body is None or (delivery.body_digest and digest(body) != delivery.body_digest):
                    Delivery.objects.filter(pk=delivery.pk).update(
                        state=Delivery.State.SUPERSEDED, next_attempt_at=None, finished_at=now)
                    continue
            attempt = _take(delivery, now)
            if attempt is not None:
                jobs.append(_job(subscription, delivery, attempt, body, now))
    return jobs


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


def complete(job: Job, result: transport.DeliveryResult, *, now: datetime,
             rng: random.Random | None = None) -> str:
    """Record an attempt's outcome: `delivered`, `retry`, `disabled`, `failed` (a push or ping given
    up), or `stale` (the delivery was taken over, superseded or deleted meanwhile: nothing written).
    Rows are always locked subscription first, then delivery, as every other writer does."""
    if result.ok:
        return _acknowledged(job, result, now)
    return _failed(job, result, now, rng)


def _mark_delivered(job: Job, result: transport.DeliveryResult, now: datetime) -> bool:
    """Mark the delivery done and record the attempt, if this worker still owns the delivery."""
    owned = Delivery.objects.filter(
        pk=job.delivery_id, state=Delivery.State.PENDING, attempt_count=job.attempt,
    ).update(state=Delivery.State.DELIVERED, next_attempt_at=None, finished_at=now, last_status=result.status,
             last_error="")
    if owned:
        _attempt(job, result).save()
    return bool(owned)


def _acknowledged(job: Job, result: transport.DeliveryResult, now: datetime) -> str:
    """A 2xx: move the cursor (main lane) from where the batch began, and mark the delivery done if
    this worker still owns it."""
    with transaction.atomic():
        if job.lane != Delivery.Lane.TEST:
            subscription = Subscription.objects.filter(pk=job.subscription_id)
            if job.lane == Delivery.Lane.MAIN:
                moved = subscription.filter(cursor=job.after_seq).update(cursor=job.through_seq, last_success_at=now)
            else:
                moved = subscription.update(last_success_at=now)
            if not moved:
                transaction.set_rollback(True)
                return "stale"
        if not _mark_delivered(job, result, now):
            transaction.set_rollback(True)
            return "stale"
    return "delivered"


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


def deliver(job: Job, *, clock: Clock, rng: random.Random | None = None) -> str:
    return complete(job, send(job, now=clock()), now=clock(), rng=rng)


def claim_many(subscription_ids: list[Any], *, now: datetime,
               through: int | None) -> tuple[list[Job], list[Any], list[Any]]:
    """`claim_main` for several subscriptions in one transaction: the claimed jobs, the subscriptions
    whose cursor only moved past events they do not receive (to claim again), and the others (caught
    up with `through`, not due, or not active)."""
    jobs, advanced, idle = [], [], []
    with transaction.atomic():
        subscriptions = list(Subscription.objects.select_for_update(of=("self",), no_key=True)
                             .select_related("member").filter(pk__in=subscription_ids).order_by("pk"))
        viewers = viewers_for([subscription.member for subscription in subscriptions])
        pending = {delivery.subscription_id: delivery for delivery in Delivery.objects.filter(
            subscription__in=subscriptions, lane=Delivery.Lane.MAIN, state=Delivery.State.PENDING).order_by()}
        for subscription in subscriptions:
            claim = _claim_locked(subscription, now=now, viewer=viewers[subscription.member_id], through=through,
                                  pending=pending.get(subscription.pk))
            if claim.job is not None:
                jobs.append(claim.job)
            else:
                (advanced if claim.advanced else idle).append(subscription.pk)
    return jobs, advanced, idle


def acknowledge_many(done: list[tuple[Job, transport.DeliveryResult]], *, now: datetime) -> list[Any]:
    """Main-lane batches acknowledged (2xx), recorded together: each moves its subscription's cursor
    if its worker still owns it and the cursor is still where the batch began (the same fences as
    `complete`); the subscriptions whose cursor moved."""
    if not done:
        return []
    with transaction.atomic():
        cursors = dict(Subscription.objects.select_for_update(no_key=True).filter(
            pk__in=[job.subscription_id for job, _ in done]).order_by("pk").values_list("pk", "cursor"))
        candidates = [(job, result) for job, result in done if cursors.get(job.subscription_id) == job.after_seq]
        owned = _mark_many_delivered(candidates, now)
        acknowledged = [(job, result) for job, result in candidates if job.delivery_id in owned]
        DeliveryAttempt.objects.bulk_create([_attempt(job, result) for job, result in acknowledged])
        update_rows(Subscription, [Subscription(pk=job.subscription_id, cursor=job.through_seq, last_success_at=now)
                                   for job, _ in acknowledged], ["cursor", "last_success_at"])
    return [job.subscription_id for job, _ in acknowledged]


def _mark_many_delivered(done: list[tuple[Job, transport.DeliveryResult]], now: datetime) -> set[int]:
    """Mark these deliveries delivered where the attempt is still the one that was sent; their ids."""
    if not done:
        return set()
    if connection.vendor != "postgresql":
        return {job.delivery_id for job, result in done if Delivery.objects.filter(
            pk=job.delivery_id, state=Delivery.State.PENDING, attempt_count=job.attempt,
        ).update(state=Delivery.State.DELIVERED, next_attempt_at=None, finished_at=now, last_status=result.status,
                 last_error="")}
    table = Delivery._meta.db_table
    values = ", ".join(["(%s::bigint, %s::integer, %s::smallint)"] * len(done))
    params: list[Any] = [Delivery.State.DELIVERED, now]
    for job, result in done:
        params += [job.delivery_id, job.attempt, result.status]
    params.append(Delivery.State.PENDING)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS d SET state = %s, next_attempt_at = NULL, finished_at = %s, last_status = v.status, "
            f"last_error = '' FROM (VALUES {values}) AS v(id, attempt, status) "
            "WHERE d.id = v.id AND d.attempt_count = v.attempt AND d.state = %s RETURNING d.id", params)
        return {row[0] for row in cursor.fetchall()}


def _timed_send(job: Job, clock: Clock) -> tuple[transport.DeliveryResult, datetime]:
    """`send`, which never raises for a receiver's faults; should it raise all the same, the attempt
    fails like any other (and is retried), instead of taking down every subscription of the pump."""
    try:
        result = send(job, now=clock())
    except Exception:
        logger.exception("Webhook delivery %s could not be sent.", job.webhook_id)
        result = transport.DeliveryResult(error="send_failed", elapsed=0.0, detail=SEND_FAILED)
    return result, clock()


def _gather(inflight: dict[Future, Job]) -> list[tuple[Job, transport.DeliveryResult, datetime]]:
    """Wait (at most POLL_SECONDS) for a POST to end, and for a moment for others, so outcomes are
    recorded together. Never longer: the pump meanwhile follows the feed head for the subscriptions
    it has nothing in flight for, and hands them on when its budget is spent."""
    done, rest = wait(inflight, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
    if done and rest:
        done |= wait(rest, timeout=GATHER_SECONDS)[0]
    return [(inflight.pop(future), *future.result()) for future in done]


def pump_group(subscription_ids: list[Any], *, clock: Clock = timezone.now, budget: float | None = None,
               rng: random.Random | None = None, hand_off: Callable[[list[Any]], None] | None = None) -> list[Any]:
    """Send these subscriptions' batches up to the feed head the dispatcher announced, side by side,
    until each is caught up or a batch of its fails, or `budget` seconds (WEBHOOK_PUMP_SECONDS) are
    spent; the subscriptions with more to do, for the caller to wake again (so other work gets a
    turn between long backlogs). With `hand_off`, those are handed to it as soon as the budget is
    spent, rather than when the last POST in flight ends.

    Each subscription has one batch in flight at a time and gets its next one as soon as its
    receiver acknowledges, whatever the others do: a slow receiver holds up only itself. Claims and
    acknowledgements are written for all the subscriptions ready at that moment in one transaction
    each. The member's visibility is read again for every claim, under the subscription's lock, so
    a member removed from a sharing group gets nothing more of it from the next batch on.

    While the pump runs, its subscriptions keep the `wake_requested_at` that queued it, so the
    dispatcher does not queue more pumps for them: this one follows the announced head itself. When
    it ends (or hands a subscription on) it clears that mark and only then looks at the head once
    more; the dispatcher announces a head before it looks at the marks, so one of the two always
    sees the other."""
    ids = list(dict.fromkeys(subscription_ids))
    through = announced_head()
    budget = settings.WEBHOOK_PUMP_SECONDS if budget is None else budget
    started = time.monotonic()
    ready, caught_up, more, handed = ids, [], [], set()
    inflight: dict[Future, Job] = {}
    look_at_head = started + POLL_SECONDS

    def in_time() -> bool:
        return time.monotonic() - started < budget

    def release(subscriptions: list[Any]) -> None:
        if hand_off is None:
            more.extend(subscriptions)
            return
        _clear_wake_marks(subscriptions)
        handed.update(subscriptions)
        hand_off(subscriptions)

    with ThreadPoolExecutor(max_workers=len(ids) or 1, thread_name_prefix="pump") as pool:
        while True:
            while ready and in_time():  # a subscription that only skipped events it does not receive goes again
                jobs, ready, idle = claim_many(ready, now=clock(), through=through)
                caught_up += idle
                for job in jobs:
                    inflight[pool.submit(_timed_send, job, clock)] = job
            if ready:  # the budget is spent
                release(ready)
                ready = []
            if caught_up and time.monotonic() >= look_at_head:
                look_at_head = time.monotonic() + POLL_SECONDS
                moved_on = announced_head()  # a dispatcher may have announced more meanwhile
                if moved_on > through:
                    if in_time():
                        through, ready, caught_up = moved_on, caught_up, []
                        continue
                    release(caught_up)
                    caught_up = []
            if not inflight:
                break
            finished = _gather(inflight)
            for job, result, ended in finished:
                if not result.ok:
                    complete(job, result, now=ended, rng=rng)  # a failed batch waits for its retry
            ready = acknowledge_many([(job, result) for job, result, _ in finished if result.ok], now=clock())
    _clear_wake_marks([i for i in ids if i not in handed])
    if caught_up and announced_head() > through:
        more += caught_up  # announced as the pump was ending
    return list(dict.fromkeys(more))


def _clear_wake_marks(ids: list[Any]) -> None:
    """Rows are locked in key order, as every writer of several subscriptions does (no deadlocks)."""
    with transaction.atomic():
        locked = list(Subscription.objects.select_for_update(no_key=True).filter(pk__in=ids).order_by("pk")
                      .values_list("pk", flat=True))
        Subscription.objects.filter(pk__in=locked).update(wake_requested_at=None)


def pump(subscription_id: Any, *, clock: Clock = timezone.now, budget: float | None = None,
         rng: random.Random | None = None) -> bool:
    """`pump_group` for one subscription: True when it has more to do."""
    return bool(pump_group([subscription_id], clock=clock, budget=budget, rng=rng))


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
    """Claim these priority pushes (or pings) and send them side by side: only the POSTs run in
    threads, each outcome is recorded here with the time its POST ended. A receiver that hangs
    holds up its own POST, never the others', nor the dispatcher, which only queued this."""
    jobs = claim_singles(delivery_ids, now=clock())
    if not jobs:
        return []

    with ThreadPoolExecutor(max_workers=min(len(jobs), PUSH_THREADS), thread_name_prefix="push") as pool:
        sent = list(pool.map(lambda job: _timed_send(job, clock), jobs))
    return [complete(job, result, now=ended, rng=rng) for job, (result, ended) in zip(jobs, sent)]


def send_single(delivery_id: int, *, clock: Clock = timezone.now, rng: random.Random | None = None) -> str | None:
    job = claim_single(delivery_id, now=clock())
    return None if job is None else deliver(job, clock=clock, rng=rng)
