"""How the `consortium` command fails: a stable error code, a message, and an exit status by kind."""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_USAGE = 1  # bad arguments, configuration or local input (a file, a key, a CSV row)
EXIT_REJECTED = 2  # the server answered with an error, or refused statements
EXIT_NETWORK = 3  # the server could not be reached, or did not answer as the API does
EXIT_VERIFICATION = 4  # a signature, statement, event or webhook delivery did not verify
EXIT_INTERRUPTED = 130  # Ctrl-C; what was done is kept (state and cursor files)

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_USAGE: "usage or local input error (arguments, configuration, files, keys)",
    EXIT_REJECTED: "the server refused the request or some statements (see the error code)",
    EXIT_NETWORK: "the server could not be reached or did not answer as the API does",
    EXIT_VERIFICATION: "a signature, statement, feed event or webhook delivery failed verification",
    EXIT_INTERRUPTED: "interrupted; state and cursor files keep what was done",
}


class CodedError(Exception):
    """An error with a stable `code` (part of the contract), a message safe to show, and optional details.
    The library's refusals (JWSError, JWKError, MediaError, ...) are these; the server answers one that
    reaches its API with the code, the message and the details as they are."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


class CommandError(Exception):
    """Ends a command: printed as `code: message` (or as JSON with --json) with its exit status."""

    def __init__(self, code: str, message: str, *, exit_code: int = EXIT_USAGE, details: Any = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.exit_code, self.details, self.status = code, message, exit_code, details, status

    def as_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.status is not None:
            error["status"] = self.status
        if self.details is not None:
            error["details"] = self.details
        return {"error": error, "exit_code": self.exit_code}


def media_unavailable(exc: ImportError) -> CommandError:
    """Hashing media needs the `media` extra; the rest of the client does not."""
    return CommandError("media_unavailable", "Hashing media needs the media extra: pip install "
                        f"'consortium-client[media]' ({exc.name} is missing).")
