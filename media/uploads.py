"""A job's upload goes straight to a file under MEDIA_JOB_DIR, never to memory, and is refused (its
partial file removed at once) as soon as it is known to pass MEDIA_MAX_BYTES."""

from __future__ import annotations

import tempfile
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler

from consortium.api.uploads import BoundedUploadHandler, UploadTooLarge


def incoming_dir():
    folder = settings.MEDIA_JOB_DIR / "incoming"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


class _IncomingFile(TemporaryUploadedFile):
    """Django's temporary upload, in MEDIA_JOB_DIR/incoming (the disk the job's file then stays on),
    deleted when the request ends unless a job took it (media.services.media_job_create links it)."""

    def __init__(self, name: str, content_type: str, size: int, charset: str | None, content_type_extra=None) -> None:
        file = tempfile.NamedTemporaryFile(suffix=".upload", dir=incoming_dir())
        super(TemporaryUploadedFile, self).__init__(file, name, content_type, size, charset, content_type_extra)


class JobUploadHandler(TemporaryFileUploadHandler):
    def __init__(self, request: Any = None) -> None:
        super().__init__(request)
        self.bound = BoundedUploadHandler(request)

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None) -> None:
        self.bound.handle_raw_input(input_data, META, content_length, boundary, encoding)

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super(TemporaryFileUploadHandler, self).new_file(*args, **kwargs)
        self.file = _IncomingFile(self.file_name, self.content_type, 0, self.charset, self.content_type_extra)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        try:
            self.bound.receive_data_chunk(raw_data, start)
        except UploadTooLarge:
            self.upload_interrupted()  # Django's parser leaves a failed upload's file to the garbage collector
            raise
        self.file.write(raw_data)
