"""One exception handler, one error shape: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    BadRequest,
    DisallowedHost,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousMultipartForm,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
    ValidationError as DjangoValidationError,
)
from django.http import Http404, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import CodedError, DomainError, TooManyRequests, http_status
from .parsers import RequestTooLarge
from .uploads import UploadTooLarge

logger = logging.getLogger(__name__)

# DRF's own codes renamed where the API documents a clearer one.
DRF_CODES = {
    "not_authenticated": "not_authenticated",
    "authentication_failed": "invalid_token",
    "permission_denied": "permission_denied",
    "not_found": "not_found",
    "method_not_allowed": "method_not_allowed",
    "not_acceptable": "not_acceptable",
    "unsupported_media_type": "unsupported_media_type",
    "parse_error": "malformed_json",
    "throttled": "throttled",
    "invalid": "validation_error",
}


def error_response(code: str, message: str, details: Any = None, *, status_code: int = 400, headers=None) -> Response:
    body = {"error": {"code": code, "message": message, "details": details}}
    return Response(body, status=status_code, headers=headers)


# Requests Django itself refuses, before or while the body is read (by default an HTML 400 page).
REQUEST_ERRORS = (SuspiciousOperation, BadRequest, MultiPartParserError, UnreadablePostError)


def request_error(exc: Exception) -> DomainError:
    """The API error for one of REQUEST_ERRORS. Django's own messages name its settings (and, for a
    bad Host, suggest editing ALLOWED_HOSTS), so each gets a message of ours."""
    if isinstance(exc, UploadTooLarge):
        return DomainError("media_too_large", f"The file is over {exc.limit} bytes; it was not read further.",
                           {"max_bytes": exc.limit}, status=413)
    if isinstance(exc, RequestDataTooBig):
        # Files aside: an uploaded file counts against MEDIA_MAX_BYTES, not this.
        return RequestTooLarge(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    if isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return DomainError("too_many_fields", f"Send at most {limit} query parameters or form fields.", {"max": limit})
    if isinstance(exc, TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        return DomainError("too_many_files", f"Send at most {limit} files per request.", {"max": limit})
    if isinstance(exc, DisallowedHost):
        return DomainError("bad_host", "The Host header does not name this server.")
    if isinstance(exc, (SuspiciousMultipartForm, MultiPartParserError)):
        return DomainError("malformed_multipart", "The body is not valid multipart/form-data.")
    if isinstance(exc, UnreadablePostError):
        return DomainError("request_incomplete", "The request body could not be read to its end.")
    return DomainError("malformed_request", "The request is malformed.")


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, REQUEST_ERRORS):
        exc = request_error(exc)
    if isinstance(exc, CodedError):  # a DomainError, or one of the member client's that a service let pass
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
        return error_response(exc.code, exc.message, exc.details, status_code=http_status(exc), headers=headers)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response

    if isinstance(exc, exceptions.ValidationError):
        code, message, details = "validation_error", "The request is not valid.", exc.detail
    else:
        detail = exc.detail
        raw_code = getattr(detail, "code", None) or exc.default_code
        code = getattr(exc, "error_code", None) or DRF_CODES.get(raw_code, raw_code)
        if isinstance(exc, exceptions.ParseError) and is_multipart(context.get("request")):
            code = "malformed_multipart"  # DRF's MultiPartParser reports a bad body as a ParseError too
        message, details = str(detail), None
        if isinstance(exc, exceptions.Throttled):
            details = {"retry_after_seconds": exc.wait}
    headers = {k: v for k, v in response.items() if k in ("WWW-Authenticate", "Retry-After", "Allow")}
    # DESIGN.md: a malformed request (and a body that is not JSON is one) answers 400 or 413.
    status_code = 400 if isinstance(exc, exceptions.UnsupportedMediaType) else response.status_code
    return error_response(code, message, details, status_code=status_code, headers=headers)


def is_multipart(request: Any) -> bool:
    return (getattr(request, "content_type", None) or "").lower().startswith("multipart/")
