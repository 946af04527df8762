"""Labels and incidents: what administrators declare and statements refer to."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record

from ..models import Incident


@transaction.atomic
def incident_close(*, incident: Incident, actor: Any = None) -> Incident:
    if incident.state == Incident.State.CLOSED:
        return incident
    incident.state, incident.closed_at = Incident.State.CLOSED, timezone.now()
    incident.save(update_fields=["state", "closed_at"])
    audit_record(actor=actor, action="incident.close", obj=incident,
                 before={"state": Incident.State.ACTIVE}, after={"state": Incident.State.CLOSED})
    return incident
