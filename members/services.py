"""Every write about members, their credentials and keys. Each records an audit event."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.conf import settings
from django.db import IntegrityError, transaction
from django.dispatch import Signal
from django.utils import timezone

from audit.services import audit_record
from consortium.api.errors import Conflict, DomainError
from consortium.db import columns, instance_from_row, read_prepared
from consortium_client.jws import MAX_KID_LENGTH, is_visible_ascii_id
from consortium_client.keys import load_public_jwk, public_jwk, thumbprint

from .models import ApiToken, Member, SharingGroup, SigningKey

TOKEN_PREFIX = "cst"
# Writing last_used_at on every request would turn each read into a write; a minute's precision is
# what an administrator needs to tell a live credential from a dead one.
LAST_USED_PRECISION = timedelta(seconds=60)


def refuse_the_server(member: Member) -> None:
    """The server's own row signs with the server's key and is never a member anyone onboards:
    no token, key or status change is made for it."""
    if member.kind == Member.Kind.SERVER:
        raise DomainError("member_is_server", "This is the server itself, not a member: it has no tokens or keys.")


def member_snapshot(member: Member) -> dict[str, Any]:
    return {"slug": member.slug, "name": member.name, "kind": member.kind, "status": member.status}


@transaction.atomic
def member_create(*, slug: str, name: str, kind: str, actor: Any = None) -> Member:
    if kind not in Member.MEMBER_KINDS:
        raise DomainError("member_kind_invalid", f"kind must be one of {', '.join(Member.MEMBER_KINDS)}.")
    if slug == settings.SERVER_ISSUER:
        raise DomainError("member_slug_reserved", f"{slug!r} names the server itself (SERVER_ISSUER).")
    if Member.objects.filter(slug=slug).exists():
        raise Conflict("member_exists", f"A member with slug {slug!r} exists already.")
    member = Member(slug=slug, name=name, kind=kind)
    try:
        member.full_clean()
    except ValidationError as exc:
        raise DomainError("member_invalid", "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
    member.save()
    audit_record(actor=actor, action="member.create", obj=member, after=member_snapshot(member))
    return member


@transaction.atomic
def member_set_status(*, member: Member, status: str, actor: Any = None) -> Member:
    refuse_the_server(member)
    before = member_snapshot(member)
    member.status = status
    member.save(update_fields=["status"])
    audit_record(actor=actor, action=f"member.{status}", obj=member, before=before, after=member_snapshot(member))
    return member


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    plaintext: str


def parse_scopes(scopes: Iterable[str]) -> list[str]:
    wanted = sorted({s.strip() for s in scopes if s.strip()})
    unknown = [s for s in wanted if s not in ApiToken.Scope.values]
    if not wanted or unknown:
        raise DomainError(
            "token_scope_invalid", f"Scopes are a non-empty subset of {', '.join(ApiToken.Scope.values)}.",
            {"unknown": unknown},
        )
    return wanted


@transaction.atomic
def token_create(
    *, member: Member, scopes: Iterable[str], name: str = "", expires_at: datetime | None = None, actor: Any = None
) -> IssuedToken:
    refuse_the_server(member)
    scope_list = parse_scopes(scopes)
    prefix = secrets.token_hex(6)
    plaintext = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        member=member, name=name, prefix=prefix, digest=token_digest(plaintext), scopes=scope_list, expires_at=expires_at
    )
    audit_record(
        actor=actor, action="token.create", obj=token,
        after={"member": member.slug, "prefix": prefix, "scopes": scope_list,
               "expires_at": expires_at.isoformat() if expires_at else None},
    )
    return IssuedToken(token=token, plaintext=plaintext)


# Sent inside token_revoke's transaction, once the token is marked revoked, with `token`, `actor` and
# `now`: what another app stops for it (distribution: the subscriptions whose URL it set) stops in the
# same transaction as the revocation, or the revocation does not happen. Connected in AppConfig.ready().
token_revoked = Signal()


@transaction.atomic
def token_revoke(*, token: ApiToken, actor: Any = None) -> ApiToken:
    """Revoke a token (stolen, or no longer wanted) and stop what it set up that could keep serving
    whoever holds it: the signing keys it registered that are still pending are revoked, and the
    subscriptions whose URL it set are disabled (distribution, through `token_revoked`), all in this
    transaction, each change audited. A token that merely expires stops only itself."""
    revoked_at = ApiToken.objects.select_for_update(no_key=True).values_list("revoked_at", flat=True).get(pk=token.pk)
    if revoked_at is not None:
        token.revoked_at = revoked_at
        return token
    now = timezone.now()
    token.revoked_at = now
    token.save(update_fields=["revoked_at"])
    audit_record(actor=actor, action="token.revoke", obj=token, before={"revoked": False}, after={"revoked": True})
    pending = (SigningKey.objects.select_for_update(of=("self",)).select_related("member")
               .filter(registered_by_token=token, state=SigningKey.State.PENDING).order_by("pk"))
    for key in pending:
        _key_move(key, SigningKey.State.REVOKED, actor=actor, now=now,
                  because={"because": "token_revoked", "token": token.prefix})
    token_revoked.send(sender=ApiToken, token=token, actor=actor, now=now)
    return token


def token_hold(token: ApiToken) -> None:
    """Within a transaction that sets something up with this token: hold the token's row until the
    transaction ends, so that a revocation either comes first, and this refuses (401 token_revoked),
    or waits for the transaction and then finds what it set up."""
    revoked_at = ApiToken.objects.select_for_update(no_key=True).values_list("revoked_at", flat=True).get(pk=token.pk)
    if revoked_at is not None:
        raise DomainError("token_revoked", "This token has been revoked.", status=401)


TOKEN_FORMAT = re.compile(rf"{TOKEN_PREFIX}_([0-9a-f]{{12}})_[A-Za-z0-9_-]{{43}}")


@dataclass(frozen=True)
class FoundToken:
    """A token with its member attached, and the member's sharing groups ({slug: id}, slug order)
    as they were when the token was read."""

    token: ApiToken
    sharing_groups: dict[str, int]


def token_find(plaintext: str) -> FoundToken | None:
    """The token for this credential, whatever its state, or None if it is not one of ours."""
    match = TOKEN_FORMAT.fullmatch(plaintext)
    if match is None:
        return None
    # Read on every API request: one prepared query for the token, its member and the member's
    # sharing groups (a row per group); compiling the equivalent querysets cost several times it.
    rows = read_prepared(
        "token_find",
        f"SELECT {columns(ApiToken, 't')}, {columns(Member, 'm')}, g.slug, g.id FROM members_apitoken t "
        "JOIN members_member m ON m.id = t.member_id "
        "LEFT JOIN members_sharinggroup_members gm ON gm.member_id = m.id "
        "LEFT JOIN members_sharinggroup g ON g.id = gm.sharinggroup_id WHERE t.prefix = %s ORDER BY g.slug",
        [match.group(1)],
    )
    if not rows:
        return None
    split = len(ApiToken._meta.concrete_fields)
    token = instance_from_row(ApiToken, rows[0][:split])
    if not hmac.compare_digest(token.digest, token_digest(plaintext)):
        return None
    token.member = instance_from_row(Member, rows[0][split:-2])
    return FoundToken(token, {slug: group_id for *_, slug, group_id in rows if group_id is not None})


def token_touch(token: ApiToken) -> None:
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


# Approving a key is a second person's act: whoever registered it in the admin cannot approve it.
KEY_SELF_APPROVAL = "key_approval_needs_second_person"
SELF_APPROVAL_MESSAGE = "You registered this key; another administrator must approve it."


def key_snapshot(key: SigningKey) -> dict[str, Any]:
    return {"member": key.member.slug, "kid": key.kid, "state": key.state}


@transaction.atomic
def key_register(
    *, member: Member, jwk: Any, actor: Any = None, approve: bool = False, token: ApiToken | None = None,
) -> SigningKey:
    """Register a public JWK as pending (active at once only when an operator approves). A key an
    administrator registers remembers who did, because someone else must approve it; one registered
    through the API remembers its token, whose revocation revokes it while it is pending. A member has
    at most SIGNING_KEY_MAX_PENDING keys waiting for approval, counted under its row's lock."""
    refuse_the_server(member)
    registered_by = actor if isinstance(actor, AbstractBaseUser) else None
    if approve and registered_by is not None:
        raise DomainError(KEY_SELF_APPROVAL, SELF_APPROVAL_MESSAGE)
    public_key = load_public_jwk(jwk)  # a JWKError is a CodedError: the API answers 400 with its code
    # Re-encoded from the key bytes: base64url spellings that differ only in unused bits are one key.
    jwk = {**public_jwk(public_key), "kid": jwk.get("kid")}
    kid = jwk["kid"] or thumbprint(jwk)
    if not is_visible_ascii_id(kid, MAX_KID_LENGTH):
        raise DomainError("jwk_invalid", f"kid must be a string of 1 to {MAX_KID_LENGTH} visible ASCII characters "
                                         "(no spaces or control characters).")
    print_ = thumbprint(jwk)
    # One member's registrations take turns here, so requests at once cannot pass the limit together.
    Member.objects.select_for_update().only("pk").get(pk=member.pk)
    if token is not None:
        token_hold(token)
    if SigningKey.objects.filter(thumbprint=print_).exists():
        raise Conflict("key_exists", "This public key is registered already.")
    # Key ids are unique across members, as the JWS header and the one JWK Set name a key by kid alone.
    if SigningKey.objects.filter(kid=kid).exists():
        raise Conflict("kid_taken", f"The key id {kid!r} is taken; choose another or omit kid.")
    limit = settings.SIGNING_KEY_MAX_PENDING
    if not approve and SigningKey.objects.filter(member=member, state=SigningKey.State.PENDING).count() >= limit:
        raise Conflict("pending_key_limit_reached", f"You have {limit} signing keys waiting for approval, the "
                       "most allowed; ask an administrator to approve or revoke one.", {"max_pending": limit})
    state = SigningKey.State.ACTIVE if approve else SigningKey.State.PENDING
    try:
        key = SigningKey.objects.create(member=member, kid=kid, thumbprint=print_, public_key=jwk["x"], state=state,
                                        registered_by=registered_by, registered_by_token=token)
    except IntegrityError:
        raise Conflict("key_exists", "This key or key id is registered already.") from None
    after = key_snapshot(key) if token is None else {**key_snapshot(key), "token": token.prefix}
    audit_record(actor=actor, action="key.register", obj=key, after=after)
    return key


# Which state may follow which. Revocation is final; a retired key never signs again.
KEY_TRANSITIONS = {
    SigningKey.State.PENDING: {SigningKey.State.ACTIVE, SigningKey.State.REVOKED},
    SigningKey.State.ACTIVE: {SigningKey.State.RETIRED, SigningKey.State.REVOKED},
    SigningKey.State.RETIRED: {SigningKey.State.REVOKED},
    SigningKey.State.REVOKED: set(),
}


@transaction.atomic
def key_set_state(*, key: SigningKey, state: str, actor: Any = None,
                  compromised_since: datetime | None = None) -> SigningKey:
    """Move a key to `state`. Revoking it (compromised) also withdraws, for everyone, the hash
    statements it signed that the server received at or after `compromised_since` (all of them if
    None), by a task that starts once this commits (hashes.services.revocation)."""
    key = SigningKey.objects.select_for_update().select_related("member").get(pk=key.pk)
    if state not in KEY_TRANSITIONS[SigningKey.State(key.state)]:
        raise DomainError("key_transition_invalid", f"A {key.state} key cannot become {state}.")
    if state == SigningKey.State.ACTIVE and isinstance(actor, AbstractBaseUser) and actor.pk == key.registered_by_id:
        raise DomainError(KEY_SELF_APPROVAL, SELF_APPROVAL_MESSAGE)
    now = timezone.now()
    if compromised_since is not None and (state != SigningKey.State.REVOKED or compromised_since > now):
        raise DomainError("compromised_since_invalid", "compromised_since is a time in the past, given only when revoking.")
    _key_move(key, state, actor=actor, now=now, compromised_since=compromised_since)
    return key


def _key_move(key: SigningKey, state: str, *, actor: Any, now: datetime, because: dict[str, str] | None = None,
              compromised_since: datetime | None = None) -> None:
    """Move a key whose row the caller holds locked to `state`, audited (with why, when given).
    Revoking it starts, once this commits, the withdrawal of what it signed from `compromised_since`
    (everything if None; hashes.services.revocation)."""
    before = key_snapshot(key)
    key.state, key.state_changed_at = state, now
    after = {**key_snapshot(key), **(because or {})}
    fields = ["state", "state_changed_at"]
    if state == SigningKey.State.REVOKED:
        key.compromised_since = compromised_since
        fields.append("compromised_since")
        after["compromised_since"] = compromised_since.isoformat() if compromised_since else None
    key.save(update_fields=fields)
    audit_record(actor=actor, action=f"key.{state}", obj=key, before=before, after=after)
    if state == SigningKey.State.REVOKED:
        from hashes.tasks import enqueue_withdrawal

        transaction.on_commit(lambda: enqueue_withdrawal(key.pk))


@transaction.atomic
def group_set_members(*, group: SharingGroup, members: Iterable[Member], actor: Any = None) -> SharingGroup:
    before = sorted(group.members.values_list("slug", flat=True))
    group.members.set(list(members))
    after = sorted(group.members.values_list("slug", flat=True))
    if before != after:
        audit_record(actor=actor, action="group.members", obj=group, before={"members": before}, after={"members": after})
    return group
