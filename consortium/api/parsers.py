from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

from consortium_client.jws import loads_strict


class RequestTooLarge(APIException):
    status_code = 413
    default_detail = "The request body is too large."
    default_code = "request_too_large"


class BoundedJSONParser(JSONParser):
    """JSON parser that refuses bodies over REQUEST_MAX_BYTES.

    DRF streams the body past Django's DATA_UPLOAD_MAX_MEMORY_SIZE check, so the bound is enforced
    here, on the bytes actually read (a lying or absent Content-Length does not get around it)."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        limit = settings.REQUEST_MAX_BYTES
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestTooLarge(f"The request body is over {limit} bytes.")
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise RequestTooLarge(f"The request body is over {limit} bytes.")
        try:
            return loads_strict(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ParseError(f"The body is not valid UTF-8 JSON: {str(exc)[:200]}") from None
