"""Synthetic H.264 videos, encoded with PyAV, for tests and benchmarks: a window panning across a
large picture, so that every frame differs (and hashes on its own) and encoding stays cheap."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def write_video(path: Path, *, seconds: float, width: int, height: int, fps: int = 30) -> Path:
    import av

    partial = path.with_suffix(".partial.mp4")
    y, x = np.mgrid[0 : 2 * height, 0 : 2 * width].astype(np.float32)
    picture = np.stack([
        127 + 120 * np.sin(x / 37) * np.cos(y / 23),
        127 + 120 * np.sin((x + y) / 51),
        ((x // 48 + y // 48) % 2) * 180 + 40,
    ], axis=2).astype(np.uint8)
    with av.open(str(partial), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "30"}
        for number in range(int(seconds * fps)):
            top, left = (number * 3) % height, (number * 5) % width
            window = np.ascontiguousarray(picture[top : top + height, left : left + width])
            for packet in stream.encode(av.VideoFrame.from_ndarray(window, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    partial.rename(path)  # whole or absent: a cached video is never a half-written one
    return path


def cached_video(folder: Path, *, seconds: float, width: int, height: int, fps: int = 30) -> Path:
    path = folder / f"pan-{width}x{height}-{fps}fps-{seconds:g}s.mp4"
    return path if path.exists() else write_video(path, seconds=seconds, width=width, height=height, fps=fps)
