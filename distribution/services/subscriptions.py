"""Every write a member or an administrator makes to a subscription. Each one is audited; a secret
appears only in the return value of the call that created it, never in the audit trail or a log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from consortium.api.errors import Conflict, DomainError
from hashes.models import Label, SignalType
from members.models import Member

from ..delivery import signing, transport
from ..models import Delivery, Subscription
from ..secretbox import seal
from .dispatching import wake
from .heads import feed_head

MAX_OVERLAP_SECONDS = 7 * 86400
MAX_MIN_CORROBORATION = 1000
FILTER_DEFAULTS: dict[str, Any] = {
    "signal_types": [], "labels": [], "incident_only": False, "min_corroboration": 1, "include_retractions": True,
}


def url_for_record(url: str) -> str:
    """The URL without query, fragment or credentials: receivers put tokens there, and the audit
    trail keeps what it records for ever."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def snapshot(subscription: Subscription) -> dict[str, Any]:
    return {
        "member": subscription.member.slug, "url": url_for_record(subscription.url),
        "description": subscription.description, "filters": filters_of(subscription),
        "state": subscription.state, "state_reason": subscription.state_reason, "cursor": subscription.cursor,
    }


def filters_of(subscription: Subscription) -> dict[str, Any]:
    return {name: getattr(subscription, name) for name in FILTER_DEFAULTS}


def check_url(url: Any) -> str:
    if not isinstance(url, str) or not url or len(url) > 2000:
        raise DomainError("url_invalid", "url is a string of 1 to 2000 characters.")
    code = transport.validate_target_url(
        url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_TARGETS, require_https=settings.WEBHOOK_REQUIRE_HTTPS,
        timeout=settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS,
    )
    if code is not None:
        raise DomainError("url_invalid" if code == "invalid_url" else f"url_{code}", transport.ERROR_MESSAGES[code])
    return url


def check_filters(filters: Any, base: dict[str, Any]) -> dict[str, Any]:
    """`base` with the given filters replacing its entries; unknown names and values are refused."""
    if not isinstance(filters, dict):
        raise DomainError("filters_invalid", "filters is an object.")
    unknown = sorted(set(filters) - set(FILTER_DEFAULTS))
    if unknown:
        raise DomainError("filters_invalid", f"Unknown filters: {', '.join(unknown)}.", {"unknown": unknown})
    merged = {**base, **filters}
    for name in ("signal_types", "labels"):
        value = merged[name]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise DomainError("filters_invalid", f"{name} is a list of strings.")
        merged[name] = sorted(set(value))
    bad_types = [t for t in merged["signal_types"] if t not in SignalType.values]
    if bad_types:
        raise DomainError("signal_type_unknown", f"signal_types are among {', '.join(SignalType.values)}.",
                          {"unknown": bad_types})
    known = set(Label.objects.filter(slug__in=merged["labels"]).values_list("slug", flat=True))
    bad_labels = [label for label in merged["labels"] if label not in known]
    if bad_labels:
        raise DomainError("label_unknown", "Some labels are not in the taxonomy.", {"unknown": bad_labels})
    for name in ("incident_only", "include_retractions"):
        if not isinstance(merged[name], bool):
            raise DomainError("filters_invalid", f"{name} is true or false.")
    count = merged["min_corroboration"]
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_MIN_CORROBORATION:
        raise DomainError("filters_invalid", f"min_corroboration is an integer from 1 to {MAX_MIN_CORROBORATION}.")
    return merged


@dataclass(frozen=True)
class WithSecret:
    subscription: Subscription
    secret: str | None  # the plaintext, only when this call created it


def wake_after_commit(subscription: Subscription) -> None:
    if subscription.state == Subscription.State.ACTIVE:
        transaction.on_commit(lambda: wake([subscription.pk], now=timezone.now()))


@transaction.atomic
def subscription_create(
    *, member: Member, url: Any, description: str = "", filters: Any = None, after: int | None = None,
    actor: Any = None, now: datetime | None = None,
) -> WithSecret:
    """A new subscription; by default it receives what is published from now on, and `after` starts
    it further back in the feed (0: from the beginning)."""
    now = now or timezone.now()
    if Subscription.objects.filter(member=member).count() >= settings.WEBHOOK_MAX_SUBSCRIPTIONS:
        raise Conflict("subscription_limit_reached",
                       f"A member may have at most {settings.WEBHOOK_MAX_SUBSCRIPTIONS} subscriptions.")
    check_url(url)
    chosen = check_filters(filters if filters is not None else {}, FILTER_DEFAULTS)
    head = feed_head()
    if after is None:
        after = head
    elif isinstance(after, bool) or not isinstance(after, int) or not 0 <= after <= head:
        raise DomainError("after_invalid", f"after is a feed seq from 0 to the latest, {head}.", {"latest": head})
    secret = signing.generate_secret()
    subscription = Subscription.objects.create(
        member=member, url=url, description=description, cursor=after, secret_encrypted=seal(secret),
        created_at=now, updated_at=now, state_changed_at=now, **chosen,
    )
    audit_record(actor=actor, action="subscription.create", obj=subscription, after=snapshot(subscription))
    wake_after_commit(subscription)
    return WithSecret(subscription, secret)


def _reschedule_in_flight(subscription: Subscription, now: datetime) -> None:
    """The batch waiting for this subscription is tried again now, with a fresh retry schedule."""
    Delivery.objects.filter(subscription=subscription, lane=Delivery.Lane.MAIN, state=Delivery.State.PENDING).update(
        failures=0, next_attempt_at=now)


def set_state(subscription: Subscription, state: str, reason: str, now: datetime) -> None:
    subscription.state, subscription.state_reason, subscription.state_changed_at = state, reason, now
    if state == Subscription.State.ACTIVE:
        _reschedule_in_flight(subscription, now)


@transaction.atomic
def subscription_update(
    *, subscription: Subscription, changes: dict[str, Any], actor: Any = None, now: datetime | None = None,
) -> WithSecret:
    """Change the URL, description or filters, pause (`state: paused`), resume or re-enable
    (`state: active`), or rotate the secret (`rotate_secret: true`, with `secret_overlap_seconds`
    during which the old secret keeps signing beside the new one)."""
    now = now or timezone.now()
    subscription = Subscription.objects.select_for_update().select_related("member").get(pk=subscription.pk)
    before = snapshot(subscription)
    secret = None
    if "url" in changes:
        subscription.url = check_url(changes["url"])
        if subscription.state == Subscription.State.ACTIVE:
            _reschedule_in_flight(subscription, now)
    if "description" in changes:
        description = changes["description"]
        if not isinstance(description, str) or len(description) > 200:
            raise DomainError("description_invalid", "description is a string of at most 200 characters.")
        subscription.description = description
    if "filters" in changes:
        for name, value in check_filters(changes["filters"], filters_of(subscription)).items():
            setattr(subscription, name, value)
    if "state" in changes:
        state = changes["state"]
        if state not in (Subscription.State.ACTIVE, Subscription.State.PAUSED):
            raise DomainError("state_invalid", "state is 'active' (resume or re-enable) or 'paused'.")
        if state != subscription.state:
            set_state(subscription, state, Subscription.Reason.MEMBER if state == "paused" else "", now)
    if changes.get("rotate_secret"):
        overlap = changes.get("secret_overlap_seconds", settings.WEBHOOK_SECRET_OVERLAP_SECONDS)
        if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap <= MAX_OVERLAP_SECONDS:
            raise DomainError("secret_overlap_invalid", f"secret_overlap_seconds is from 0 to {MAX_OVERLAP_SECONDS}.")
        secret = signing.generate_secret()
        subscription.previous_secret_encrypted = subscription.secret_encrypted if overlap else ""
        subscription.previous_secret_expires_at = now + timedelta(seconds=overlap) if overlap else None
        subscription.secret_encrypted, subscription.secret_rotated_at = seal(secret), now
    subscription.updated_at = now
    subscription.save()
    after = snapshot(subscription)
    if secret is not None:
        after["secret_rotated"] = True
        after["previous_secret_expires_at"] = (
            subscription.previous_secret_expires_at.isoformat() if subscription.previous_secret_expires_at else None)
    audit_record(actor=actor, action="subscription.update", obj=subscription, before=before, after=after)
    wake_after_commit(subscription)
    return WithSecret(subscription, secret)


@transaction.atomic
def subscription_delete(*, subscription: Subscription, actor: Any = None) -> None:
    audit_record(actor=actor, action="subscription.delete", obj=subscription, before=snapshot(subscription))
    subscription.delete()


@transaction.atomic
def subscription_replay(
    *, subscription: Subscription, from_seq: Any, actor: Any = None, now: datetime | None = None,
) -> Subscription:
    """Send everything again from `from_seq` on: the cursor moves back and the batch in flight, if
    any, is superseded (a worker still sending it can no longer move the cursor)."""
    now = now or timezone.now()
    subscription = Subscription.objects.select_for_update().select_related("member").get(pk=subscription.pk)
    limit = subscription.cursor + 1
    if isinstance(from_seq, bool) or not isinstance(from_seq, int) or not 1 <= from_seq <= limit:
        raise DomainError("from_seq_invalid", f"from_seq is from 1 to {limit} (the cursor + 1); a replay can "
                          "only send again what was sent, never skip ahead.", {"max": limit})
    before = snapshot(subscription)
    Delivery.objects.filter(subscription=subscription, lane=Delivery.Lane.MAIN, state=Delivery.State.PENDING).update(
        state=Delivery.State.SUPERSEDED, next_attempt_at=None, finished_at=now)
    subscription.cursor, subscription.updated_at = from_seq - 1, now
    subscription.save(update_fields=["cursor", "updated_at"])
    audit_record(actor=actor, action="subscription.replay", obj=subscription, before=before,
                 after={**snapshot(subscription), "from_seq": from_seq})
    wake_after_commit(subscription)
    return subscription


@transaction.atomic
def subscription_test(*, subscription: Subscription, actor: Any = None, now: datetime | None = None) -> Delivery:
    """Queue a signed ping (`{"type": "ping", ...}`); its outcome is in the subscription's deliveries.
    A ping goes out whatever the subscription's state, so a receiver can be checked before resuming."""
    from .. import tasks

    now = now or timezone.now()
    delivery = Delivery.objects.create(
        subscription=subscription, lane=Delivery.Lane.TEST, webhook_id=signing.new_message_id(), created_at=now,
        next_attempt_at=now, enqueued_at=now,
    )
    audit_record(actor=actor, action="subscription.test", obj=subscription, after={"webhook_id": delivery.webhook_id})
    transaction.on_commit(lambda: tasks.enqueue_sends([delivery.pk]))
    return delivery


@transaction.atomic
def subscription_set_state(
    *, subscription: Subscription, state: str, actor: Any = None, now: datetime | None = None,
) -> Subscription:
    """An administrator's pause or re-enable."""
    now = now or timezone.now()
    subscription = Subscription.objects.select_for_update().select_related("member").get(pk=subscription.pk)
    if subscription.state == state:
        return subscription
    before = snapshot(subscription)
    set_state(subscription, state, Subscription.Reason.ADMIN if state != Subscription.State.ACTIVE else "", now)
    subscription.updated_at = now
    subscription.save()
    action = "subscription.reenable" if state == Subscription.State.ACTIVE else "subscription.pause"
    audit_record(actor=actor, action=action, obj=subscription, before=before, after=snapshot(subscription))
    wake_after_commit(subscription)
    return subscription
