"""The domain error raised when media cannot be hashed (pure, no Django)."""

from __future__ import annotations

from typing import Any

MEDIA_UNREADABLE = "media_unreadable"
MEDIA_UNSUPPORTED = "media_unsupported"
MEDIA_TOO_LARGE = "media_too_large"
MEDIA_TOO_LONG = "media_too_long"
VIDEO_UNSUPPORTED = "video_unsupported"


class MediaError(ValueError):
    """A file that cannot be hashed; `code` is stable and safe to show to the member."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
