"""Every write a member, an administrator or an operator makes to a subscription. Each one is
audited; a secret appears only in the return value of the call that created it, never in the audit
trail, a log or a command's output.

A subscription deleted while a call waits for its row answers 404, as if the call had come later."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from consortium.api.errors import Conflict, DomainError, NotFound
from hashes.models import Label, SignalType
from hashes.services.feed import feed_head
from members.models import ApiToken, Member
from members.services import token_hold

from ..delivery import signing, transport
from ..models import Delivery, Subscription
from ..secretbox import is_newest, reseal, seal, unseal

MAX_OVERLAP_SECONDS = 7 * 86400
MAX_MIN_CORROBORATION = 1000
MAX_FILTER_ITEMS = 100  # signal types or labels in one filter (the taxonomy is far smaller)
UNKNOWN_SHOWN = 20
RESEAL_BATCH_SIZE = 500
FILTER_DEFAULTS: dict[str, Any] = {
    "signal_types": [], "labels": [], "incident_only": False, "min_corroboration": 1, "include_retractions": True,
    "exclude_disputed": False,
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


def url_for_display(url: str) -> str:
    """The URL as administrators see it: where it points, with its user info, every query value and
    any fragment shown as ***, since receivers put tokens there. The stored URL is unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    netloc = f"***@{parts.netloc.rpartition('@')[2]}" if "@" in parts.netloc else parts.netloc
    query = "&".join(
        f"{piece.partition('=')[0]}=***" if "=" in piece else "***" for piece in parts.query.split("&") if piece
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, "***" if parts.fragment else ""))


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
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value[:MAX_FILTER_ITEMS + 1]):
            raise DomainError("filters_invalid", f"{name} is a list of strings.")
        if len(value) > MAX_FILTER_ITEMS:
            raise DomainError("filters_invalid", f"{name} has at most {MAX_FILTER_ITEMS} entries.")
        merged[name] = sorted(set(value))
    bad_types = [t for t in merged["signal_types"] if t not in SignalType.values]
    if bad_types:
        raise DomainError("signal_type_unknown", f"signal_types are among {', '.join(SignalType.values)}.",
                          {"unknown": bad_types[:UNKNOWN_SHOWN]})
    known = set(Label.objects.filter(slug__in=merged["labels"]).values_list("slug", flat=True))
    bad_labels = [label for label in merged["labels"] if label not in known]
    if bad_labels:
        raise DomainError("label_unknown", "Some labels are not in the taxonomy.", {"unknown": bad_labels[:UNKNOWN_SHOWN]})
    for name in ("incident_only", "include_retractions", "exclude_disputed"):
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
    changed: bool = True  # False: the request changed nothing, and nothing was written


def _locked(subscription: Subscription) -> Subscription:
    """The subscription's row, read again under its lock; a DELETE that got there first is a 404."""
    locked = (Subscription.objects.select_for_update(of=("self",)).select_related("member")
              .filter(pk=subscription.pk).first())
    if locked is None:
        raise NotFound("This subscription no longer exists.")
    return locked


def _refuse_over_limit(member: Member) -> None:
    if Subscription.objects.filter(member=member).count() >= settings.WEBHOOK_MAX_SUBSCRIPTIONS:
        raise Conflict("subscription_limit_reached",
                       f"A member may have at most {settings.WEBHOOK_MAX_SUBSCRIPTIONS} subscriptions.")


def subscription_create(
    *, member: Member, url: Any, description: str = "", filters: Any = None, after: int | None = None,
    actor: Any = None, token: ApiToken | None = None, now: datetime | None = None,
) -> WithSecret:
    """A new subscription; by default it receives what is published from now on, and `after` starts
    it further back in the feed (0: from the beginning). `token`, the API token of the request,
    answers for it: revoking that token disables it.

    The URL is resolved (seconds, at worst) before any lock is taken; then the member's row is locked
    while its subscriptions are counted and the new one is inserted, so requests sent together
    cannot all pass WEBHOOK_MAX_SUBSCRIPTIONS. A member already at the limit is refused before the
    lookup too."""
    now = now or timezone.now()
    _refuse_over_limit(member)
    check_url(url)
    chosen = check_filters(filters if filters is not None else {}, FILTER_DEFAULTS)
    with transaction.atomic():
        Member.objects.select_for_update().only("pk").get(pk=member.pk)
        _refuse_over_limit(member)
        if token is not None:
            token_hold(token)
        head = feed_head()
        if after is None:
            after = head
        elif isinstance(after, bool) or not isinstance(after, int) or not 0 <= after <= head:
            raise DomainError("after_invalid", f"after is a feed seq from 0 to the latest, {head}.", {"latest": head})
        secret = signing.generate_secret()
        subscription = Subscription.objects.create(
            member=member, url=url, description=description, cursor=after, secret_encrypted=seal(secret),
            set_by_token=token, created_at=now, updated_at=now, state_changed_at=now, **chosen,
        )
        audit_record(actor=actor, action="subscription.create", obj=subscription,
                     after=_with_token(snapshot(subscription), token))
    return WithSecret(subscription, secret)


def _with_token(record: dict[str, Any], token: ApiToken | None) -> dict[str, Any]:
    """An audit record's state, with the token that made the change when a token did."""
    return record if token is None else {**record, "token": token.prefix}


def _reschedule_in_flight(subscription: Subscription, now: datetime) -> None:
    """The batch waiting for this subscription is tried again now, with a fresh retry schedule."""
    Delivery.objects.filter(subscription=subscription, lane=Delivery.Lane.MAIN, state=Delivery.State.PENDING).update(
        failures=0, next_attempt_at=now)


def set_state(subscription: Subscription, state: str, reason: str, now: datetime) -> None:
    subscription.state, subscription.state_reason, subscription.state_changed_at = state, reason, now
    if state == Subscription.State.ACTIVE:
        _reschedule_in_flight(subscription, now)


def _field_changes(subscription: Subscription, changes: dict[str, Any]) -> dict[str, Any]:
    """The checked new values of the URL, description and filters that differ from the current ones."""
    wanted: dict[str, Any] = {}
    if "url" in changes:
        wanted["url"] = changes["url"]  # checked by the caller before it took the row's lock
    if "description" in changes:
        description = changes["description"]
        if not isinstance(description, str) or len(description) > 200:
            raise DomainError("description_invalid", "description is a string of at most 200 characters.")
        wanted["description"] = description
    if "filters" in changes:
        wanted.update(check_filters(changes["filters"], filters_of(subscription)))
    return {name: value for name, value in wanted.items() if getattr(subscription, name) != value}


def _state_change(subscription: Subscription, changes: dict[str, Any]) -> str | None:
    """The state a member asks for, if it differs. What an administrator paused only an
    administrator resumes, and what a revoked token set up only an administrator re-enables (no
    state change of the member's, not even a pause, lifts it); a member may re-enable what the server
    disabled and resume its own pause."""
    if "state" not in changes:
        return None
    state = changes["state"]
    if state not in (Subscription.State.ACTIVE, Subscription.State.PAUSED):
        raise DomainError("state_invalid", "state is 'active' (resume or re-enable) or 'paused'.")
    if state == subscription.state:
        return None
    if state == Subscription.State.ACTIVE and subscription.state_reason == Subscription.Reason.ADMIN:
        raise Conflict("paused_by_admin", "An administrator paused this subscription; only an administrator "
                       "can resume it.")
    if subscription.state_reason == Subscription.Reason.TOKEN_REVOKED:  # paused first, then resumed, too
        raise Conflict("disabled_by_token_revocation", "The API token that set this subscription's URL was revoked; "
                       "only an administrator can re-enable it.")
    return state


def _secret_overlap(changes: dict[str, Any]) -> int | None:
    """The overlap in seconds when the secret is to be rotated, else None."""
    if not changes.get("rotate_secret"):
        return None
    overlap = changes.get("secret_overlap_seconds", settings.WEBHOOK_SECRET_OVERLAP_SECONDS)
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap <= MAX_OVERLAP_SECONDS:
        raise DomainError("secret_overlap_invalid", f"secret_overlap_seconds is from 0 to {MAX_OVERLAP_SECONDS}.")
    return overlap


@transaction.atomic
def subscription_update(
    *, subscription: Subscription, changes: dict[str, Any], actor: Any = None, token: ApiToken | None = None,
    now: datetime | None = None,
) -> WithSecret:
    """A member's change: the URL, description or filters, pause (`state: paused`), resume or
    re-enable (`state: active`), or rotate the secret (`rotate_secret: true`, with
    `secret_overlap_seconds` during which the old secret keeps signing beside the new one). A new URL
    is answered for by `token`, the request's API token, as if it had created the subscription.

    Everything is checked before anything is written. A request that changes nothing (empty, or
    every value as it already is) writes nothing: no save, no audit record, no wake."""
    now = now or timezone.now()
    if "url" in changes:
        check_url(changes["url"])  # resolves the host: never while holding the row's lock
        if token is not None:
            token_hold(token)  # before the row, in the order token_revoke takes them
    subscription = _locked(subscription)
    fields = _field_changes(subscription, changes)
    state = _state_change(subscription, changes)
    overlap = _secret_overlap(changes)
    if not fields and state is None and overlap is None:
        return WithSecret(subscription, None, changed=False)

    before = snapshot(subscription)
    for name, value in fields.items():
        setattr(subscription, name, value)
    if "url" in fields:
        subscription.set_by_token = token
    if state is not None:
        set_state(subscription, state, Subscription.Reason.MEMBER if state == Subscription.State.PAUSED else "", now)
    elif "url" in fields and subscription.state == Subscription.State.ACTIVE:
        _reschedule_in_flight(subscription, now)
    secret = None
    if overlap is not None:
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
    if "url" in fields:
        after = _with_token(after, token)
    audit_record(actor=actor, action="subscription.update", obj=subscription, before=before, after=after)
    return WithSecret(subscription, secret)


def subscriptions_disable_for_token(*, token: ApiToken, actor: Any = None, now: datetime | None = None) -> int:
    """Disable every subscription whose URL this token set (it created it, or last changed its URL),
    whatever its state, with reason `token_revoked`: none sends again, to what may be a thief's
    URL, until an administrator re-enables it (its cursor kept, so nothing is skipped). Each one is
    audited. Runs inside token_revoke's transaction; returns how many."""
    now = now or timezone.now()
    stopped = (Subscription.objects.select_for_update(of=("self",)).select_related("member")
               .filter(set_by_token=token).order_by("pk"))
    count = 0
    for subscription in stopped:
        before = snapshot(subscription)
        set_state(subscription, Subscription.State.DISABLED, Subscription.Reason.TOKEN_REVOKED, now)
        subscription.updated_at = now
        subscription.save(update_fields=["state", "state_reason", "state_changed_at", "updated_at"])
        audit_record(actor=actor, action="subscription.disable", obj=subscription, before=before,
                     after=_with_token(snapshot(subscription), token))
        count += 1
    return count


def token_revoked_received(sender: Any, *, token: ApiToken, actor: Any = None, now: datetime | None = None,
                           **kwargs: Any) -> None:
    """members' `token_revoked`, sent within the revocation's transaction."""
    subscriptions_disable_for_token(token=token, actor=actor, now=now)


@transaction.atomic
def subscription_delete(*, subscription: Subscription, actor: Any = None) -> None:
    # The row first, as every other writer locks it, then its deliveries (the cascade).
    subscription = _locked(subscription)
    audit_record(actor=actor, action="subscription.delete", obj=subscription, before=snapshot(subscription))
    subscription.delete()


@transaction.atomic
def subscription_replay(
    *, subscription: Subscription, from_seq: Any, actor: Any = None, now: datetime | None = None,
) -> Subscription:
    """Send everything again from `from_seq` on: the cursor moves back and the batch in flight, if
    any, is superseded (a worker still sending it can no longer move the cursor)."""
    now = now or timezone.now()
    subscription = _locked(subscription)
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
    return subscription


@transaction.atomic
def subscription_test(*, subscription: Subscription, actor: Any = None, now: datetime | None = None) -> Delivery:
    """Queue a signed ping (`{"type": "ping", ...}`); its outcome is in the subscription's deliveries.
    A ping goes out whatever the subscription's state, so a receiver can be checked before resuming,
    but never for a suspended member, and one at a time: while a ping waits to be sent, another is
    refused (409 `test_in_flight`), so pings cannot be piled onto a receiver. The caller queues the
    ping for sending (`push_deliveries`) once this commits; the sweep sends it if that is lost."""
    now = now or timezone.now()
    subscription = _locked(subscription)
    if not subscription.member.is_active:
        raise DomainError("member_suspended", "This member is suspended.", status=403)
    if Delivery.objects.filter(subscription=subscription, lane=Delivery.Lane.TEST,
                               state=Delivery.State.PENDING).exists():
        raise Conflict("test_in_flight", "A test ping of this subscription is waiting to be sent; its outcome "
                       "will be in deliveries/.")
    delivery = Delivery.objects.create(
        subscription=subscription, lane=Delivery.Lane.TEST, webhook_id=signing.new_message_id(), created_at=now,
        next_attempt_at=now, enqueued_at=now,
    )
    audit_record(actor=actor, action="subscription.test", obj=subscription, after={"webhook_id": delivery.webhook_id})
    return delivery


@transaction.atomic
def subscription_set_state(
    *, subscription: Subscription, state: str, actor: Any = None, now: datetime | None = None,
) -> Subscription:
    """An administrator's pause, or resume or re-enable whatever stopped it (a member cannot resume
    an administrator's pause)."""
    now = now or timezone.now()
    subscription = _locked(subscription)
    if subscription.state == state:
        return subscription
    before = snapshot(subscription)
    set_state(subscription, state, Subscription.Reason.ADMIN if state != Subscription.State.ACTIVE else "", now)
    subscription.updated_at = now
    subscription.save()
    action = "subscription.reenable" if state == Subscription.State.ACTIVE else "subscription.pause"
    audit_record(actor=actor, action=action, obj=subscription, before=before, after=snapshot(subscription))
    return subscription


SECRET_FIELDS = ("secret_encrypted", "previous_secret_encrypted")


@dataclass(frozen=True)
class SecretsReport:
    """Counts of stored secrets (a subscription has one, or two while a rotation overlaps), and the
    ids of subscriptions with a secret no configured key decrypts. Never a secret."""

    newest: int = 0  # under the newest key (after a reseal: including those it just moved there)
    older: int = 0  # readable, under an older key
    resealed: int = 0
    unreadable: list[Any] = field(default_factory=list)


def subscription_secrets_check() -> SecretsReport:
    """Which stored secrets the configured keys decrypt, and which of them the newest key alone does."""
    newest = older = 0
    unreadable: list[Any] = []
    rows = Subscription.objects.order_by("pk").values("pk", *SECRET_FIELDS)
    for row in rows.iterator(chunk_size=RESEAL_BATCH_SIZE):
        readable = True
        for sealed in filter(None, (row[name] for name in SECRET_FIELDS)):
            if is_newest(sealed):
                newest += 1
                continue
            try:
                unseal(sealed)
            except ImproperlyConfigured:
                readable = False
            else:
                older += 1
        if not readable:
            unreadable.append(row["pk"])
    return SecretsReport(newest=newest, older=older, unreadable=unreadable)


def subscription_secrets_reseal(*, batch_size: int = RESEAL_BATCH_SIZE, actor: Any = None) -> SecretsReport:
    """Encrypt every readable secret under the newest WEBHOOK_SECRET_KEYS key (the first), a batch of
    subscriptions per transaction, each row locked as every other writer of a secret locks it. A
    secret no key decrypts is left as it is and its subscription reported. One audit record, with
    the counts, says that an operator did it."""
    newest = resealed = 0
    unreadable: list[Any] = []
    last = None
    while True:
        with transaction.atomic():
            rows = Subscription.objects.select_for_update().order_by("pk")
            if last is not None:
                rows = rows.filter(pk__gt=last)
            batch = list(rows.values("pk", *SECRET_FIELDS)[:batch_size])
            for row in batch:
                moved: dict[str, str] = {}
                for name in SECRET_FIELDS:
                    sealed = row[name]
                    if not sealed:
                        continue
                    if is_newest(sealed):
                        newest += 1
                        continue
                    try:
                        moved[name] = reseal(sealed)
                    except ImproperlyConfigured:
                        if row["pk"] not in unreadable:
                            unreadable.append(row["pk"])
                if moved:
                    Subscription.objects.filter(pk=row["pk"]).update(**moved)
                    resealed += len(moved)
        if len(batch) < batch_size:
            break
        last = batch[-1]["pk"]
    report = SecretsReport(newest=newest + resealed, resealed=resealed, unreadable=unreadable)
    audit_record(actor=actor, action="subscriptions.secrets_reseal", object_type=Subscription._meta.label_lower,
                 object_id="*", after={"resealed": resealed, "already_newest": newest, "unreadable": len(unreadable)})
    return report
