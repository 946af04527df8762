"""Request limits and the requests Django refuses by itself: REQUEST_MAX_BYTES is the real bound on a
JSON body (not Django's 2.5 MB default), an over-long body is refused on its Content-Length before it
is read, uploads are bounded by MEDIA_MAX_BYTES only, and every refusal under /api/ and
/.well-known/ answers in the API's error shape with its own code."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from hashes.models import Statement
from tests.factories import md5

DJANGO_DEFAULT_MEMORY_LIMIT = 2_621_440  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE when left unset


class Body:
    """A request body that a test client would otherwise build in memory: `size` bytes of JSON
    whitespace, produced only as they are read, counting them. `fail_after` makes the connection
    drop once that many bytes have been read."""

    def __init__(self, size: int, fail_after: int | None = None) -> None:
        self.size, self.fail_after, self.bytes_read = size, fail_after, 0

    def read(self, n: int = -1) -> bytes:
        if self.fail_after is not None and self.bytes_read >= self.fail_after:
            raise OSError("connection reset by peer")
        n = self.size - self.bytes_read if n is None or n < 0 else min(n, self.size - self.bytes_read)
        self.bytes_read += n
        return b" " * n

    def readline(self, n: int = -1) -> bytes:
        return self.read(n)


def post_stream(actor, path: str, body: Body, content_type: str = "application/json"):
    return actor.api.generic("POST", path, content_type=content_type, CONTENT_LENGTH=str(body.size),
                             **{"wsgi.input": body})


def error_of(response) -> dict:
    assert response["Content-Type"] == "application/json", response.content[:200]
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]


def noise_png(width: int, height: int) -> bytes:
    """An image that does not compress: its PNG is about width * height * 3 bytes."""
    pixels = np.random.default_rng(7).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", compress_level=0)
    return out.getvalue()


# --- REQUEST_MAX_BYTES -----------------------------------------------------------------------------

def test_a_json_body_past_djangos_default_limit_is_accepted(alice, settings):
    statements = [alice.statement([md5(i)], note="n" * 1900) for i in range(settings.SUBMIT_MAX_STATEMENTS)]
    body = json.dumps({"statements": statements})
    assert DJANGO_DEFAULT_MEMORY_LIMIT < len(body) < settings.REQUEST_MAX_BYTES

    response = alice.api.post("/api/v1/statements/", body, content_type="application/json")

    assert response.status_code == 202, response.content[:300]
    assert len(response.json()["accepted"]) == len(statements)
    assert Statement.objects.count() == len(statements)


def test_a_json_body_of_exactly_request_max_bytes_is_accepted(alice, settings):
    statement = json.dumps({"statements": [alice.statement([md5(1)])]})
    body = statement + " " * (settings.REQUEST_MAX_BYTES - len(statement))
    assert len(body.encode()) == settings.REQUEST_MAX_BYTES

    response = alice.api.post("/api/v1/statements/", body, content_type="application/json")

    assert response.status_code == 202, response.content[:300]
    assert Statement.objects.count() == 1


def test_a_json_body_over_request_max_bytes_is_a_413_before_any_of_it_is_read(alice, settings):
    body = Body(settings.REQUEST_MAX_BYTES + 1)

    response = post_stream(alice, "/api/v1/statements/", body)

    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "request_too_large"
    assert error["details"] == {"max_bytes": settings.REQUEST_MAX_BYTES}
    assert str(settings.REQUEST_MAX_BYTES) in error["message"]
    assert body.bytes_read == 0


@pytest.mark.parametrize("path", ["/api/v1/statements/", "/api/v1/match/", "/api/v1/keys/"])
def test_every_json_endpoint_refuses_an_over_long_body_alike(alice, settings, path):
    response = post_stream(alice, path, Body(settings.REQUEST_MAX_BYTES + 1))

    assert response.status_code == 413
    assert error_of(response)["details"] == {"max_bytes": settings.REQUEST_MAX_BYTES}


def test_the_json_parser_holds_a_lowered_limit_with_the_same_error(alice, settings):
    settings.REQUEST_MAX_BYTES = 10_000
    body = json.dumps({"statements": [alice.statement([md5(1)], note="y" * 20_000)]})

    response = alice.api.post("/api/v1/statements/", body, content_type="application/json")

    assert response.status_code == 413
    assert error_of(response) == {"code": "request_too_large", "message": "The request body is over 10000 bytes.",
                                  "details": {"max_bytes": 10_000}}


# --- uploads: MEDIA_MAX_BYTES, not REQUEST_MAX_BYTES ------------------------------------------------

@pytest.fixture
def small_request_limit(settings):
    """REQUEST_MAX_BYTES=1048576 in the environment: settings derive Django's limit from it."""
    settings.REQUEST_MAX_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1 << 20
    return 1 << 20


@pytest.mark.parametrize("path", ["/api/v1/hash/", "/api/v1/match/"])
def test_an_upload_larger_than_the_json_limit_is_hashed_whole(bob, small_request_limit, path):
    image = noise_png(700, 700)
    assert len(image) > small_request_limit

    response = bob.api.post(path, {"file": SimpleUploadedFile("noise.png", image)}, format="multipart")

    assert response.status_code == 200, response.content[:300]
    signals = response.json()["signals"] if path.endswith("hash/") else [r["query"] for r in response.json()["results"]]
    assert {"type": "md5", "value": hashlib.md5(image).hexdigest()} in signals
    assert any(s["type"] == "pdq" for s in signals)


def test_form_fields_beside_an_upload_are_bounded_by_request_max_bytes(bob, small_request_limit):
    image = noise_png(64, 64)

    response = bob.api.post("/api/v1/hash/", {"file": SimpleUploadedFile("a.png", image),
                                              "note": "x" * (small_request_limit + 1)}, format="multipart")

    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "request_too_large" and error["details"] == {"max_bytes": small_request_limit}


# --- refusals in the API's error shape -------------------------------------------------------------

def many_fields(settings) -> dict:
    return {f"f{i}": "x" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}


def many_files(settings) -> dict:
    return {f"f{i}": SimpleUploadedFile(f"{i}.png", b"x") for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FILES + 1)}


REFUSALS = {
    "too many form fields": (
        lambda api, s: api.post("/api/v1/hash/", many_fields(s), format="multipart"), 400, "too_many_fields"),
    "too many query parameters": (
        lambda api, s: api.get("/api/v1/feed/", {f"p{i}": 1 for i in range(s.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}),
        400, "too_many_fields"),
    "too many files": (
        lambda api, s: api.post("/api/v1/match/", many_files(s), format="multipart"), 400, "too_many_files"),
    "multipart without a boundary to hash/": (
        lambda api, s: api.post("/api/v1/hash/", "--x\r\n", content_type="multipart/form-data"),
        400, "malformed_multipart"),
    "multipart without a boundary to match/": (
        lambda api, s: api.post("/api/v1/match/", "--x\r\n", content_type="multipart/form-data"),
        400, "malformed_multipart"),
    "a Host not allowed": (lambda api, s: api.get("/api/v1/me/", HTTP_HOST="evil.example"), 400, "bad_host"),
    "a Host not allowed, on a POST": (
        lambda api, s: api.post("/api/v1/statements/", {"statements": ["x"]}, format="json", HTTP_HOST="evil.example"),
        400, "bad_host"),
    "a Host that is not a host name": (lambda api, s: api.get("/api/v1/me/", HTTP_HOST="a b/c"), 400, "bad_host"),
    "a Host not allowed, well-known": (
        lambda api, s: api.get("/.well-known/jwks.json", HTTP_HOST="evil.example"), 400, "bad_host"),
    "a Host not allowed, schema": (lambda api, s: api.get("/api/schema/", HTTP_HOST="evil.example"), 400, "bad_host"),
    "an unknown well-known path": (lambda api, s: api.get("/.well-known/nothing"), 404, "not_found"),
}


@pytest.mark.parametrize("name", REFUSALS)
def test_a_request_django_refuses_answers_in_the_api_error_shape(alice, settings, name):
    send, status, code = REFUSALS[name]

    response = send(alice.api, settings)

    assert response.status_code == status
    assert error_of(response)["code"] == code


def test_a_json_body_that_breaks_off_is_a_400_not_a_500(alice):
    response = post_stream(alice, "/api/v1/statements/", Body(10_000, fail_after=0))

    assert response.status_code == 400
    assert error_of(response)["code"] == "request_incomplete"


def test_an_upload_that_breaks_off_is_a_400_not_a_500(alice):
    response = post_stream(alice, "/api/v1/hash/", Body(10_000, fail_after=0), "multipart/form-data; boundary=x")

    assert response.status_code == 400
    assert error_of(response)["code"] == "request_incomplete"


def test_a_page_outside_the_api_keeps_djangos_own_400(client, db):
    response = client.get("/admin/login/", HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
