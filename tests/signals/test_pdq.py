from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from consortium_client import media
from consortium_client.media import MediaError
from hashes.signals import pdq
from tests.signals.vectors import VECTORS, csv_rows, requires_vectors

BRIDGE = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _photo() -> Image.Image:
    return Image.open(VECTORS / "pdq" / "modes" / "original.jpg")


def test_hex_bytes_and_rows_round_trip():
    rows = pdq.hexes_to_rows([BRIDGE, "00" * 31 + "ff"])

    assert rows.shape == (2, 4) and rows.dtype == np.dtype("<u8")
    assert pdq.rows_to_hexes(rows) == [BRIDGE, "00" * 31 + "ff"]
    assert pdq.row_to_hex(pdq.hex_to_row(BRIDGE.upper())) == BRIDGE
    assert pdq.bytes_to_hex(pdq.hex_to_bytes(BRIDGE)) == BRIDGE


@pytest.mark.parametrize("bad", ["", "f" * 63, "g" * 64, "f" * 65, 42])
def test_malformed_hashes_are_refused(bad):
    assert not pdq.is_pdq_hex(bad)
    with pytest.raises(ValueError):
        pdq.hexes_to_rows([bad])


def test_hamming_distance_counts_differing_bits():
    flipped = format(int(BRIDGE, 16) ^ 0b1011 ^ (1 << 255), "064x")

    assert pdq.hamming_distance(BRIDGE, BRIDGE) == 0
    assert pdq.hamming_distance(BRIDGE, flipped) == 4
    rows = pdq.hexes_to_rows([BRIDGE, flipped, "0" * 64])
    assert pdq.hamming_distances(rows[0], rows).tolist() == [0, 4, bin(int(BRIDGE, 16)).count("1")]


@requires_vectors
@pytest.mark.parametrize("row", csv_rows("bridge-mods") if VECTORS.is_dir() else [], ids=lambda r: r["file"])
def test_bridge_mods_hash_bit_exact_with_the_reference(row):
    result = media.hash_image((VECTORS / "pdq" / row["file"]).read_bytes())

    assert result.value == row["reference_pdq"]
    assert result.quality >= 80


@requires_vectors
def test_bridge_mods_stay_within_the_match_distance_of_each_other():
    hashes = [media.hash_image(VECTORS / "pdq" / row["file"]).value for row in csv_rows("bridge-mods")]

    assert max(pdq.hamming_distance(a, b) for a in hashes for b in hashes) <= 31


@requires_vectors
@pytest.mark.parametrize("row", csv_rows("dih") if VECTORS.is_dir() else [], ids=lambda r: r["file"])
def test_rotations_and_flips_within_10_bits_of_the_cpp_reference(row):
    result = media.hash_image(VECTORS / "pdq" / row["file"])

    assert pdq.hamming_distance(result.value, row["reference_pdq"]) <= 10


@requires_vectors
@pytest.mark.parametrize(
    "row",
    [r for r in csv_rows("modes") if r["pdq_of_original_rgb"]] if VECTORS.is_dir() else [],
    ids=lambda r: r["file"],
)
def test_every_colour_mode_hashes_like_the_original(row):
    result = media.hash_image((VECTORS / "pdq" / row["file"]).read_bytes())

    assert pdq.hamming_distance(result.value, row["pdq_of_original_rgb"]) <= 10


@requires_vectors
def test_the_unreadable_lab_tiff_gives_a_clear_error():
    with pytest.raises(MediaError) as error:
        media.hash_image((VECTORS / "pdq" / "modes" / "LAB.tiff").read_bytes())

    assert error.value.code == "media_unreadable"


@requires_vectors
@pytest.mark.parametrize("mode", ["I;16", "I", "F", "F01", "HSV", "LAB", "La", "RGBa", "PA", "CMYK", "1"])
def test_in_memory_modes_are_normalised_before_hashing(mode):
    photo = _photo()
    grey = np.asarray(photo.convert("L"), dtype=np.float64)
    if mode == "I;16":
        image = Image.fromarray((grey * 257).astype(np.uint16))
    elif mode == "I":
        image = Image.fromarray((grey * 257).astype(np.int32))
    elif mode == "F01":
        image = Image.fromarray((grey / 255).astype(np.float32))
    else:
        image = photo.convert(mode)

    result = media.hash_image(image)

    assert pdq.hamming_distance(result.value, BRIDGE) <= 10
    assert result.quality >= 80


@requires_vectors
def test_sixteen_bit_png_is_not_clipped_to_white():
    grey = np.asarray(_photo().convert("L"), dtype=np.uint16) * 257
    encoded = _png(Image.fromarray(grey))

    result = media.hash_image(encoded)

    assert Image.open(io.BytesIO(encoded)).mode.startswith("I")
    assert pdq.hamming_distance(result.value, BRIDGE) <= 10


@requires_vectors
def test_images_above_the_exact_bound_are_downscaled_and_stay_close():
    result = media.hash_image(VECTORS / "pdq" / "modes" / "original.jpg", exact_max_pixels=400_000)

    assert pdq.hamming_distance(result.value, BRIDGE) <= 10


def test_images_above_the_pixel_limit_are_refused_before_decoding():
    with pytest.raises(MediaError) as error:
        media.hash_image(_png(Image.new("RGB", (300, 200))), max_pixels=50_000)

    assert error.value.code == "media_too_large"


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_garbage_is_unreadable_not_a_crash(data):
    with pytest.raises(MediaError) as error:
        media.hash_image(data)

    assert error.value.code == "media_unreadable"


@requires_vectors
def test_a_truncated_jpeg_is_unreadable():
    data = (VECTORS / "pdq" / "modes" / "original.jpg").read_bytes()

    with pytest.raises(MediaError) as error:
        media.hash_image(data[: len(data) // 3])

    assert error.value.code == "media_unreadable"


def test_a_flat_image_has_low_quality():
    assert media.hash_image(_png(Image.new("RGB", (64, 64), (120, 130, 140)))).quality < 50
