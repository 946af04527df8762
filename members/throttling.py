"""Requests per API token, counted per kind of request, so that one member's flood is refused with
429 `throttled` without slowing the others. The counts live in the cache every server process
shares (consortium/ratelimit.py)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from consortium.ratelimit import window_hit

from .authentication import ApiClient
from .permissions import required_scope

DEFAULT_KIND = "read"  # views any token may use (me/, the API docs)


def throttle_kind(view, method: str) -> str:
    """A view's `throttle_scope` if it names one, else the scope its method requires."""
    return getattr(view, "throttle_scope", None) or required_scope(view, method) or DEFAULT_KIND


class TokenRateThrottle(BaseThrottle):
    """THROTTLE_RATES[kind] requests per API token in each fixed window of the rate's period.
    Requests without a token (public endpoints) are not counted: an unauthenticated request to a
    member endpoint is refused before throttling, and a bad token before that."""

    def __init__(self, kind: str | None = None) -> None:
        self.kind = kind
        self.retry_after: int | None = None

    def allow_request(self, request, view) -> bool:
        client = request.user
        if not isinstance(client, ApiClient):
            return True
        kind = self.kind or throttle_kind(view, request.method)
        rate = settings.THROTTLE_RATES.get(kind)
        if rate is None:
            return True
        limit, period = rate
        count, left = window_hit(f"throttle:{kind}:{client.token.prefix}", period=period)
        if count <= limit:
            return True
        self.retry_after = left
        return False

    def wait(self) -> int | None:
        return self.retry_after
