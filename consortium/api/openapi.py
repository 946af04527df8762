"""How the OpenAPI schema describes what every operation can answer besides success: the error body
of consortium.api.exceptions, one component per status, its `code` an enum of the stable codes
that status carries (README.md, "Error codes"). These serializers only describe; no view renders them.

A code added to the API is added here too: a client generated from the schema refuses a code its
enum does not list (tests/openapi prove the lists against a live server)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

# Refusals of the request itself, before an operation looks at what it asks.
REQUEST_CODES = [
    "bad_host", "malformed_json", "malformed_multipart", "malformed_request", "request_incomplete",
    "too_many_fields", "too_many_files", "unsupported_media_type", "validation_error",
]
# Each operation's own refusals, by area. One enum for all 400s keeps generated clients simple;
# an operation answers only the codes of its area.
OPERATION_CODES = [
    # statements/
    "statements_missing", "statements_empty",
    # keys/
    "jwk_invalid", "jwk_private_key", "jwk_unsupported",
    # match/ (signals)
    "signals_missing", "too_many_queries", "signal_invalid", "signal_type_unknown", "signal_value_invalid",
    "quality_invalid", "quality_too_low", "vpdq_frames_invalid", "vpdq_query_too_long", "max_distance_invalid",
    "min_match_percent_invalid", "exclude_disputed_invalid",
    # match/ and hash/ (files)
    "file_missing", "media_unreadable", "media_unsupported", "video_unsupported", "media_too_long",
    # subscriptions/
    "url_invalid", "url_invalid_scheme", "url_https_required", "url_missing_host", "url_credentials_in_url",
    "url_dns_failed", "url_target_forbidden", "label_unknown", "after_invalid", "from_seq_invalid",
    "field_unknown", "filters_invalid", "description_invalid", "state_invalid", "secret_overlap_invalid",
    # stats/
    "period_invalid", "month_invalid", "range_invalid", "range_too_long",
]

BAD_REQUEST_CODES = REQUEST_CODES + OPERATION_CODES
UNAUTHORIZED_CODES = ["not_authenticated", "invalid_token", "token_revoked", "token_expired"]
FORBIDDEN_CODES = ["member_suspended", "insufficient_scope"]
NOT_FOUND_CODES = ["not_found"]
CONFLICT_CODES = ["key_exists", "kid_taken", "pending_key_limit_reached", "subscription_limit_reached",
                  "paused_by_admin", "disabled_by_token_revocation", "test_in_flight"]
TOO_LARGE_CODES = ["request_too_large", "too_many_statements", "media_too_large"]
TOO_MANY_REQUESTS_CODES = ["throttled", "quota_exceeded", "media_jobs_limit"]
SERVICE_UNAVAILABLE_CODES = ["database_unavailable"]  # consortium/api/middleware.py

ERROR_CODES: dict[int, list[str]] = {
    400: BAD_REQUEST_CODES, 401: UNAUTHORIZED_CODES, 403: FORBIDDEN_CODES, 404: NOT_FOUND_CODES,
    409: CONFLICT_CODES, 413: TOO_LARGE_CODES, 429: TOO_MANY_REQUESTS_CODES, 503: SERVICE_UNAVAILABLE_CODES,
}

ERROR_DESCRIPTIONS = {
    400: "The request is malformed or not valid; `error.code` says how.",
    401: "No API token, or one that is not valid, revoked or expired.",
    403: "The member is suspended, or the token lacks the scope this operation needs.",
    404: "Nothing with this id is visible to you (the same whether it does not exist or is hidden).",
    409: "The request conflicts with the current state.",
    413: "The request is too large: the body (`details.max_bytes`), the number of statements (`details.max`) "
         "or an uploaded file (`details.max_bytes`).",
    429: "Too many requests, or too many media jobs queued or running (`media_jobs_limit`): try again after "
         "`Retry-After` seconds (also `details.retry_after_seconds`).",
    503: "The database is unavailable for a moment (restarting, failing over); nothing was changed. Try again "
         "after `Retry-After` seconds (also `details.retry_after_seconds`).",
}

def error_serializer(status: int) -> type[serializers.Serializer]:
    """`{"error": {"code", "message", "details"}}` for one status, as component `Error<status>`."""
    detail = type(f"ErrorDetail{status}", (serializers.Serializer,), {
        "code": serializers.ChoiceField(choices=ERROR_CODES[status], help_text="Stable; part of the API contract."),
        "message": serializers.CharField(help_text="For people; may change."),
        # Any JSON value, null included (a nullable JSONField would be `oneOf: [{}, null]`, which null
        # matches twice and so fails).
        "details": serializers.JSONField(help_text="More about the error (its shape depends on the code), or null."),
        "Meta": type("Meta", (), {"ref_name": f"Error{status}Detail"}),
    })
    return type(f"Error{status}", (serializers.Serializer,), {
        "error": detail(),
        "Meta": type("Meta", (), {"ref_name": f"Error{status}"}),
    })


ERRORS = {status: error_serializer(status) for status in ERROR_CODES}


class ErrorsAutoSchema(AutoSchema):
    """Adds to each operation the error answers it can give (unless it documents its own), and gives
    multipart uploads and every other request its own request component (`format: binary` files)."""

    def error_statuses(self) -> list[int]:
        if type(self.view).__module__.startswith("drf_spectacular."):
            return []  # a webhook: drf-spectacular's mocked view of the receiver, whose answers are its own
        statuses = [400]
        if self.view.get_authenticators():
            statuses += [401, 403, 429]
        if "{" in self.path:
            statuses.append(404)
        if self.method in ("POST", "PUT", "PATCH"):
            statuses.append(413)
        statuses.append(503)
        return sorted(statuses)

    def _get_request_body(self, direction: str = "request") -> dict[str, Any] | None:
        body = super()._get_request_body(direction)
        if body is not None and len(body["content"]) > 1:
            # POST match/ takes JSON or a file. openapi-python-client (0.29) types a body of several
            # media types as optional, `... | Unset = UNSET`, and imports `Unset` only for a body
            # declared optional: declared required, the generated module fails to import. Without a
            # body the server answers 400 (signals_missing), which the operation documents.
            body.pop("required", None)
        return body

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for status in self.error_statuses():
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(ERRORS[status], str(status), direction=direction)
            responses[str(status)]["description"] = ERROR_DESCRIPTIONS[status]
        for code, response in responses.items():
            if code in {str(s) for s in ERRORS} and not response.get("description"):
                response["description"] = ERROR_DESCRIPTIONS[int(code)]
        return responses
