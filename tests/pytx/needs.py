"""`vpdq` (pytx's vPDQ signal type needs it) has no wheels: pip builds it from source against
FFmpeg's development libraries, which a fresh machine may lack, so it is not in requirements-dev.txt.
`.ci/run` installs the libraries and the package and sets CONSORTIUM_REQUIRE_VPDQ=1; elsewhere the
tests that need it skip and say how to get it."""

from __future__ import annotations

import importlib.util
import os

import pytest


def vpdq_or_skip() -> None:
    if importlib.util.find_spec("vpdq") is not None:
        return
    reason = ("needs the vpdq package: apt-get install pkg-config cmake g++ libavcodec-dev libavformat-dev "
              "libavdevice-dev libavutil-dev libswscale-dev libswresample-dev libavfilter-dev, then "
              ".venv/bin/pip install 'vpdq>=0.2.5'")
    if os.environ.get("CONSORTIUM_REQUIRE_VPDQ") == "1":
        pytest.fail(f"{reason} (CONSORTIUM_REQUIRE_VPDQ=1 requires it)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)
