"""Domain errors with stable codes. Services raise these; the API renders them in one shape."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """An error a client can act on. `code` is part of the API contract and never changes."""

    status = 400

    def __init__(self, code: str, message: str, details: Any = None, *, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
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
