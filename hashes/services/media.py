"""Hashing uploaded media for a member. The file is read from memory or Django's temporary upload
file (deleted when the request ends) and never stored."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from consortium.api.errors import DomainError


def upload_signals(upload: Any) -> list[dict[str, Any]]:
    """The signals of an uploaded image or video (PDQ or vPDQ, plus MD5 and SHA-256)."""
    # The member client's hasher, so `consortium hash` gives members exactly these signals; PyAV,
    # Pillow and pdqhash load only in processes that hash media.
    # Its MediaError (a CodedError) is the API's answer as it is (413 for media_too_large).
    from consortium_client.media import MEDIA_TOO_LARGE, hash_media

    if not isinstance(upload, UploadedFile):
        raise DomainError("file_missing", 'Send the media as a multipart form field named "file".')
    if upload.size > settings.MEDIA_MAX_BYTES:
        raise DomainError(MEDIA_TOO_LARGE, f"The file has {upload.size} bytes; at most {settings.MEDIA_MAX_BYTES} "
                          "are accepted.", {"max_bytes": settings.MEDIA_MAX_BYTES}, status=413)
    source = upload.temporary_file_path() if hasattr(upload, "temporary_file_path") else upload.read()
    return hash_media(
        source, max_bytes=settings.MEDIA_MAX_BYTES, max_pixels=settings.MEDIA_MAX_PIXELS,
        max_frame_pixels=settings.MEDIA_MAX_FRAME_PIXELS, max_video_seconds=settings.MEDIA_MAX_VIDEO_SECONDS,
        seconds_per_hash=settings.MEDIA_VPDQ_SECONDS_PER_HASH,
    )
