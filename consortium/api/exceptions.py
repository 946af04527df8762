"""One exception handler, one error shape: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import DomainError

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


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return error_response(exc.code, exc.message, exc.details, status_code=exc.status)
    if isinstance(exc, RequestDataTooBig):
        return error_response("request_too_large", str(exc), status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
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
        message, details = str(detail), None
    headers = {k: v for k, v in response.items() if k in ("WWW-Authenticate", "Retry-After", "Allow")}
    # DESIGN.md: a malformed request (and a body that is not JSON is one) answers 400 or 413.
    status_code = 400 if isinstance(exc, exceptions.UnsupportedMediaType) else response.status_code
    return error_response(code, message, details, status_code=status_code, headers=headers)
