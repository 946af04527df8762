"""What a log line is about: the HTTP request it serves, or the task it runs (and the request that
queued that task). Plain context variables, so that threads and tasks each see their own."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
task_id: ContextVar[str | None] = ContextVar("task_id", default=None)
task_name: ContextVar[str | None] = ContextVar("task_name", default=None)

# An incoming X-Request-ID is kept only if it looks like an id: it goes into logs and headers as is.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_from(incoming: str | None) -> str:
    """The caller's X-Request-ID if it is a sane id, else a new one."""
    if incoming and SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex
