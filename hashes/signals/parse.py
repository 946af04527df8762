"""Validate the `signals` of a hash statement into canonical values (pure, no Django)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from consortium.api.errors import DomainError
from consortium_client.statements import vpdq_digest

HEX_LENGTHS = {"pdq": 64, "md5": 32, "sha256": 64}
SIGNAL_TYPES = ("pdq", "vpdq", "md5", "sha256")
_HEX = re.compile(r"[0-9a-fA-F]+")


class SignalError(DomainError):
    """A signal or match query that is not well-formed; the API answers it as it is (400)."""


@dataclass(frozen=True)
class Signal:
    type: str
    value: str  # lower-case hex; for vPDQ the SHA-256 of its frames' PDQ hashes in frame order
    quality: int | None = None
    frames: tuple[dict[str, Any], ...] | None = None

    def as_json(self) -> dict[str, Any]:
        if self.type == "vpdq":
            return {"type": "vpdq", "frames": list(self.frames or ())}
        if self.type == "pdq":
            return {"type": "pdq", "value": self.value, "quality": self.quality}
        return {"type": self.type, "value": self.value}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _hex(value: Any, length: int, where: str) -> str:
    if not isinstance(value, str) or len(value) != length or not _HEX.fullmatch(value):
        raise SignalError("signal_value_invalid", f"{where} must be {length} hexadecimal characters.", {"at": where})
    return value.lower()


def _quality(value: Any, where: str) -> int:
    if not _is_int(value) or not 0 <= value <= 100:
        raise SignalError("quality_invalid", f"{where} must be an integer from 0 to 100.", {"at": where})
    return value


def parse_target(raw: Any) -> tuple[str, str]:
    """A feedback statement's `target`: `{"type", "value"}`, a vPDQ by its value digest."""
    if not isinstance(raw, dict) or set(raw) != {"type", "value"} or raw.get("type") not in SIGNAL_TYPES:
        raise SignalError("target_invalid", 'target is {"type": <signal type>, "value": <value>}.', {"at": "target"})
    try:
        return raw["type"], _hex(raw["value"], HEX_LENGTHS.get(raw["type"], 64), "target.value")
    except SignalError as exc:
        raise SignalError("target_invalid", exc.message, exc.details) from None


def _vpdq(raw: dict[str, Any], where: str, *, min_quality: int, max_frames: int) -> Signal:
    frames = raw.get("frames")
    if not isinstance(frames, list) or not frames:
        raise SignalError("vpdq_frames_invalid", f"{where}.frames must be a non-empty list.", {"at": where})
    if len(frames) > max_frames:
        raise SignalError("vpdq_frames_invalid", f"{where} has more than {max_frames} frames.", {"at": where})
    clean: list[dict[str, Any]] = []
    seen: set[int] = set()
    for n, frame in enumerate(frames):
        at = f"{where}.frames[{n}]"
        if not isinstance(frame, dict):
            raise SignalError("vpdq_frames_invalid", f"{at} must be an object.", {"at": at})
        index, seconds = frame.get("i"), frame.get("t")
        if not _is_int(index) or index < 0 or index in seen:
            raise SignalError("vpdq_frames_invalid", f"{at}.i must be a unique non-negative integer.", {"at": at})
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds < 1e9:
            raise SignalError("vpdq_frames_invalid", f"{at}.t must be non-negative seconds.", {"at": at})
        seen.add(index)
        clean.append({"i": index, "t": seconds, "pdq": _hex(frame.get("pdq"), 64, f"{at}.pdq"),
                      "q": _quality(frame.get("q"), f"{at}.q")})
    clean.sort(key=lambda f: f["i"])
    # Frames under the quality bar are kept (they are part of the video) but never match; a video
    # with no usable frame could never match anything.
    if not any(f["q"] >= min_quality for f in clean):
        raise SignalError("quality_too_low", f"{where} has no frame of quality {min_quality} or more.", {"at": where})
    return Signal("vpdq", vpdq_digest([f["pdq"] for f in clean]), frames=tuple(clean))


def signal_head(item: Any, n: int) -> tuple[str, str]:
    """Where the n-th signal is (for error details) and its type, once it is known to have one."""
    where = f"signals[{n}]"
    if not isinstance(item, dict):
        raise SignalError("signal_invalid", f"{where} must be an object.", {"at": where})
    kind = item.get("type")
    if kind not in SIGNAL_TYPES:
        raise SignalError("signal_type_unknown", f"{where}.type must be one of {', '.join(SIGNAL_TYPES)}.", {"at": where})
    return where, kind


def parse_signals(raw: Any, *, min_quality: int, max_signals: int, max_frames: int) -> list[Signal]:
    if not isinstance(raw, list) or not raw:
        raise SignalError("signals_missing", "A hash statement needs a non-empty list of signals.")
    if len(raw) > max_signals:
        raise SignalError("signals_too_many", f"A statement may carry at most {max_signals} signals.")
    signals: list[Signal] = []
    for n, item in enumerate(raw):
        where, kind = signal_head(item, n)
        if kind == "vpdq":
            signals.append(_vpdq(item, where, min_quality=min_quality, max_frames=max_frames))
            continue
        value = _hex(item.get("value"), HEX_LENGTHS[kind], f"{where}.value")
        if kind == "pdq":
            quality = _quality(item.get("quality"), f"{where}.quality")
            if quality < min_quality:
                raise SignalError("quality_too_low", f"{where}.quality is below the minimum of {min_quality}.", {"at": where})
            signals.append(Signal("pdq", value, quality=quality))
        else:
            signals.append(Signal(kind, value))
    return signals


@dataclass(frozen=True)
class MatchQuery:
    signal: Signal
    max_distance: int | None = None  # PDQ
    min_match_percent: float | None = None  # vPDQ

    def echo(self) -> dict[str, Any]:
        """The query as the answer repeats it (a video's frames are counted, not repeated)."""
        if self.signal.type == "vpdq":
            body: dict[str, Any] = {"type": "vpdq", "frame_count": len(self.signal.frames or ())}
        else:
            body = {"type": self.signal.type, "value": self.signal.value}
        if self.max_distance is not None:
            body["max_distance"] = self.max_distance
        if self.min_match_percent is not None:
            body["min_match_percent"] = self.min_match_percent
        return body


def parse_match_queries(raw: Any, *, max_queries: int, max_distance: int, max_frames: int) -> list[MatchQuery]:
    """Validate the `signals` of a match request: the statement shapes, quality optional, plus an
    optional `max_distance` (PDQ, capped) or `min_match_percent` (vPDQ) per query."""
    if not isinstance(raw, list) or not raw:
        raise SignalError("signals_missing", 'The body must be {"signals": [...]} with at least one signal.')
    if len(raw) > max_queries:
        raise SignalError("too_many_queries", f"Send at most {max_queries} signals per request.", {"max": max_queries})
    queries = []
    for n, item in enumerate(raw):
        where, kind = signal_head(item, n)
        if kind == "vpdq":
            # Frames under the quality bar are simply not matched; a query is not refused for them.
            signal = _vpdq(item, where, min_quality=0, max_frames=max_frames)
        else:
            signal = Signal(kind, _hex(item.get("value"), HEX_LENGTHS[kind], f"{where}.value"))
        distance = item.get("max_distance")
        if distance is not None and (kind != "pdq" or not _is_int(distance) or not 0 <= distance <= max_distance):
            raise SignalError("max_distance_invalid",
                              f"{where}.max_distance is for PDQ, a whole number from 0 to {max_distance}.", {"at": where})
        percent = item.get("min_match_percent")
        if percent is not None and (
            kind != "vpdq" or not isinstance(percent, (int, float)) or isinstance(percent, bool) or not 0 < percent <= 100
        ):
            raise SignalError("min_match_percent_invalid",
                              f"{where}.min_match_percent is for vPDQ, a number above 0 and at most 100.", {"at": where})
        queries.append(MatchQuery(signal, distance, float(percent) if percent is not None else None))
    return queries
