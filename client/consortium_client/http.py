"""A small HTTP client for the member API (standard library only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Iterator


class ApiError(Exception):
    """An error answer from the server, with its stable code."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # an API answer is never a redirect; following one could leak the token


class ConsortiumClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._opener = urllib.request.build_opener(NoRedirect)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None
        headers = dict(self._headers)
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method, headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                error = json.loads(exc.read())["error"]
            except (ValueError, KeyError, TypeError):
                error = {"code": "http_error", "message": exc.reason}
            raise ApiError(exc.code, error.get("code", ""), error.get("message", ""), error.get("details")) from None

    def me(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/me/")

    def submit(self, statements: list[str]) -> dict[str, Any]:
        return self.request("POST", "/api/v1/statements/", {"statements": statements})

    def statement(self, statement_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/statements/{statement_id}/")

    def hash(self, hash_id: int) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/hashes/{hash_id}/")

    def keys(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/keys/")

    def feed(self, after: int = 0, limit: int = 100) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/feed/?after={after}&limit={limit}")

    def events(self, after: int = 0, limit: int = 1000) -> Iterator[dict[str, Any]]:
        """Every event after `after` available now, page by page, in seq order."""
        while True:
            page = self.feed(after, limit)
            yield from page["events"]
            after = page["next_after"]
            if not page["has_more"]:
                return
