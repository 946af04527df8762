"""Media jobs: every read, scoped by the asking member."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from django.db import connections, router

from consortium.api.errors import NotFound
from members.models import Member

from .models import MediaJob


def media_job_get(*, member: Member, job_id: uuid.UUID) -> MediaJob:
    """The member's own job (without its answer: media_job_frames reads a page of it); anyone
    else's is as missing as an id that never existed."""
    job = MediaJob.objects.filter(pk=job_id, owner=member).defer("file_path", "result").first()
    if job is None:
        raise NotFound()
    return job


# A finished job's signals, each video signal's frames cut to one page in the database, with the
# number of frames it has: a four-hour video hashed at every frame is an answer of some 400,000
# frames (40 MB), which no page request reads whole into a web process.
_PAGE_SQL = """
SELECT (t.signal - 'frames')::text, jsonb_array_length(t.signal -> 'frames'),
       jsonb_path_query_array(t.signal -> 'frames', '$[$first to $last]',
                              jsonb_build_object('first', %s::int, 'last', %s::int))::text
FROM media_mediajob AS j, jsonb_array_elements(j.result) WITH ORDINALITY AS t(signal, n)
WHERE j.id = %s ORDER BY t.n
"""
_SUBSCRIPT_MAX = 2**31 - 1  # a jsonpath subscript is a 32-bit integer; no answer has this many frames


def media_job_frames(job: MediaJob, *, after: int, limit: int) -> tuple[list[dict[str, Any]], dict[str, int] | None]:
    """A finished job's signals with each video signal's frames cut to [after, after + limit), and
    where that page lies ({total, after, next_after, has_more}; None for an answer without video).
    A job deleted since it was read (past MEDIA_JOB_RETENTION_HOURS) is not found."""
    connection = connections[router.db_for_read(MediaJob)]
    if connection.vendor != "postgresql":  # SQLite, one user: the answer is cut here
        result = MediaJob.objects.filter(pk=job.pk).values_list("result", flat=True).first()
        if not result:
            raise NotFound()
        rows = [({k: v for k, v in s.items() if k != "frames"}, s.get("frames")) for s in result]
        return _paged([(signal, None if frames is None else len(frames), frames and frames[after:after + limit])
                       for signal, frames in rows], after)
    first = min(after, _SUBSCRIPT_MAX)
    with connection.cursor() as cursor:
        cursor.execute(_PAGE_SQL, [first, min(first + limit - 1, _SUBSCRIPT_MAX), job.pk])
        rows = cursor.fetchall()
    if not rows:
        raise NotFound()
    return _paged([(orjson.loads(signal), total, None if total is None else orjson.loads(frames))
                   for signal, total, frames in rows], after)


def _paged(rows: list[tuple[dict[str, Any], int | None, list | None]], after: int
           ) -> tuple[list[dict[str, Any]], dict[str, int] | None]:
    signals, page = [], None
    for signal, total, frames in rows:
        if total is None:
            signals.append(signal)
            continue
        signals.append({**signal, "frames": frames})
        end = after + len(frames)
        page = {"total": total, "after": after, "next_after": end, "has_more": end < total}
    return signals, page
