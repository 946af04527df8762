"""PDQ hashes as values: hex, bytes and uint64 rows, Hamming distance, and hashing an image.

A PDQ hash is 256 bits written as 64 hex characters. For bulk work a hash is a row of four
little-endian uint64 words viewing its 32 bytes in hex order; the words are not the hash read as a
number, but XOR and popcount do not care, and the view makes hex <-> rows a zero-copy step.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Iterable
from typing import NamedTuple

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

from hashes.signals.errors import MEDIA_TOO_LARGE, MEDIA_UNREADABLE, MEDIA_UNSUPPORTED, MediaError

PDQ_BITS = 256
PDQ_HEX_LENGTH = 64
ROW_WORDS = 4
ROW_DTYPE = np.dtype("<u8")

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

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class PdqHash(NamedTuple):
    value: str
    quality: int


def is_pdq_hex(value: object) -> bool:
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


def hex_to_bytes(value: str) -> bytes:
    if not is_pdq_hex(value):
        raise ValueError("a PDQ hash is 64 hexadecimal characters")
    return bytes.fromhex(value)


def bytes_to_hex(raw: bytes) -> str:
    if len(raw) != PDQ_BITS // 8:
        raise ValueError("a PDQ hash is 32 bytes")
    return raw.hex()


def hex_to_row(value: str) -> np.ndarray:
    return np.frombuffer(hex_to_bytes(value), dtype=ROW_DTYPE)


def hexes_to_rows(values: Iterable[str]) -> np.ndarray:
    """Many hex hashes as an (n, 4) uint64 array; one join and one parse, however many."""
    values = list(values)
    # Checked in bulk (a regex per value would cost seconds at 10 M): with every value 64
    # characters long, any non-hex character or whitespace makes fromhex fail or come up short.
    if not all(isinstance(v, str) for v in values) or set(map(len, values)) - {PDQ_HEX_LENGTH}:
        raise ValueError("PDQ hashes are 64 hexadecimal characters")
    try:
        raw = bytes.fromhex("".join(values))
    except ValueError as exc:
        raise ValueError("PDQ hashes are 64 hexadecimal characters") from exc
    if len(raw) != len(values) * (PDQ_BITS // 8):
        raise ValueError("PDQ hashes are 64 hexadecimal characters")
    return np.frombuffer(raw, dtype=ROW_DTYPE).reshape(len(values), ROW_WORDS).copy()


def row_to_hex(row: np.ndarray) -> str:
    return np.ascontiguousarray(row, dtype=ROW_DTYPE).tobytes().hex()


def rows_to_hexes(rows: np.ndarray) -> list[str]:
    text = np.ascontiguousarray(rows, dtype=ROW_DTYPE).tobytes().hex()
    return [text[i : i + PDQ_HEX_LENGTH] for i in range(0, len(text), PDQ_HEX_LENGTH)]


def hamming_distance(a: str, b: str) -> int:
    """Bits that differ between two hex hashes."""
    if not (is_pdq_hex(a) and is_pdq_hex(b)):
        raise ValueError("a PDQ hash is 64 hexadecimal characters")
    return (int(a, 16) ^ int(b, 16)).bit_count()


def hamming_distances(query: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Distance from one row to each of `rows`, as int64."""
    return np.bitwise_count(np.bitwise_xor(rows, query)).sum(axis=1, dtype=np.int64)


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
