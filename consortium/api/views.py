from __future__ import annotations

from django.http import HttpResponseNotFound, JsonResponse


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse({"error": {"code": "not_found", "message": "No such endpoint.", "details": None}}, status=404)
    return HttpResponseNotFound("Not found.")


def server_error(request):
    return JsonResponse({"error": {"code": "server_error", "message": "Internal error.", "details": None}}, status=500)
