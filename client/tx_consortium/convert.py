"""Feed events as python-threatexchange records, and signals between the two vocabularies.

Plain functions over the feed's JSON; no network. Statements are trusted only once their signature
verifies against the server's published member keys (`GET keys/`), so a server that invented or
altered a statement could not make a member's index act on it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
from typing import Any, Callable, Iterable, Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consortium_client import jws, keys

from .state import ConsortiumHashRecord

logger = logging.getLogger(__name__)

# Consortium signal type -> python-threatexchange signal type name. pytx has no content-agnostic
# exact hash: its MD5 and SHA-256 types are `video_md5` and `video_sha256`, so every exact hash maps
# to them whatever its content_type (photo, video, file). An exact hash matches only the very same
# bytes, so the name cannot make a photo's hash match anything but that photo's file; the record
# keeps the real content_type. (pytx computes these only for `video` content: a photo's MD5 matches
# through `match video FILE` or `match video --hashes -S video_md5`, and HMA's raw hash lookup.)
PYTX_SIGNAL_TYPES: dict[str, str] = {"pdq": "pdq", "vpdq": "vpdq", "md5": "video_md5", "sha256": "video_sha256"}
CONSORTIUM_SIGNAL_TYPES: dict[str, str] = {pytx: ours for ours, pytx in PYTX_SIGNAL_TYPES.items()}

FEEDBACK_REASONS = frozenset(
    {"not_tvec", "wrong_label", "newsworthy", "counter_speech", "benign_common_image", "low_quality", "other"}
)


def vpdq_digest(frame_pdqs: Iterable[str]) -> str:
    """A vPDQ's value on the server: SHA-256 of its frames' PDQs (lower-case hex, in frame order)
    joined by newlines. Feedback targets a video by it."""
    return hashlib.sha256("\n".join(pdq.lower() for pdq in frame_pdqs).encode("ascii")).hexdigest()


def vpdq_compact(frames: Iterable[Mapping[str, Any]]) -> str:
    """Frames `{"i", "t", "pdq", "q"}` as python-threatexchange's `vpdq` signal: a JSON list of
    "<pdq hex>,<quality>,<seconds>" in frame order (its VpdqCompactFeature text, seconds to three
    significant digits as it writes them). Every frame is kept: pytx filters by quality itself, and
    the frame list is what the consortium's digest covers."""
    ordered = sorted(frames, key=lambda frame: frame["i"])
    return json.dumps([f"{frame['pdq'].lower()},{int(frame['q'])},{float(frame['t']):.3}" for frame in ordered])


def vpdq_compact_pdqs(signal: str) -> list[str]:
    """The frames' PDQs of a pytx `vpdq` signal, in order."""
    features = json.loads(signal)
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise ValueError("not a vpdq compact feature list")
    return [feature.split(",", 1)[0] for feature in features]


def feedback_target(pytx_signal_type: str, signal: str) -> dict[str, str]:
    """The `target` of a feedback statement about a pytx signal."""
    ours = CONSORTIUM_SIGNAL_TYPES.get(pytx_signal_type)
    if ours is None:
        raise ValueError(f"the consortium has no {pytx_signal_type} hashes")
    if ours == "vpdq":
        return {"type": ours, "value": vpdq_digest(vpdq_compact_pdqs(signal))}
    return {"type": ours, "value": signal.strip().lower()}


def unix_seconds(iso: str) -> int:
    return int(datetime.datetime.fromisoformat(iso).timestamp())


class KeyRing:
    """Members' public keys from `GET keys/`, by (member, kid). `fetch` is called again (at most once
    per unknown key) when a statement names a key the ring does not hold: one registered since."""

    def __init__(self, fetch: Callable[[], Mapping[str, Any]]) -> None:
        self._fetch = fetch
        self._keys: dict[tuple[str, str], Ed25519PublicKey] = {}
        self._asked: set[tuple[str, str]] = set()
        self.refresh()

    def refresh(self) -> None:
        loaded: dict[tuple[str, str], Ed25519PublicKey] = {}
        for jwk in self._fetch().get("keys", []):
            try:
                loaded[(jwk["member"], jwk["kid"])] = keys.load_public_jwk(
                    {k: jwk[k] for k in ("kty", "crv", "x") if k in jwk})
            except (KeyError, TypeError, keys.JWKError):
                logger.warning("ignoring an unreadable key in keys/: %.80r", jwk)
        self._keys = loaded

    def _key(self, member: str, kid: str) -> Ed25519PublicKey | None:
        wanted = (member, kid)
        if wanted not in self._keys and wanted not in self._asked:
            self._asked.add(wanted)
            self.refresh()
        return self._keys.get(wanted)

    def verified_payload(self, token: Any) -> dict[str, Any] | None:
        """The payload of a statement whose signature verifies with its issuer's published key;
        None for anything else (malformed, unknown, revoked or another member's key, bad signature)."""
        try:
            parsed = jws.parse(token)
        except jws.JWSError:
            return None
        issuer = parsed.payload.get("iss")
        if not isinstance(issuer, str):
            return None
        key = self._key(issuer, parsed.kid)
        if key is None or not jws.verify_signature(parsed, key):
            return None
        return parsed.payload


def statement_asserts(payload: Mapping[str, Any], signal_type: str, value: str) -> bool:
    """Whether a `hash` statement carries this hash (a vPDQ compared by its frame digest)."""
    if payload.get("kind") != "hash" or not isinstance(payload.get("signals"), list):
        return False
    for signal in payload["signals"]:
        if not isinstance(signal, dict) or signal.get("type") != signal_type:
            continue
        try:
            if signal_type == "vpdq":
                frames = sorted(signal["frames"], key=lambda frame: frame["i"])
                if vpdq_digest(frame["pdq"] for frame in frames) == value:
                    return True
            elif str(signal.get("value", "")).lower() == value:
                return True
        except (KeyError, TypeError, AttributeError):
            continue
    return False


def record_from_event(event: Mapping[str, Any], *, reader: str, ring: KeyRing) -> tuple[int, ConsortiumHashRecord | None]:
    """(hash id, record) for a feed event; None deletes: a retraction, or a hash none of whose
    statements verifies (nothing the reader could act on)."""
    hash_ = event["hash"]
    hash_id = int(hash_["id"])
    if event["type"] == "hash.retracted" or hash_.get("state") != "active":
        return hash_id, None
    signal_type = hash_["signal_type"]
    pytx_type = PYTX_SIGNAL_TYPES.get(signal_type)
    if pytx_type is None:
        logger.warning("hash %s: unknown signal type %.20r, skipped", hash_id, signal_type)
        return hash_id, None
    value = str(hash_["value"]).lower()
    signal = vpdq_compact(hash_["frames"]) if signal_type == "vpdq" else value

    submitters: dict[str, set[str]] = {}
    for token in hash_.get("statements", []):
        payload = ring.verified_payload(token)
        if payload is None or not statement_asserts(payload, signal_type, value):
            continue
        labels = payload.get("labels") if isinstance(payload.get("labels"), list) else []
        submitters.setdefault(payload["iss"], set()).update(str(label) for label in labels)
    if not submitters:
        logger.warning("hash %s: no statement verifies against keys/, not trusted", hash_id)
        return hash_id, None

    record = ConsortiumHashRecord(
        hash_id=hash_id,
        signal_type=signal_type,
        value=value,
        pytx_signal_type=pytx_type,
        signal=signal,
        content_type=hash_.get("content_type", ""),
        reader=reader,
        submitters=submitters,
        labels=list(hash_.get("labels", [])),
        cluster=hash_.get("cluster"),
        corroboration_count=int(hash_.get("corroboration_count", len(submitters))),
        feedback={verdict: int(n) for verdict, n in (hash_.get("feedback") or {}).items()},
        dispute=hash_.get("dispute"),
        seq=int(event["seq"]),
    )
    _note_own_verdict(record, event.get("cause"), ring)
    return hash_id, record


def _note_own_verdict(record: ConsortiumHashRecord, cause: Any, ring: KeyRing) -> None:
    """The reader's own feedback (or its withdrawal) when that is what caused the event. The feed
    shows only counts of verdicts, so this is the one place the reader's own verdict appears."""
    if not isinstance(cause, dict) or cause.get("member") != record.reader or "statement" not in cause:
        return
    payload = ring.verified_payload(cause["statement"])
    if payload is None:
        return
    if payload.get("kind") == "feedback" and payload.get("verdict") in ("agree", "disagree", "seen"):
        record.my_verdict, record.my_verdict_jti = payload["verdict"], payload.get("jti")
    elif payload.get("kind") == "retract":
        record.withdrawn_jti = payload.get("retracts")


def carry_own_verdict(old: ConsortiumHashRecord | None, new: ConsortiumHashRecord) -> ConsortiumHashRecord:
    """A later event about the hash keeps the reader's verdict it does not mention, unless it is
    the retraction of that verdict or no member holds that verdict any more."""
    if old is None or old.my_verdict is None or new.my_verdict is not None:
        return new
    if new.withdrawn_jti is not None and new.withdrawn_jti == old.my_verdict_jti:
        return new
    if new.feedback.get(old.my_verdict, 0) > 0:
        new.my_verdict, new.my_verdict_jti = old.my_verdict, old.my_verdict_jti
    return new
