"""A small HTTP client for the member API (standard library only)."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterator


class ApiError(Exception):
    """An error answer from the server, with its stable code."""

    def __init__(
        self, status: int, code: str, message: str, details: Any = None, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details
        self.retry_after = retry_after


class NetworkError(OSError):
    """The server could not be reached, or what answered was not the API (no JSON)."""


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # an API answer is never a redirect; following one could leak the token


class ConsortiumClient:
    def __init__(self, base_url: str, token: str | None, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._opener = urllib.request.build_opener(NoRedirect)

    def request(self, method: str, path: str, body: Any = None, *, upload: Path | None = None) -> Any:
        """`body` is sent as JSON; `upload`, a file, as the multipart field `file`, read as it is sent."""
        data: Any = None
        headers = dict(self._headers)
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        elif upload is not None:
            data, length, headers["Content-Type"] = _multipart_file(upload)
            headers["Content-Length"] = str(length)
        request = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method, headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            try:
                error = json.loads(exc.read())["error"]
            except (ValueError, KeyError, TypeError, OSError, http.client.HTTPException):
                error = {"code": "http_error", "message": f"HTTP {exc.code} {exc.reason}"}
            raise ApiError(exc.code, error.get("code", ""), error.get("message", ""), error.get("details"),
                           retry_after=_seconds(exc.headers.get("Retry-After"))) from None
        except (urllib.error.URLError, socket.timeout, ConnectionError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise NetworkError(f"{method} {self.base_url}{path}: {reason}") from None
        try:
            return json.loads(raw or b"null")
        except ValueError:
            raise NetworkError(f"{method} {self.base_url}{path}: the answer is not JSON") from None

    def me(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/me/")

    def submit(self, statements: list[str]) -> dict[str, Any]:
        return self.request("POST", "/api/v1/statements/", {"statements": statements})

    def statement(self, statement_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/statements/{urllib.parse.quote(str(statement_id), safe='')}/")

    def hash(self, hash_id: int) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/hashes/{int(hash_id)}/")

    def keys(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/keys/")

    def register_key(self, jwk: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/api/v1/keys/", jwk)

    def server_keys(self) -> dict[str, Any]:
        """The server's own public keys (`/.well-known/jwks.json`; no token needed)."""
        return self.request("GET", "/.well-known/jwks.json")

    def match(self, signals: list[dict[str, Any]], *, exclude_disputed: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"signals": signals}
        if exclude_disputed:
            body["exclude_disputed"] = True
        return self.request("POST", "/api/v1/match/", body)

    def hash_job_start(self, path: Path) -> dict[str, Any]:
        """Start hashing a file on the server (POST hash/jobs/): for videos too long to hash in a request."""
        return self.request("POST", "/api/v1/hash/jobs/", upload=path)

    def hash_job(self, job_id: str, *, frames_after: int = 0) -> dict[str, Any]:
        """The job; once done, its signals with one page of a video's frames (see `hash_job_signals`)."""
        query = f"?frames_after={int(frames_after)}" if frames_after else ""
        return self.request("GET", f"/api/v1/hash/jobs/{urllib.parse.quote(str(job_id), safe='')}/{query}")

    def hash_job_signals(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        """A done job's signals with every frame of its video, the pages after `job`'s read one by one."""
        signals, page = job["signals"], job.get("frame_page")
        while page and page["has_more"]:
            more = self.hash_job(job["id"], frames_after=page["next_after"])
            for signal, next_page in zip(signals, more["signals"]):
                if "frames" in signal:
                    signal["frames"].extend(next_page["frames"])
            page = more["frame_page"]
        return signals

    def feed(self, after: int = 0, limit: int = 100) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/feed/?after={int(after)}&limit={int(limit)}")

    def events(self, after: int = 0, limit: int = 1000) -> Iterator[dict[str, Any]]:
        """Every event after `after` available now, page by page, in seq order."""
        while True:
            page = self.feed(after, limit)
            yield from page["events"]
            after = page["next_after"]
            if not page["has_more"]:
                return


def _multipart_file(path: Path, chunk: int = 1 << 20) -> tuple[Iterator[bytes], int, str]:
    """A multipart/form-data body holding one file, produced chunk by chunk: its parts, length and type."""
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="upload"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = path.stat().st_size

    def parts() -> Iterator[bytes]:
        yield head
        with path.open("rb") as handle:
            while block := handle.read(chunk):
                yield block
        yield tail

    return parts(), len(head) + size + len(tail), f"multipart/form-data; boundary={boundary}"


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: callers fall back to their own backoff
