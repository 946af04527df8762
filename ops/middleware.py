from __future__ import annotations

from collections.abc import Callable

from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from consortium.api.views import error_json

from . import context
from .views import ENDPOINTS

REQUEST_ID_HEADER = "X-Request-ID"


class RequestIdMiddleware:
    """Every request gets an id (the caller's X-Request-ID if it is a sane one): it is on every log
    line the request writes, in the tasks it queues (ops.workers), and echoed in the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = context.request_id_from(request.META.get("HTTP_X_REQUEST_ID"))
        request.request_id = request_id  # type: ignore[attr-defined]
        # Cleared when the request finishes (below), not here: Django logs a 4xx or 5xx response
        # ("Not Found: ...") after the middleware has returned it.
        context.request_id.set(request_id)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response


@receiver(request_finished)
def forget_request_id(**kwargs: object) -> None:
    context.request_id.set(None)


class OpsEndpointsMiddleware:
    """Answers /healthz, /readyz and /metrics before the host check, the https redirect, sessions and
    CSRF (see ops.views)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = ENDPOINTS.get(request.path_info)
        if view is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            response = error_json("method_not_allowed", f"Method {request.method} is not allowed.", status=405)
            response["Allow"] = "GET, HEAD"
        else:
            response = view(request)
        response["Cache-Control"] = "no-store"
        response["X-Content-Type-Options"] = "nosniff"
        return response
