"""Hash an image or video file into the signals a statement carries: PDQ or vPDQ, plus MD5 and SHA-256.

This is the one implementation: the server's `POST hash/` and `match/` call it on uploads, and the
member CLI (`consortium hash`) calls it on local files, so both give the same signals for the same
bytes. It needs the `media` extra (numpy, pdqhash, Pillow, PyAV) and nothing of the server.

Images and videos are told apart by their first bytes, never by the file name. Videos are decoded
with PyAV (whose wheels carry FFmpeg) and each sampled frame is hashed with pdqhash the way Meta's
vpdq does: frames counted in decoding order, each converted at its own size to RGB24 by swscale's
area filter with BT.601 coefficients, its timestamp being index / average frame rate. On vpdq's
sample videos this gives the reference's frames, indexes and timestamps exactly, and frame hashes
within 6 bits of the reference (22 on the HD sample), FFmpeg versions differing slightly.
The media is only read, from memory or from a file, and nothing is kept.

Bounds, so that one upload cannot take a web worker's memory: images and frames are refused on
their declared size before anything is decoded, frames larger than full HD are scaled down to it
before hashing (pdqhash needs about 23 bytes a pixel), and at most a few decoded frames are in
flight at any time. Only the containers and image formats platforms serve are opened at all.
"""

from __future__ import annotations

import hashlib
import io
import os
import queue
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

import numpy as np
import pdqhash
from PIL import (  # noqa: F401  (the plugins of IMAGE_FORMATS register themselves on import)
    AvifImagePlugin,
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    JpegImagePlugin,
    MpoImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

from .errors import CodedError

MEDIA_UNREADABLE = "media_unreadable"
MEDIA_UNSUPPORTED = "media_unsupported"
MEDIA_TOO_LARGE = "media_too_large"
MEDIA_TOO_LONG = "media_too_long"
VIDEO_UNSUPPORTED = "video_unsupported"


class MediaError(CodedError, ValueError):
    """A file that cannot be hashed; `code` is stable and safe to show to the member."""


# Above this many pixels an image is downscaled before hashing: pdqhash needs about 23 bytes a
# pixel beyond the decoded image (measured: 16 MP adds 370 MB). Below it the hash is bit-exact
# with the reference hasher, which a member's local copy of pdqhash also is.
EXACT_MAX_PIXELS = 16_000_000
# Larger images are refused from their header, before a pixel is decoded (MEDIA_MAX_PIXELS).
MAX_PIXELS = 50_000_000
# The still-image formats a member's platform serves (camera JPEGs that Pillow reads as MPO come
# through the JPEG opener). Pillow knows dozens more (PSD, ICO, EPS, TGA, ...): each one is more parser to attack, and none
# is how terrorist content circulates, so they are refused as unsupported.
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF")


class PdqHash(NamedTuple):
    value: str
    quality: int


def hash_rgb(pixels: np.ndarray) -> PdqHash:
    """PDQ of an (height, width, 3) uint8 RGB array, at its full resolution."""
    bits, quality = pdqhash.compute(np.ascontiguousarray(pixels, dtype=np.uint8))
    return PdqHash(np.packbits(bits.astype(np.uint8)).tobytes().hex(), int(quality))


def hash_image(
    source: bytes | str | os.PathLike[str] | Image.Image,
    *,
    max_pixels: int = MAX_PIXELS,
    exact_max_pixels: int = EXACT_MAX_PIXELS,
) -> PdqHash:
    """PDQ of an image file's content (or an open Pillow image), normalised to RGB first.

    Raises MediaError `media_unreadable` for anything Pillow cannot decode, `media_unsupported`
    for a format outside IMAGE_FORMATS and `media_too_large` above `max_pixels` (checked on the
    header, before decoding).
    """
    if isinstance(source, Image.Image):
        return _hash_open_image(source, max_pixels, exact_max_pixels)
    with open_image(source) as image:
        return _hash_open_image(image, max_pixels, exact_max_pixels, owned=True)


def _hash_open_image(image: Image.Image, max_pixels: int, exact_max_pixels: int, *, owned: bool = False) -> PdqHash:
    pixels = image.width * image.height
    if pixels > max_pixels:
        raise MediaError(
            MEDIA_TOO_LARGE,
            f"The image has {pixels} pixels; at most {max_pixels} are accepted.",
            {"pixels": pixels, "max_pixels": max_pixels},
        )
    try:
        if pixels > exact_max_pixels:
            smaller = _downscale(image, exact_max_pixels)
            if owned:
                image.close()  # frees the full-size pixels before pdqhash allocates its own
            image = smaller
        rgb = to_rgb_array(image)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise MediaError(MEDIA_UNREADABLE, "The image could not be decoded.") from exc
    return hash_rgb(rgb)


def open_image(source: bytes | str | os.PathLike[str]) -> Image.Image:
    """Open (not yet decode) an image of one of IMAGE_FORMATS by its content, whatever its name says."""
    handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        with warnings.catch_warnings():
            # The pixel bound is ours to enforce, with our error, right after opening.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(handle, formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as exc:
        raise MediaError(MEDIA_TOO_LARGE, str(exc)) from exc
    except Image.UnidentifiedImageError as exc:
        other = _other_format(handle)
        if other:
            raise MediaError(
                MEDIA_UNSUPPORTED, f"{other} images are not accepted.", {"format": other, "accepted": list(IMAGE_FORMATS)}
            ) from exc
        raise MediaError(MEDIA_UNREADABLE, "The file is not an image that can be read.") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise MediaError(MEDIA_UNREADABLE, "The file is not an image that can be read.") from exc


def _other_format(handle: io.BytesIO | str | os.PathLike[str]) -> str | None:
    """The format Pillow would read this file as, outside IMAGE_FORMATS: only its header is read."""
    if isinstance(handle, io.BytesIO):
        handle.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(handle) as image:
                return image.format
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return None


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Decode to an (height, width, 3) uint8 array in sRGB-ish RGB.

    CMYK, palette, YCbCr, LAB and HSV images hash wrongly unless converted; alpha is dropped
    rather than composited because the reference hashers ignore it, so a member's local hash of
    the same file agrees with ours. Orientation tags are not applied, for the same reason.
    """
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image)
    if mode in ("I", "F") or mode.startswith("I;16"):
        grey = _wide_to_8bit(np.asarray(image))
        return np.repeat(grey[:, :, np.newaxis], 3, axis=2)
    if mode == "La":
        image = image.convert("LA")
    return np.asarray(image.convert("RGB"))


def _wide_to_8bit(values: np.ndarray) -> np.ndarray:
    """Map a 16-bit, 32-bit or float greyscale plane onto 0..255.

    Pillow clips these modes at 255 when converting, which turns most 16-bit images white. Their
    nominal range is not recorded in the file, so it is inferred from the values; the PDQ bits do
    not depend on the scale (only the quality does), so a wrong guess costs little.
    """
    values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    if low >= 0.0 and high <= 1.0 and values.dtype.kind == "f":
        scaled = values * 255.0
    elif low >= 0.0 and high <= 255.0:
        scaled = values
    elif low >= 0.0 and high <= 65535.0:
        scaled = values / 257.0
    else:
        scaled = (values - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _downscale(image: Image.Image, max_pixels: int) -> Image.Image:
    factor = (image.width * image.height / max_pixels) ** 0.5
    size = (max(1, int(image.width / factor)), max(1, int(image.height / factor)))
    # JPEG can decode straight at a reduced scale, which bounds memory before any pixel exists.
    image.draft(image.mode, size)
    if image.mode.startswith("I;16"):
        image = image.convert("I")
    elif image.mode == "1":
        image = image.convert("L")  # the same greys at a third of RGB's memory
    elif image.mode not in ("RGB", "L", "I", "F"):
        # Palette and bilevel images would be resized by nearest neighbour; resample colours.
        image = Image.fromarray(to_rgb_array(image))
    return image.resize(size, Image.Resampling.BOX)


# Declared frame size above which a video is refused (MEDIA_MAX_FRAME_PIXELS): 4096 x 4096 covers
# 4K and DCI 4K in either orientation; FFmpeg is told the same bound, so that neither probing the
# file nor a resolution change mid-stream decodes a larger frame.
MAX_FRAME_PIXELS = 4096 * 4096
# Frames are hashed at most this large: vpdq's sample videos (up to 1280x720) hash at their own
# size as the reference does; a 4K frame is halved, which PDQ's own 64x64 downsampling barely notices.
FRAME_HASH_MAX_PIXELS = 1920 * 1080
# Frames decoded ahead of the hasher, and FFmpeg's decoding threads (each holds frames of its own).
_FRAMES_AHEAD = 2
_DECODER_THREADS = 2
Source = bytes | str | os.PathLike[str]
Progress = Callable[[float], None]

# ISO base media (MP4, MOV, 3GP) also wraps still images; these brands are images.
_IMAGE_BRANDS = {b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"mif2"}
# QuickTime files may start with one of these atoms instead of `ftyp`.
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
_MIN_FRAME_SIDE = 5  # vpdq refuses smaller frames: PDQ needs a few pixels to downscale from
_READ_CHUNK = 1 << 20
_T = TypeVar("_T")


def hash_media(
    source: Source,
    *,
    max_bytes: int | None = None,
    max_pixels: int = MAX_PIXELS,
    max_frame_pixels: int = MAX_FRAME_PIXELS,
    max_video_seconds: float | None = None,
    seconds_per_hash: float = 0.0,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Signals for an image or a video, in the statement wire shape.

    Images give `{"type": "pdq", "value", "quality"}`, videos `{"type": "vpdq", "frames": [...]}`;
    both are followed by `md5` and `sha256` of the exact bytes. `max_pixels` bounds an image,
    `max_frame_pixels` a video frame. `seconds_per_hash` 0 hashes every frame, as vpdq's own tool does by
    default. `progress`, if given, is called with the share of a video decoded so far (0..1) after
    each hashed frame. Raises MediaError: media_too_large, media_too_long, media_unreadable,
    media_unsupported, or video_unsupported when PyAV is missing.
    """
    size = len(source) if isinstance(source, (bytes, bytearray)) else _file_size(source)
    if max_bytes is not None and size > max_bytes:
        raise MediaError(
            MEDIA_TOO_LARGE, f"The file has {size} bytes; at most {max_bytes} are accepted.", {"max_bytes": max_bytes}
        )
    if size == 0:
        raise MediaError(MEDIA_UNREADABLE, "The file is empty.")
    if media_kind(_head(source)) == "video":
        frames = hash_video(
            source, max_pixels=max_frame_pixels, max_seconds=max_video_seconds, seconds_per_hash=seconds_per_hash,
            progress=progress,
        )
        perceptual: dict[str, Any] = {"type": "vpdq", "frames": frames}
    else:
        pdq = hash_image(source, max_pixels=max_pixels)
        perceptual = {"type": "pdq", "value": pdq.value, "quality": pdq.quality}
    md5, sha256 = _digests(source)
    return [perceptual, {"type": "md5", "value": md5}, {"type": "sha256", "value": sha256}]


def media_kind(head: bytes) -> str:
    """Whether a file is a video (its first bytes are a video container's) or else an image.

    Anything not recognised as video goes to Pillow, which has the last word on images.
    """
    box = head[4:8]
    if box == b"ftyp":
        return "image" if head[8:12] in _IMAGE_BRANDS else "video"
    if box in _QUICKTIME_ATOMS:
        return "video"
    if head.startswith((b"\x1a\x45\xdf\xa3", b"FLV", b"OggS", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")):
        return "video"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):  # ASF / WMV
        return "video"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "video"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:  # MPEG transport stream
        return "video"
    return "image"


def video_format(head: bytes) -> str | None:
    """The FFmpeg demuxer for a video container platforms serve, or None for any other.

    The demuxer is named rather than probed for, so FFmpeg never picks one of its others (playlist
    and concat demuxers open further files and URLs) for a file that only starts like a video.
    """
    box = head[4:8]
    if box == b"ftyp" or box in _QUICKTIME_ATOMS:
        return "mov"  # MP4, MOV, 3GP
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"  # MKV and WebM
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"FLV"):
        return "flv"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return "mpegts"  # live-stream recordings and HLS segments
    return None


def video_supported() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def hash_video(
    source: Source,
    *,
    max_pixels: int = MAX_PIXELS,
    max_seconds: float | None = None,
    seconds_per_hash: float = 0.0,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """vPDQ frames `{"i", "t", "pdq", "q"}` of a video's first video stream.

    `max_pixels` bounds the declared frame size: larger videos are refused before a frame is decoded.
    """
    frames = []
    for frame, done in iter_video_frames(
        source, max_pixels=max_pixels, max_seconds=max_seconds, seconds_per_hash=seconds_per_hash
    ):
        frames.append(frame)
        if progress is not None:
            progress(done)
    if not frames:
        raise MediaError(MEDIA_UNREADABLE, "The video has no frames.")
    return frames


def iter_video_frames(
    source: Source,
    *,
    max_pixels: int = MAX_PIXELS,
    max_seconds: float | None = None,
    seconds_per_hash: float = 0.0,
) -> Iterator[tuple[dict[str, Any], float]]:
    """`hash_video`'s frames one at a time, each with the share of the video decoded so far (0..1,
    estimated from the declared duration; 0 while that is unknown).

    Memory stays the same however long the video: a few decoded frames are in flight and nothing
    is kept between frames, so a caller that writes frames away as they come hashes hours of video
    in the memory a second takes. The container is closed when the iteration ends or is abandoned.
    """
    if seconds_per_hash < 0:
        raise ValueError("seconds_per_hash must not be negative")
    try:
        import av
    except ImportError as exc:
        raise MediaError(VIDEO_UNSUPPORTED, "Video cannot be decoded here: PyAV is not installed.") from exc
    demuxer = video_format(_head(source))
    if demuxer is None:
        raise MediaError(
            MEDIA_UNSUPPORTED, "Videos are accepted as MP4, MOV, MKV, WebM, AVI, FLV or MPEG-TS.",
            {"accepted": ["mp4", "mov", "mkv", "webm", "avi", "flv", "mpegts"]},
        )
    # max_pixels also binds the decoders FFmpeg opens while probing the file's streams.
    bound = {"max_pixels": str(max_pixels)}
    try:
        container = av.open(
            io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else os.fspath(source),
            format=demuxer, options=bound,
        )
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(MEDIA_UNREADABLE, "The video could not be opened.") from exc
    with container:
        if not container.streams.video:
            raise MediaError(MEDIA_UNSUPPORTED, "The file has no video stream.")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > max_pixels:
            raise MediaError(
                MEDIA_TOO_LARGE, f"Video frames of {width}x{height} are too large; at most {max_pixels} pixels are accepted.",
                {"pixels": width * height, "max_pixels": max_pixels},
            )
        # vpdq's rule: the average frame rate, else the rate every timestamp can be expressed in.
        rate = stream.average_rate or stream.base_rate
        if not rate:
            raise MediaError(MEDIA_UNREADABLE, "The video's frame rate is unknown.")
        fps = float(rate)
        declared = _declared_seconds(container, stream)
        if max_seconds is not None and declared is not None and declared > max_seconds:
            raise MediaError(
                MEDIA_TOO_LONG,
                f"The video lasts {declared:.1f} s; at most {max_seconds:g} s are accepted.",
                {"max_seconds": max_seconds},
            )
        every = max(1, int(seconds_per_hash * fps))
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = _DECODER_THREADS
        stream.codec_context.options = bound
        decoded = _rgb_frames(
            av, container, stream, fps=fps, every=every, max_seconds=max_seconds, max_pixels=max_pixels
        )
        for number, pixels in _ahead(decoded, depth=_FRAMES_AHEAD):
            pdq = hash_rgb(pixels)
            seconds = number / fps
            done = min(1.0, seconds / declared) if declared else 0.0
            yield {"i": number, "t": round(seconds, 3), "pdq": pdq.value, "q": pdq.quality}, done


def _rgb_frames(
    av: Any, container: Any, stream: Any, *, fps: float, every: int, max_seconds: float | None, max_pixels: int
) -> Iterator[tuple[int, np.ndarray]]:
    """(frame number, RGB24 pixels) of every `every`-th frame, numbered in decoding order."""
    try:
        for number, frame in enumerate(container.decode(stream)):
            if max_seconds is not None and number / fps > max_seconds:
                # The container's declared duration can lie; the frames cannot.
                raise MediaError(
                    MEDIA_TOO_LONG, f"The video lasts over {max_seconds:g} s.", {"max_seconds": max_seconds}
                )
            if number % every:
                continue
            if frame.width < _MIN_FRAME_SIDE or frame.height < _MIN_FRAME_SIDE:
                raise MediaError(MEDIA_UNSUPPORTED, "The video's frames are too small to hash.")
            if frame.width * frame.height > max_pixels:
                raise MediaError(MEDIA_TOO_LARGE, "The video's frames are too large.", {"max_pixels": max_pixels})
            width, height = hashed_size(frame.width, frame.height)
            yield number, frame.to_ndarray(
                width=width, height=height, format="rgb24", interpolation="AREA", src_colorspace="ITU601"
            )
    except MediaError:
        raise
    except (av.FFmpegError, ValueError) as exc:
        raise MediaError(MEDIA_UNREADABLE, "The video could not be decoded.") from exc


def hashed_size(width: int, height: int, max_pixels: int | None = None) -> tuple[int, int]:
    """The size a frame is hashed at: its own, or scaled (aspect kept) to at most `max_pixels`."""
    max_pixels = FRAME_HASH_MAX_PIXELS if max_pixels is None else max_pixels
    if width * height <= max_pixels:
        return width, height
    factor = (width * height / max_pixels) ** 0.5
    return max(_MIN_FRAME_SIDE, int(width / factor)), max(_MIN_FRAME_SIDE, int(height / factor))


class _Failure(NamedTuple):
    error: BaseException


_END = object()


def _ahead(items: Iterator[_T], depth: int = _FRAMES_AHEAD) -> Iterator[_T]:
    """Yield `items`, produced on a helper thread up to `depth` ahead of the consumer.

    FFmpeg releases the GIL while it decodes and converts and pdqhash does not while it hashes,
    so decoding the next frames overlaps with hashing this one: a quarter off a video's time.
    """
    buffer: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # re-raised in the consumer, whatever it was
            put(_Failure(exc))
            return
        put(_END)

    helper = threading.Thread(target=produce, name="video-decode", daemon=True)
    helper.start()
    try:
        while (item := buffer.get()) is not _END:
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        # The caller closes the container next, so decoding must have stopped by then.
        stop.set()
        helper.join()


def _declared_seconds(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def _file_size(path: str | os.PathLike[str]) -> int:
    try:
        return os.stat(path).st_size
    except OSError as exc:
        raise MediaError(MEDIA_UNREADABLE, "The file could not be read.") from exc


def _head(source: Source, length: int = 512) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source[:length])
    with open(source, "rb") as handle:
        return handle.read(length)


def _digests(source: Source) -> tuple[str, str]:
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    if isinstance(source, (bytes, bytearray)):
        md5.update(source)
        sha256.update(source)
    else:
        with open(source, "rb") as handle:
            while chunk := handle.read(_READ_CHUNK):
                md5.update(chunk)
                sha256.update(chunk)
    return md5.hexdigest(), sha256.hexdigest()
