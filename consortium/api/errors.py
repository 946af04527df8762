"""Domain errors with stable codes. Services raise these, or let the member client's own (JWKError,
MediaError, ...: every CodedError) pass; the API renders all of them in one shape
(consortium.api.exceptions), and the admin and the commands show any CodedError as `code: message`."""

from __future__ import annotations

from typing import Any

from consortium_client.errors import CodedError

__all__ = ["CodedError", "Conflict", "DomainError", "NotFound", "TooManyRequests", "http_status"]

# The status of a CodedError that does not name its own (400 when not listed here).
STATUS_OF_CODE = {"media_too_large": 413}


def http_status(exc: CodedError) -> int:
    return exc.status if isinstance(exc, DomainError) else STATUS_OF_CODE.get(exc.code, 400)


class DomainError(CodedError):
    """An error a client can act on, with the HTTP status it answers with. `code` is part of the API
    contract and never changes."""

    status = 400

    def __init__(self, code: str, message: str, details: Any = None, *, status: int | None = None) -> None:
        super().__init__(code, message, details)
        if status is not None:
            self.status = status


class NotFound(DomainError):
    status = 404

    def __init__(self, message: str = "Not found.") -> None:
        super().__init__("not_found", message)


class Conflict(DomainError):
    status = 409


class TooManyRequests(DomainError):
    """429, with the seconds to wait in the Retry-After header and in `details.retry_after_seconds`."""

    status = 429

    def __init__(self, code: str, message: str, retry_after: int, details: dict[str, Any] | None = None) -> None:
        super().__init__(code, message, {**(details or {}), "retry_after_seconds": retry_after})
        self.retry_after = retry_after
