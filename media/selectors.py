"""Media jobs: every read, scoped by the asking member."""

from __future__ import annotations

import uuid

from consortium.api.errors import NotFound
from members.models import Member

from .models import MediaJob


def media_job_get(*, member: Member, job_id: uuid.UUID) -> MediaJob:
    """The member's own job; anyone else's is as missing as an id that never existed."""
    job = MediaJob.objects.filter(pk=job_id, owner=member).defer("file_path").first()
    if job is None:
        raise NotFound()
    return job
