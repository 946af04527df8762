"""While the database cannot be reached (restarting, failing over, out of connections) a request
cannot be served, but nothing is wrong with the request: it answers 503 `database_unavailable` with
Retry-After, which clients retry (resubmitting statements is safe: a jti answers with its
submission), instead of a 500 that reads as a defect. The next request after the database is back
reconnects by itself (CONN_HEALTH_CHECKS, consortium/postgresql/base.py)."""

from __future__ import annotations

import logging
from typing import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from taxii.rendering import error_response as taxii_error, is_taxii_path

from .views import error_json

logger = logging.getLogger(__name__)

CODE = "database_unavailable"
MESSAGE = "The database is unavailable for a moment; nothing was changed. Try again after Retry-After seconds."
RETRY_AFTER_SECONDS = 5


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # OperationalError: the connection failed or was lost (server restarting, recovering, no
        # connection slot). InterfaceError: a connection already closed under the request.
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        cause = (str(exception).strip().splitlines() or [type(exception).__name__])[0]
        logger.warning("Database unavailable for %s %s: %s", request.method, request.path, cause)
        details = {"retry_after_seconds": RETRY_AFTER_SECONDS}
        if is_taxii_path(request.path):
            response = taxii_error(503, CODE, MESSAGE, details)
        else:
            response = error_json(CODE, MESSAGE, details, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        response._has_been_logged = True  # logged above, with its cause; not again as an ERROR by Django
        return response
