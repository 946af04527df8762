from __future__ import annotations

from pathlib import Path

import pytest

from tests.signals.vectors import requires_video

from .videos import cached_video


@pytest.fixture(scope="session")
def short_video(tmp_path_factory) -> Path:
    """3 s of 320x240 H.264 at 30 frames a second: 90 frames."""
    if not requires_video.args[0] is False:
        pytest.skip(requires_video.kwargs["reason"])
    return cached_video(tmp_path_factory.mktemp("videos"), seconds=3, width=320, height=240)
