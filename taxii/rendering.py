"""Every TAXII answer, errors included, is `application/taxii+json;version=2.1` (taxii2-client refuses
any other), and every error has TAXII's error shape: {"title", "description", "error_code",
"http_status", "details"}. `error_code` is the API's stable code for the same failure."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from django.http import HttpResponse
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from consortium.api.exceptions import exception_handler

from .stix import TAXII_MEDIA_TYPE

TAXII_PATH = "/taxii2"


class TaxiiRenderer(JSONRenderer):
    media_type = TAXII_MEDIA_TYPE
    format = "taxii"
    charset = None


def accepts_taxii(accept: str) -> bool:
    """Whether an Accept header admits TAXII 2.1: none, */*, application/*, or application/taxii+json
    without a version or with version=2.1 (a q of 0 refuses a range)."""
    if not accept.strip():
        return True
    for media_range in accept.split(","):
        kind, *parameters = [part.strip() for part in media_range.split(";")]
        params = dict(p.partition("=")[::2] for p in parameters)
        if params.get("q", "1").strip() in ("0", "0.0", "0.00", "0.000"):
            continue
        kind = kind.lower()
        if kind in ("*/*", "application/*"):
            return True
        if kind == "application/taxii+json" and params.get("version", "2.1").strip('" ') == "2.1":
            return True
    return False


class TaxiiNegotiation(BaseContentNegotiation):
    def select_parser(self, request, parsers):
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        if not accepts_taxii(request.META.get("HTTP_ACCEPT", "")):
            raise NotAcceptable(f"This server answers {TAXII_MEDIA_TYPE} only.")
        return renderers[0], TAXII_MEDIA_TYPE


def error_body(status: int, code: str, message: str, details: Any = None) -> dict[str, Any]:
    body = {"title": HTTPStatus(status).phrase, "description": message, "error_code": code, "http_status": str(status)}
    if isinstance(details, dict) and details:
        body["details"] = details
    return body


def taxii_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The API's one exception handler, answered in TAXII's error shape."""
    response = exception_handler(exc, context)
    if response is None:
        return None
    error = response.data["error"]
    headers = {k: v for k, v in response.items() if k in ("WWW-Authenticate", "Retry-After", "Allow")}
    return Response(error_body(response.status_code, error["code"], error["message"], error["details"]),
                    status=response.status_code, headers=headers, content_type=TAXII_MEDIA_TYPE)


def error_response(status: int, code: str, message: str, details: Any = None) -> HttpResponse:
    """A TAXII error outside DRF: the URL resolver's 404, Django's own 400 and 500."""
    return HttpResponse(json.dumps(error_body(status, code, message, details), separators=(",", ":")), status=status,
                        content_type=TAXII_MEDIA_TYPE)


def is_taxii_path(path: str) -> bool:
    return path == TAXII_PATH or path.startswith(TAXII_PATH + "/")
