"""An upload is refused as soon as it is known to pass MEDIA_MAX_BYTES, never stored whole first.

Django reads a multipart body chunk by chunk and hands each chunk to its upload handlers in turn,
the first of which writes it to memory or to a temporary file. This handler comes first: it
refuses a body whose Content-Length already says it is too large before a byte is read, and
otherwise counts the file bytes as they arrive and stops reading the moment they pass the limit.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import FileUploadHandler


class UploadTooLarge(RequestDataTooBig):
    """Rendered by the API as 413 `media_too_large`; outside the API Django answers it with a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The file is over {limit} bytes.")
        self.limit = limit


class BoundedUploadHandler(FileUploadHandler):
    def __init__(self, request: Any = None) -> None:
        super().__init__(request)
        self.limit = settings.MEDIA_MAX_BYTES
        self.received = 0

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None) -> None:
        # Beside the file, a multipart body carries its part headers and form fields, which are
        # bounded by DATA_UPLOAD_MAX_MEMORY_SIZE: a longer body cannot hold an acceptable file.
        if content_length and content_length > self.limit + settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise UploadTooLarge(self.limit)
        return None

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        # Counted over every file of the request, so many files cannot add up past the limit.
        self.received += len(raw_data)
        if self.received > self.limit:
            raise UploadTooLarge(self.limit)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None
