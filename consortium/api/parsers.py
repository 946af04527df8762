from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from consortium_client.jws import loads_strict

from .errors import DomainError


class RequestTooLarge(DomainError):
    status = 413

    def __init__(self, limit: int) -> None:
        super().__init__("request_too_large", f"The request body is over {limit} bytes.", {"max_bytes": limit})


class BoundedJSONParser(JSONParser):
    """JSON parser that refuses bodies over REQUEST_MAX_BYTES.

    DRF reads a JSON body through Django's request.body before any parser sees it, so the bound that
    keeps a body out of memory is Django's DATA_UPLOAD_MAX_MEMORY_SIZE, which settings set to
    REQUEST_MAX_BYTES (an over-long Content-Length is refused before a byte is read). The checks here
    hold the same bound should a parser be handed the raw stream, or the two settings differ."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        limit = settings.REQUEST_MAX_BYTES
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestTooLarge(limit)
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise RequestTooLarge(limit)
        try:
            return loads_strict(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ParseError(f"The body is not valid UTF-8 JSON: {str(exc)[:200]}") from None
