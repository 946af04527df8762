"""JWS compact serialization (RFC 7515) with Ed25519, for hash statements.

The signature covers the exact payload bytes, so no JSON canonicalization is involved: a verifier
checks the bytes it received, then parses them.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import CodedError

STATEMENT_TYP = "hash-statement+jws"
# RFC 9864 gives Ed25519 its fully specified name; RFC 8037's "EdDSA" is what older libraries emit.
ALLOWED_ALGS = frozenset({"Ed25519", "EdDSA"})
ED25519_SIGNATURE_BYTES = 64
MAX_KID_LENGTH = 128
# Key ids and statement ids are echoed in error messages, logs, the admin and other members' feeds:
# visible ASCII only, so that none can carry control characters, spaces or non-ASCII look-alikes.
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


def is_visible_ascii_id(value: Any, max_length: int) -> bool:
    """A string of 1 to `max_length` visible ASCII characters (0x21 to 0x7E)."""
    return isinstance(value, str) and len(value) <= max_length and _VISIBLE_ASCII.fullmatch(value) is not None


class JWSError(CodedError, ValueError):
    """A statement that is not a well-formed Ed25519 JWS. `code` is stable and documented."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding, as RFC 7515 requires, in its one canonical spelling.

    The standard library's decoder skips characters outside the alphabet and ignores the unused
    bits of the last character, so several texts would decode to one value; a statement must have
    exactly one spelling for resubmission by jti to work."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise binascii.Error("not unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url_encode(data) != text:
        raise binascii.Error("not canonical base64url")
    return data


class StrictJSONError(ValueError):
    pass


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise StrictJSONError(f"duplicate key {key[:40]!r}")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not JSON")


def _check_text(value: Any) -> None:
    """Refuse what no UTF-8 text column can store: NUL and unpaired surrogates (JSON can spell both
    as escapes)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise StrictJSONError("NUL in a string")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise StrictJSONError("unpaired surrogate in a string") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def loads_strict(raw: bytes | str) -> Any:
    """JSON as RFC 8259 means it, for signed data: duplicate keys, NaN and Infinity, NUL and unpaired
    surrogates are refused (parsers disagree on them, so a verifier in another language could read
    another statement than this server did). Raises StrictJSONError (a ValueError)."""
    try:
        value = json.loads(raw, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
    except RecursionError:
        raise StrictJSONError("nested too deeply") from None
    # Plain ASCII without escapes cannot hold either (the parser refuses a raw control character):
    # a 1,000-query match request skips the walk over every string.
    escapes = "\\u" in raw if isinstance(raw, str) else b"\\u" in raw
    if escapes or not raw.isascii():
        _check_text(value)
    return value


@dataclass(frozen=True)
class ParsedJWS:
    header: dict[str, Any]
    payload: dict[str, Any]
    payload_bytes: bytes
    signing_input: bytes
    signature: bytes

    @property
    def kid(self) -> str:
        return self.header["kid"]


def sign(private_key: Ed25519PrivateKey, kid: str, payload: bytes | dict[str, Any]) -> str:
    """Sign payload bytes (or a dict, serialized compactly) as a hash statement."""
    if isinstance(payload, dict):
        payload = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    header = {"alg": "Ed25519", "kid": kid, "typ": STATEMENT_TYP}
    header_b64 = b64url_encode(json.dumps(header, separators=(",", ":")).encode("ascii"))
    signing_input = f"{header_b64}.{b64url_encode(payload)}".encode("ascii")
    return f"{signing_input.decode('ascii')}.{b64url_encode(private_key.sign(signing_input))}"


def _decode_json_object(segment: str, what: str) -> tuple[dict[str, Any], bytes]:
    try:
        raw = b64url_decode(segment)
    except (binascii.Error, ValueError):
        raise JWSError("jws_bad_base64", f"The {what} is not valid base64url.") from None
    try:
        value = loads_strict(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        code = "jws_bad_header" if what == "header" else "payload_malformed"
        raise JWSError(code, f"The {what} is not strict UTF-8 JSON ({str(exc)[:80]}).") from None
    if not isinstance(value, dict):
        code = "jws_bad_header" if what == "header" else "payload_malformed"
        raise JWSError(code, f"The {what} is not a JSON object.")
    return value, raw


def parse(token: str) -> ParsedJWS:
    """Parse a compact JWS and check its protected header; does not verify the signature."""
    if not isinstance(token, str):
        raise JWSError("jws_malformed", "A statement must be a string in JWS compact serialization.")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise JWSError("jws_malformed", "A statement must have three non-empty dot-separated parts.")
    # Every statement a key signs carries the same header: a batch of them decodes it once.
    header = dict(_cached_header(parts[0]) if len(parts[0]) <= MAX_CACHED_HEADER else _checked_header(parts[0]))
    payload, payload_bytes = _decode_json_object(parts[1], "payload")
    try:
        signature = b64url_decode(parts[2])
    except (binascii.Error, ValueError):
        raise JWSError("jws_bad_base64", "The signature is not valid base64url.") from None
    if len(signature) != ED25519_SIGNATURE_BYTES:
        raise JWSError("signature_invalid", "An Ed25519 signature is 64 bytes.")
    return ParsedJWS(
        header=header,
        payload=payload,
        payload_bytes=payload_bytes,
        signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"),
        signature=signature,
    )


def _checked_header(segment: str) -> dict[str, Any]:
    """The protected header, decoded and checked."""
    header, _ = _decode_json_object(segment, "header")
    alg = header.get("alg")
    if alg not in ALLOWED_ALGS:
        raise JWSError("alg_not_allowed", f"alg must be Ed25519 or EdDSA, not {str(alg)[:20]!r}.")
    if "crit" in header:
        raise JWSError("jws_bad_header", "No critical header extensions are understood.")
    typ = header.get("typ")
    if typ is not None and typ != STATEMENT_TYP:
        raise JWSError("typ_invalid", f"typ must be {STATEMENT_TYP!r}.")
    kid = header.get("kid")
    if not is_visible_ascii_id(kid, MAX_KID_LENGTH):
        raise JWSError("kid_missing", f"The header must name the signing key in kid: 1 to {MAX_KID_LENGTH} "
                                      "visible ASCII characters.")
    return header


# Headers are about 100 characters; a longer one is checked every time rather than kept. One that
# fails is never kept (it raises again).
MAX_CACHED_HEADER = 512
_cached_header = functools.lru_cache(maxsize=256)(_checked_header)


def verify_signature(parsed: ParsedJWS, public_key: Ed25519PublicKey) -> bool:
    try:
        public_key.verify(parsed.signature, parsed.signing_input)
    except InvalidSignature:
        return False
    return True
