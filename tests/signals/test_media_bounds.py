"""Media bombs are refused on their declared size before anything is decoded, only the formats
platforms serve are opened, and large video frames are hashed scaled down, close to the reference."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from consortium_client import media
from consortium_client.media import MediaError, hash_media, hash_video, hashed_size
from hashes.signals.pdq import hamming_distance
from tests.signals.vectors import VECTORS, reference_frames, requires_vectors, requires_video

ROOT = Path(__file__).resolve().parents[2]


def bilevel_png(side: int) -> bytes:
    """A few KB of PNG that decodes to side x side pixels."""
    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, format="PNG", optimize=True)
    return out.getvalue()


def mkv(width: int, height: int, frames: int = 1) -> bytes:
    import av

    out = io.BytesIO()
    with av.open(out, "w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        rng = np.random.default_rng(3)
        for _ in range(frames):
            pixels = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def peak_rss_of_hashing(path: Path) -> tuple[dict, float]:
    """Hash a file in a fresh interpreter: (its outcome, the megabytes its peak RSS grew by hashing)."""
    script = f"""
import json, sys
from pathlib import Path
def hwm():
    return next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
from consortium_client.media import MediaError, hash_media
import av, PIL.Image
before = hwm()
try:
    outcome = {{"type": hash_media(Path({str(path)!r}))[0]["type"]}}
except MediaError as exc:
    outcome = {{"code": exc.code}}
print(json.dumps([outcome, (hwm() - before) / 1024]))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    outcome, grown = json.loads(done.stdout.strip().splitlines()[-1])
    return outcome, grown


def test_a_13000_pixel_square_bilevel_png_is_refused_from_its_header():
    bomb = bilevel_png(13000)
    assert len(bomb) < 64 * 1024

    with pytest.raises(MediaError) as error:
        hash_media(bomb)

    assert error.value.code == "media_too_large"
    assert error.value.details == {"pixels": 169_000_000, "max_pixels": 50_000_000}


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS is read from /proc")
def test_refusing_the_png_bomb_decodes_nothing(tmp_path):
    (tmp_path / "bomb.png").write_bytes(bilevel_png(13000))

    outcome, grown = peak_rss_of_hashing(tmp_path / "bomb.png")

    assert outcome == {"code": "media_too_large"}
    assert grown < 50  # the decoded image alone would be 169 MB as bytes, 507 MB as RGB


def test_a_bilevel_image_over_the_exact_size_is_hashed_close_to_its_full_size_hash():
    # 18 MP of black and white blocks: turned into greys, not full-size RGB, then downscaled.
    rng = np.random.default_rng(1)
    blocks = rng.integers(0, 2, (60, 75), dtype=np.uint8).repeat(80, 0).repeat(80, 1).astype(bool)
    out = io.BytesIO()
    Image.fromarray(blocks).save(out, format="PNG")

    scaled = media.hash_image(out.getvalue())
    full = media.hash_image(out.getvalue(), exact_max_pixels=50_000_000)

    assert hamming_distance(scaled.value, full.value) <= 10 and scaled.quality >= 50


@requires_video
def test_an_8000_pixel_square_mkv_frame_is_refused_before_decoding(tmp_path):
    (tmp_path / "bomb.mkv").write_bytes(mkv(8000, 8000))

    with pytest.raises(MediaError) as error:
        hash_media(tmp_path / "bomb.mkv")
    outcome, grown = peak_rss_of_hashing(tmp_path / "bomb.mkv")

    assert error.value.code == "media_too_large"
    assert error.value.details == {"pixels": 64_000_000, "max_pixels": 4096 * 4096}
    assert outcome == {"code": "media_too_large"}
    assert grown < 60  # FFmpeg probing the stream used to decode the 96 MB frame (1.8 GB hashing it)


@requires_video
def test_frames_over_the_frame_bound_are_refused_with_the_bound_given():
    with pytest.raises(MediaError) as error:
        hash_media(mkv(320, 240), max_frame_pixels=320 * 200)

    assert error.value.code == "media_too_large" and error.value.details["max_pixels"] == 320 * 200


def test_frames_are_hashed_at_most_full_hd_with_their_aspect():
    assert hashed_size(1280, 720) == (1280, 720)
    assert hashed_size(1920, 1080) == (1920, 1080)
    assert hashed_size(3840, 2160) == (1920, 1080)
    assert hashed_size(2160, 3840) == (1080, 1920)


@requires_vectors
@requires_video
def test_frames_scaled_down_still_hash_close_to_the_reference(monkeypatch):
    monkeypatch.setattr(media, "FRAME_HASH_MAX_PIXELS", 320 * 180)  # the HD sample, at a sixteenth
    expected = reference_frames("doorknob-hd-no-bar")

    ours = hash_video(VECTORS / "vpdq" / "doorknob-hd-no-bar.mp4")

    assert len(ours) == len(expected)
    for mine, theirs in zip(ours, expected, strict=True):
        if theirs["q"] >= 50:
            assert hamming_distance(mine["pdq"], theirs["pdq"]) <= 31, mine["i"]


@requires_video
def test_few_decoded_frames_wait_for_the_hasher():
    assert media._FRAMES_AHEAD <= 2 and media._DECODER_THREADS <= 2


@pytest.mark.parametrize("fmt,extension", [("ICO", "ico"), ("TGA", "tga"), ("PCX", "pcx"), ("PPM", "ppm")])
def test_image_formats_outside_the_allowlist_are_unsupported(fmt, extension):
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(out, format=fmt)

    with pytest.raises(MediaError) as error:
        hash_media(out.getvalue())

    assert error.value.code == "media_unsupported"
    assert error.value.details["format"] == fmt


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_the_formats_platforms_serve_are_hashed(fmt):
    rng = np.random.default_rng(2)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8).repeat(16, 0).repeat(16, 1)).save(out, format=fmt)

    assert hash_media(out.getvalue())[0]["type"] == "pdq"


@pytest.mark.parametrize("head", [
    b"OggS\x00\x02" + b"\x00" * 64,  # Ogg
    b"\x30\x26\xb2\x75\x8e\x66\xcf\x11" + b"\x00" * 64,  # ASF / WMV
    b"\x00\x00\x01\xba" + b"\x00" * 64,  # MPEG program stream
])
@requires_video
def test_video_containers_outside_the_allowlist_are_unsupported(head):
    with pytest.raises(MediaError) as error:
        hash_media(head)

    assert error.value.code == "media_unsupported"


@requires_video
def test_an_mkv_of_ordinary_size_is_hashed():
    frames = hash_media(mkv(320, 240, frames=3))[0]["frames"]

    assert [f["i"] for f in frames] == [0, 1, 2]
