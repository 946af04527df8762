"""An upload over MEDIA_MAX_BYTES is refused as soon as that is known: on its Content-Length before a
byte is read, or the moment the file's bytes pass the limit, never after storing it whole."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile


class MultipartBody:
    """A multipart body with one `size`-byte file, produced only as it is read, counting reads."""

    def __init__(self, size: int) -> None:
        self.head = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
                     b"Content-Type: application/octet-stream\r\n\r\n")
        self.data = self.head + b"\0" * size + b"\r\n--b--\r\n"
        self.size, self.bytes_read = len(self.data), 0

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.bytes_read if n is None or n < 0 else n
        chunk = self.data[self.bytes_read:self.bytes_read + n]
        self.bytes_read += len(chunk)
        return chunk

    def readline(self, n: int = -1) -> bytes:
        return self.read(n)


def post(actor, path: str, body: MultipartBody, content_length: int | None = None):
    return actor.api.generic("POST", path, content_type="multipart/form-data; boundary=b",
                             CONTENT_LENGTH=str(body.size if content_length is None else content_length),
                             **{"wsgi.input": body})


def assert_media_too_large(response, limit: int) -> None:
    assert response.status_code == 413, response.content[:300]
    assert response.json() == {"error": {"code": "media_too_large", "message": response.json()["error"]["message"],
                                         "details": {"max_bytes": limit}}}


@pytest.mark.parametrize("path", ["/api/v1/hash/", "/api/v1/match/"])
def test_an_upload_declared_too_long_is_refused_before_a_byte_is_read(bob, settings, path):
    settings.MEDIA_MAX_BYTES = 100_000
    body = MultipartBody(10)

    response = post(bob, path, body, content_length=100_000 + settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)

    assert_media_too_large(response, 100_000)
    assert body.bytes_read == 0


@pytest.mark.parametrize("path", ["/api/v1/hash/", "/api/v1/match/"])
def test_an_upload_is_read_no_further_than_the_limit(bob, settings, path):
    settings.MEDIA_MAX_BYTES = 200_000
    body = MultipartBody(3_000_000)

    response = post(bob, path, body)

    assert_media_too_large(response, 200_000)
    assert body.bytes_read < 200_000 + 3 * 65_536  # a chunk or two past the limit, not the 3 MB


def test_several_files_together_count_against_the_limit(bob, settings):
    settings.MEDIA_MAX_BYTES = 1000
    files = {f"f{i}": SimpleUploadedFile(f"{i}.png", b"x" * 600) for i in range(2)}

    response = bob.api.post("/api/v1/hash/", files, format="multipart")

    assert_media_too_large(response, 1000)


def test_an_upload_at_the_limit_is_read_whole(bob, settings):
    settings.MEDIA_MAX_BYTES = 200_000
    body = MultipartBody(200_000)

    response = post(bob, "/api/v1/hash/", body)

    assert body.bytes_read == body.size
    assert response.status_code == 400 and response.json()["error"]["code"] == "media_unreadable"
