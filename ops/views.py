"""/healthz, /readyz and /metrics. Served by ops.middleware.OpsEndpointsMiddleware ahead of the rest
of the stack: probes and scrapers address a pod or host by IP (so Host checks and the https redirect
must not stand in their way), and nothing here needs a session or CSRF."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST

from consortium.api.views import error_json

from .access import metrics_allowed
from .health import readiness
from .metrics import exposition


def healthz(request: HttpRequest) -> HttpResponse:
    """The process serves requests; nothing else is looked at (a liveness probe must not fail
    because the database does, or every web process would be restarted at once)."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> HttpResponse:
    ready, checks = readiness()
    failing = [name for name, check in checks.items() if not check["ok"]]
    return JsonResponse({"status": "ready" if ready else "not_ready", "checks": checks, "failing": failing},
                        status=200 if ready else 503)


def metrics(request: HttpRequest) -> HttpResponse:
    if not (settings.METRICS_TOKEN_SHA256 or settings.METRICS_ALLOWED_IPS):
        return error_json("not_found", "No such endpoint.", status=404)
    if not metrics_allowed(request.META, token_sha256=settings.METRICS_TOKEN_SHA256,
                           networks=settings.METRICS_ALLOWED_IPS):
        return error_json("metrics_forbidden", "Metrics need `Authorization: Bearer <METRICS_TOKEN>` or a direct "
                          "connection from an address in METRICS_ALLOWED_IPS.", status=403)
    return HttpResponse(exposition(with_database=True), content_type=CONTENT_TYPE_LATEST)


ENDPOINTS = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}
