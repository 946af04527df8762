from __future__ import annotations

from django.http import HttpResponseNotFound, JsonResponse
from django.views import defaults

from taxii.rendering import error_response as taxii_error, is_taxii_path

from .exceptions import request_error

API_PATHS = ("/api/", "/.well-known/")


def error_json(code: str, message: str, details=None, *, status: int) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "details": details}}, status=status)


def bad_request(request, exception=None):
    """Django's handler for the requests it refuses itself (a bad Host header, too many fields or
    files, a body over DATA_UPLOAD_MAX_MEMORY_SIZE), some before any view runs."""
    error = request_error(exception)
    if is_taxii_path(request.path):
        return taxii_error(error.status, error.code, error.message, error.details)
    if not request.path.startswith(API_PATHS):
        return defaults.bad_request(request, exception)
    return error_json(error.code, error.message, error.details, status=error.status)


def not_found(request, exception=None):
    if is_taxii_path(request.path):
        return taxii_error(404, "not_found", "No such TAXII endpoint.")
    if request.path.startswith(API_PATHS):
        return error_json("not_found", "No such endpoint.", status=404)
    return HttpResponseNotFound("Not found.")


def server_error(request):
    if is_taxii_path(request.path):
        return taxii_error(500, "server_error", "Internal error.")
    return error_json("server_error", "Internal error.", status=500)
