"""PDQ hashes as values: hex, bytes and uint64 rows, and Hamming distance.

A PDQ hash is 256 bits written as 64 hex characters. For bulk work a hash is a row of four
little-endian uint64 words viewing its 32 bytes in hex order; the words are not the hash read as a
number, but XOR and popcount do not care, and the view makes hex <-> rows a zero-copy step.
Images and video frames are hashed by `consortium_client.media`, the code members run locally too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

PDQ_BITS = 256
PDQ_HEX_LENGTH = 64
ROW_WORDS = 4
ROW_DTYPE = np.dtype("<u8")

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


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


