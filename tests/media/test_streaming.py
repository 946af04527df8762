"""The client's hasher as a stream: the frames one at a time, with progress, in memory that does not
depend on the video's length."""

from __future__ import annotations

import tracemalloc

from consortium_client.media import hash_video, iter_video_frames
from tests.media.videos import cached_video


def test_the_stream_gives_hash_videos_frames_with_rising_progress(short_video):
    streamed = list(iter_video_frames(short_video))
    reported: list[float] = []

    frames = hash_video(short_video, progress=reported.append)

    assert [frame for frame, _ in streamed] == frames
    assert reported == [done for _, done in streamed]
    assert reported == sorted(reported) and 0 <= reported[0] < 0.05 and 0.95 < reported[-1] <= 1


def peak_while_streaming(path) -> int:
    tracemalloc.start()
    try:
        for _frame, _done in iter_video_frames(path):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_while_streaming_does_not_grow_with_the_videos_length(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lengths")
    short = cached_video(folder, seconds=2, width=640, height=360)
    long = cached_video(folder, seconds=20, width=640, height=360)

    short_peak, long_peak = peak_while_streaming(short), peak_while_streaming(long)

    # A decoded 640x360 frame is 0.7 MB; keeping the frames of 20 s would take 420 MB.
    assert long_peak < short_peak + 2_000_000, (short_peak, long_peak)
