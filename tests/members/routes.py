"""The member API's routes, read from the URLconf so that a new endpoint is covered without
anyone remembering to add it to a list."""

from __future__ import annotations

import re
import uuid
from typing import Iterator

from django.urls import URLPattern, URLResolver, get_resolver

API_PREFIX = "api/v1/"
_PARAMETER = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")
_SAMPLES = {"int": "1", "uuid": str(uuid.UUID(int=0)), "path": "x", "slug": "x", "str": "x"}


def _routes(patterns: list, prefix: str = "") -> Iterator[str]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route


def api_routes() -> list[str]:
    """Every route under /api/v1/ as written in the URLconf, e.g. `api/v1/statements/<uuid:statement_id>/`."""
    return sorted({r for r in _routes(get_resolver().url_patterns) if r.startswith(API_PREFIX)})


def sample_path(route: str) -> str:
    """A requestable path for a route, with a sample value for each parameter."""
    return "/" + _PARAMETER.sub(lambda m: _SAMPLES.get(m["converter"] or "str", "x"), route)


def openapi_path(route: str) -> str:
    """The route as OpenAPI writes it: `/api/v1/statements/{statement_id}/`."""
    return "/" + _PARAMETER.sub(lambda m: "{" + m["name"] + "}", route)
