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
