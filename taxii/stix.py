"""STIX 2.1 objects for the TAXII collections: pure code, no Django, plain values in and out.

A hash is an indicator. Each change of the hash that a collection's reader sees (a feed event, as
`hashes.selectors.render_event` renders it for that reader) is a new version of the indicator,
whose `modified` is the event's `date_added`: the event's `occurred_at` plus its `seq` in
microseconds. Feed times never go back along `seq` (hashes.services.feed), so `date_added` strictly
increases along the feed, even between events of one publishing batch, which share `occurred_at`.

A hash whose visible statements all go is revoked (`revoked: true`, its last version). STIX makes
revocation final, so should the hash come back (someone shares the value again), it comes back as
a new indicator: each run of the hash's life in a collection, a "life", has an id of its own.
Indicator ids are deterministic and name their collection, hash and life (`indicator_id`), so the
server finds an indicator from its id without keeping a table of them."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1"
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"
SPEC_VERSION = "2.1"

# Every id this server makes is derived from this namespace.
NAMESPACE = uuid.UUID("613ebb65-00b2-4a98-9da9-0d5220ae3cbd")

IDENTITY_ID = f"identity--{uuid.uuid5(NAMESPACE, 'identity:consortium')}"
EXTENSION_ID = f"extension-definition--{uuid.uuid5(NAMESPACE, 'extension:hash:1')}"
# When the server's own objects (its identity, the extension's definition) were first published.
STATIC_CREATED = datetime(2026, 12, 1, tzinfo=timezone.utc)

# TLP 2.0 marking definitions as OASIS publishes them (cti-stix-common-objects,
# extension-definition-specifications/tlp-2.0): fixed ids, defined by OASIS's extension.
TLP_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP_CREATED = "2022-10-01T00:00:00.000Z"
TLP_MARKINGS = {
    "clear": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "green": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "amber": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "amber+strict": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "red": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}

# How a signal is written in a STIX pattern: file:hashes.<key>. PDQ and vPDQ are not among STIX's
# hashing algorithms, so they take custom (x_) keys; a vPDQ is named by its value digest.
PATTERN_KEYS = {"pdq": "x_pdq", "vpdq": "x_vpdq", "md5": "MD5", "sha256": "'SHA-256'"}
SIGNAL_NAMES = {"pdq": "PDQ", "vpdq": "vPDQ", "md5": "MD5", "sha256": "SHA-256"}

# The indicator id's layout (a version 8 UUID, RFC 9562): 48 bits of the collection's id, then the
# life (26 bits) and the hash id (48 bits) in the 74 bits left beside the version and variant, so
# that the id ends with the hash id in hex: indicator--<collection>-8000-8000-00000000002a is hash 42.
LIFE_BITS = 26
HASH_BITS = 48


# --- Time ---------------------------------------------------------------------------------------

def date_added(occurred_at: datetime, seq: int) -> datetime:
    """When a feed event's version was added to a collection: `occurred_at` + `seq` microseconds."""
    return occurred_at + timedelta(microseconds=seq)


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, as STIX and TAXII write timestamps."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


def parse_timestamp(text: str) -> datetime | None:
    """An RFC 3339 timestamp with a time zone (any precision; beyond microseconds it is cut), or None."""
    found = TIMESTAMP.match(text.strip())
    if not found:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_hours, off_minutes = found.groups()
    try:
        zone = timezone.utc if zulu else timezone(
            (1 if sign == "+" else -1) * timedelta(hours=int(off_hours), minutes=int(off_minutes)))
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=zone)
    except ValueError:
        return None


# --- Ids ----------------------------------------------------------------------------------------

def collection_id(share_group_id: int | None) -> str:
    """The consortium's collection, or a sharing group's."""
    name = "collection:consortium" if share_group_id is None else f"collection:group:{share_group_id}"
    return str(uuid.uuid5(NAMESPACE, name))


def indicator_id(collection: str, hash_id: int, life: int) -> str:
    if not (0 <= hash_id < 1 << HASH_BITS and 0 <= life < 1 << LIFE_BITS):
        raise ValueError("hash id or life out of the id's range")
    tag = uuid.UUID(collection).int >> 80
    payload = life << HASH_BITS | hash_id
    value = tag << 80 | 0x8 << 76 | (payload >> 62) << 64 | 0b10 << 62 | payload & ((1 << 62) - 1)
    return f"indicator--{uuid.UUID(int=value)}"


def parse_indicator_id(collection: str, stix_id: str) -> tuple[int, int] | None:
    """(hash id, life) of an indicator id of this collection; None for any other id."""
    prefix = "indicator--"
    if not stix_id.startswith(prefix):
        return None
    try:
        value = uuid.UUID(stix_id[len(prefix):]).int
    except ValueError:
        return None
    if value >> 80 != uuid.UUID(collection).int >> 80 or (value >> 76) & 0xF != 0x8 or (value >> 62) & 0b11 != 0b10:
        return None
    if stix_id != stix_id.lower():
        return None
    payload = ((value >> 64) & 0xFFF) << 62 | value & ((1 << 62) - 1)
    return payload & ((1 << HASH_BITS) - 1), payload >> HASH_BITS


# --- The server's own objects --------------------------------------------------------------------

EXTENSION_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "consortium hash",
    "description": (
        "A shared hash as the collection's reader sees it: only what the statements shared with the "
        "collection's audience say. Properties without a value (null, or an empty list) are left out."
    ),
    "type": "object",
    "required": ["extension_type", "hash_id", "signal_type", "value", "state", "seq", "event_id", "event_type"],
    "properties": {
        "extension_type": {"const": "property-extension"},
        "hash_id": {"type": "integer", "description": "The hash's id in the consortium API (GET /api/v1/hashes/{id}/)."},
        "signal_type": {"enum": ["pdq", "vpdq", "md5", "sha256"]},
        "value": {"type": "string", "description": "Lower-case hex; for vPDQ the SHA-256 of its frames' PDQs joined by newlines."},
        "frames": {"type": "array", "description": "vPDQ: the frames as submitted.",
                   "items": {"type": "object", "properties": {"i": {"type": "integer"}, "t": {"type": "number"},
                                                              "pdq": {"type": "string"}, "q": {"type": "integer"}}}},
        "content_type": {"enum": ["photo", "video", "file"]},
        "cluster": {"type": "integer", "description": "Its variant family."},
        "previous_cluster": {"type": "integer", "description": "The family it left, when this version moved it."},
        "links": {"type": "array", "description": "Why it joined its family: {hash, distance} or {hash, query_match_percent, stored_match_percent}."},
        "state": {"enum": ["active", "retracted"]},
        "submitters": {"type": "array", "items": {"type": "object", "properties": {"member": {"type": "string"}, "kind": {"type": "string"}}}},
        "corroboration_count": {"type": "integer", "description": "Members asserting it."},
        "statements": {"type": "array", "items": {"type": "string"},
                       "description": "The signed statements (JWS), one per member; verify them against GET /api/v1/keys/."},
        "statements_omitted": {"type": "integer", "description": "Live statements not carried; GET /api/v1/hashes/{id}/statements/ lists them."},
        "feedback": {"type": "object", "description": "Distinct members per verdict: agree, disagree, seen."},
        "dispute": {"type": "object", "description": "The dispute seen on it: id, state, opened_at, resolved_at, reasons, resolution."},
        "seq": {"type": "integer", "description": "The feed event this version is."},
        "event_id": {"type": "string"},
        "event_type": {"enum": ["hash.added", "hash.updated", "hash.retracted"]},
        "occurred_at": {"type": "string"},
        "cause": {"type": "object", "description": "The statement that caused the event: member, kind, jti and, when not among statements, its JWS (statement)."},
    },
}


def identity() -> dict[str, Any]:
    created = timestamp(STATIC_CREATED)
    return {
        "type": "identity", "spec_version": SPEC_VERSION, "id": IDENTITY_ID, "created": created, "modified": created,
        "name": "consortium", "identity_class": "organization",
        "description": "The consortium's hash-sharing server, which publishes its members' signed statements.",
    }


def extension_definition() -> dict[str, Any]:
    created = timestamp(STATIC_CREATED)
    return {
        "type": "extension-definition", "spec_version": SPEC_VERSION, "id": EXTENSION_ID,
        "created_by_ref": IDENTITY_ID, "created": created, "modified": created,
        "name": "consortium hash",
        "description": "What the consortium knows of a shared hash: signal, family, corroboration, submitters, "
                       "signed statements, feedback and dispute.",
        "schema": json.dumps(EXTENSION_SCHEMA, separators=(",", ":"), sort_keys=True),
        "version": "1.0.0", "extension_types": ["property-extension"],
    }


def tlp_marking(level: str) -> dict[str, Any]:
    return {
        "type": "marking-definition", "spec_version": SPEC_VERSION, "id": TLP_MARKINGS[level], "created": TLP_CREATED,
        "name": f"TLP:{level.upper()}",
        "extensions": {TLP_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": level}},
    }


def server_objects(tlp: str) -> list[dict[str, Any]]:
    """What every collection holds before its indicators, in the order they are listed."""
    return [identity(), tlp_marking(tlp), extension_definition()]


def object_version(obj: dict[str, Any]) -> str:
    """What TAXII calls an object's version: `modified`, or `created` for objects without one."""
    return obj.get("modified") or obj["created"]


# --- Indicators ---------------------------------------------------------------------------------

def pattern(signal_type: str, value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"[file:hashes.{PATTERN_KEYS[signal_type]} = '{escaped}']"


def without_empty(value: Any) -> Any:
    """STIX leaves out properties without a value: no nulls, no empty lists (in objects, at any depth)."""
    if isinstance(value, dict):
        return {k: without_empty(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list):
        return [without_empty(v) for v in value]
    return value


def indicator(*, stix_id: str, created: datetime, modified: datetime, event: dict[str, Any], tlp: str) -> dict[str, Any]:
    """One version of an indicator from a feed event as the reader sees it (hashes.selectors.render_event)."""
    hash_ = event["hash"]
    own = {key: value for key, value in hash_.items() if key not in ("id", "labels")}
    extension = {
        "extension_type": "property-extension", "hash_id": hash_["id"], **own,
        "seq": event["seq"], "event_id": event["id"], "event_type": event["type"],
        "occurred_at": event["occurred_at"], "cause": event.get("cause"),
    }
    created = min(created, modified)
    body: dict[str, Any] = {
        "type": "indicator", "spec_version": SPEC_VERSION, "id": stix_id, "created_by_ref": IDENTITY_ID,
        "created": timestamp(created), "modified": timestamp(modified),
        "name": f"{SIGNAL_NAMES[hash_['signal_type']]} {hash_['value']}",
        "pattern": pattern(hash_["signal_type"], hash_["value"]), "pattern_type": "stix", "pattern_version": SPEC_VERSION,
        "valid_from": timestamp(created),
        "labels": list(hash_["labels"]),
        "object_marking_refs": [TLP_MARKINGS[tlp]],
        "extensions": {EXTENSION_ID: without_empty(extension)},
    }
    if hash_["state"] == "retracted":
        body["revoked"] = True
    return without_empty(body)
