"""Synthetic H.264 videos, encoded with PyAV, for tests and benchmarks: a moving pattern whose
frames differ, so each frame hashes on its own."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def write_video(path: Path, *, seconds: float, width: int, height: int, fps: int = 30) -> Path:
    import av

    partial = path.with_suffix(".partial.mp4")
    y, x = np.mgrid[0:height, 0:width]
    base = ((x // 16 + y // 16) % 2 * 160 + 40).astype(np.uint8)
    with av.open(str(partial), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28"}
        for number in range(int(seconds * fps)):
            shift = number * 3
            plane = np.roll(base, (shift % height, (shift * 2) % width), axis=(0, 1))
            rgb = np.stack([plane, np.roll(plane, number % 37, axis=1), 255 - plane], axis=2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    partial.rename(path)  # whole or absent: a cached video is never a half-written one
    return path


def cached_video(folder: Path, *, seconds: float, width: int, height: int, fps: int = 30) -> Path:
    path = folder / f"pattern-{width}x{height}-{fps}fps-{seconds:g}s.mp4"
    return path if path.exists() else write_video(path, seconds=seconds, width=width, height=height, fps=fps)
