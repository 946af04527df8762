from __future__ import annotations

from typing import Any

from django.db import models

from .models import AuditEvent


def audit_record(
    *,
    actor: Any,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    before: Any = None,
    after: Any = None,
    actor_label: str = "operator",
) -> AuditEvent:
    """Append who did what to which object, with the state before and after.

    `actor` is a members.Member, a Django user (an administrator), or None for an operator command
    (or, with `actor_label`, for someone not signed in)."""
    from members.models import Member

    event = AuditEvent(action=action, before=before, after=after)
    if isinstance(actor, Member):
        event.actor_member, event.actor_label = actor, f"member:{actor.slug}"
    elif actor is not None and getattr(actor, "is_authenticated", False):
        event.actor_user, event.actor_label = actor, f"admin:{actor.get_username()}"
    else:
        event.actor_label = actor_label
    if obj is not None:
        event.object_type = obj._meta.label_lower
        event.object_id = str(obj.pk)
        event.object_repr = str(obj)[:200]
    else:
        event.object_type, event.object_id = object_type, object_id
    event.save()
    return event
