from __future__ import annotations

import hashlib
import sys
import threading

import pytest

from consortium_client import media
from consortium_client.media import MediaError, hash_media, hash_video, media_kind
from hashes.signals.pdq import hamming_distance
from tests.signals.vectors import (
    VECTORS,
    VIDEOS,
    our_signals,
    reference_frames,
    requires_vectors,
    requires_video,
)

BRIDGE = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


@requires_vectors
def test_an_image_gives_pdq_md5_and_sha256_in_the_wire_shape():
    data = (VECTORS / "pdq" / "bridge-mods" / "aaa-orig.jpg").read_bytes()

    signals = hash_media(data)

    assert signals == [
        {"type": "pdq", "value": BRIDGE, "quality": 100},
        {"type": "md5", "value": hashlib.md5(data).hexdigest()},
        {"type": "sha256", "value": hashlib.sha256(data).hexdigest()},
    ]


@requires_vectors
@requires_video
def test_content_decides_image_or_video_not_the_file_name(tmp_path):
    disguised_video = tmp_path / "holiday.jpg"
    disguised_video.write_bytes((VECTORS / "vpdq" / "pattern-sd-grey-bar.mp4").read_bytes())
    disguised_image = tmp_path / "clip.mp4"
    disguised_image.write_bytes((VECTORS / "pdq" / "bridge-mods" / "aaa-orig.jpg").read_bytes())

    assert hash_media(disguised_video)[0]["type"] == "vpdq"
    assert hash_media(disguised_image)[0] == {"type": "pdq", "value": BRIDGE, "quality": 100}


def test_container_sniffing():
    assert media_kind(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00") == "video"
    assert media_kind(b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00") == "image"
    assert media_kind(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81") == "video"
    assert media_kind(b"RIFF\x00\x00\x00\x00AVI LIST") == "video"
    assert media_kind(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image"
    assert media_kind(b"\xff\xd8\xff\xe0\x00\x10JFIF") == "image"


def test_files_over_the_size_limit_are_refused():
    with pytest.raises(MediaError) as error:
        hash_media(b"x" * 101, max_bytes=100)

    assert error.value.code == "media_too_large"


@pytest.mark.parametrize("data", [b"", b"%PDF-1.7 not media", b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64])
def test_unreadable_files_give_a_stable_code(data):
    with pytest.raises(MediaError) as error:
        hash_media(data)

    assert error.value.code == "media_unreadable"


@requires_vectors
@requires_video
@pytest.mark.parametrize("video", VIDEOS)
def test_vpdq_frames_agree_with_the_reference(video):
    expected = reference_frames(video)

    ours = our_signals(video)[0]["frames"]

    assert len(ours) == len(expected)
    for mine, theirs in zip(ours, expected, strict=True):
        assert (mine["i"], mine["t"]) == (theirs["i"], theirs["t"])
        assert abs(mine["q"] - theirs["q"]) <= 5
        if theirs["q"] >= 50:
            assert hamming_distance(mine["pdq"], theirs["pdq"]) <= 31, mine["i"]


@requires_vectors
@requires_video
def test_a_video_gives_vpdq_md5_and_sha256():
    data = (VECTORS / "vpdq" / "pattern-sd-grey-bar.mp4").read_bytes()

    signals = our_signals("pattern-sd-grey-bar")

    assert [s["type"] for s in signals] == ["vpdq", "md5", "sha256"]
    assert signals[1]["value"] == hashlib.md5(data).hexdigest()
    assert signals[2]["value"] == hashlib.sha256(data).hexdigest()
    assert set(signals[0]["frames"][0]) == {"i", "t", "pdq", "q"}


@requires_vectors
@requires_video
def test_seconds_per_hash_samples_frames_like_vpdq():
    frames = hash_video(VECTORS / "vpdq" / "pattern-sd-grey-bar.mp4", seconds_per_hash=1.0)

    assert [f["i"] for f in frames] == list(range(0, 206, 30))
    assert [f["t"] for f in frames] == [float(s) for s in range(7)]


@requires_vectors
@requires_video
def test_videos_over_the_duration_limit_are_refused():
    with pytest.raises(MediaError) as error:
        hash_media(VECTORS / "vpdq" / "doorknob-hd-no-bar.mp4", max_video_seconds=2)

    assert error.value.code == "media_too_long"


@requires_vectors
@requires_video
def test_a_truncated_video_is_unreadable():
    data = (VECTORS / "vpdq" / "pattern-sd-grey-bar.mp4").read_bytes()

    with pytest.raises(MediaError) as error:
        hash_media(data[:4000])

    assert error.value.code == "media_unreadable"


@requires_vectors
def test_without_pyav_videos_get_a_clear_error_and_images_still_work(monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # makes `import av` raise ImportError

    with pytest.raises(MediaError) as error:
        hash_media(VECTORS / "vpdq" / "pattern-sd-grey-bar.mp4")

    assert error.value.code == "video_unsupported"
    assert hash_media(VECTORS / "pdq" / "bridge-mods" / "aaa-orig.jpg")[0]["value"] == BRIDGE


@requires_vectors
@requires_video
def test_a_video_whose_container_hides_its_length_is_stopped_while_decoding(monkeypatch):
    monkeypatch.setattr(media, "_declared_seconds", lambda container, stream: None)

    with pytest.raises(MediaError) as error:
        hash_media(VECTORS / "vpdq" / "doorknob-hd-no-bar.mp4", max_video_seconds=1)

    assert error.value.code == "media_too_long"
    assert not [t for t in threading.enumerate() if t.name == "video-decode"]
