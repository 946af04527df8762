"""Signals and raw JWS pieces for tests."""

from __future__ import annotations

import base64
import json
from typing import Any


def md5(n: int) -> dict[str, str]:
    return {"type": "md5", "value": f"{n:032x}"}


def sha256(n: int) -> dict[str, str]:
    return {"type": "sha256", "value": f"{n:064x}"}


def pdq(n: int, quality: int = 90) -> dict[str, Any]:
    return {"type": "pdq", "value": f"{n:064x}", "quality": quality}


def vpdq(*frame_values: int, quality: int = 90) -> dict[str, Any]:
    return {"type": "vpdq", "frames": [
        {"i": i, "t": float(i), "pdq": f"{v:064x}", "q": quality} for i, v in enumerate(frame_values)
    ]}


def b64(data: bytes | dict[str, Any]) -> str:
    if isinstance(data, dict):
        data = json.dumps(data).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"\0" * 64) -> str:
    return f"{b64(header)}.{b64(payload)}.{b64(signature)}"


BASE_PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def flip(value: str, bits: range | list[int]) -> str:
    """`value` (hex) with the given bit positions inverted: a variant exactly len(bits) away."""
    number = int(value, 16)
    for bit in bits:
        number ^= 1 << bit
    return f"{number:0{len(value)}x}"


def pdq_value(value: str, quality: int = 90) -> dict[str, Any]:
    return {"type": "pdq", "value": value, "quality": quality}


def random_pdq(n: int, quality: int = 90) -> dict[str, Any]:
    """A PDQ unrelated to every other n (about 128 bits apart): no dedupe or family links between them."""
    import hashlib

    return pdq_value(hashlib.sha256(f"pdq-{n}".encode()).hexdigest(), quality)
