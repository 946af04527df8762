"""The pure STIX pieces: ids, times, patterns and the server's own objects."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import stix2

from taxii import stix


def test_an_indicator_id_names_its_collection_hash_and_life_and_reads_back():
    consortium, group = stix.collection_id(None), stix.collection_id(7)
    ids = {stix.indicator_id(c, h, life) for c in (consortium, group) for h in (1, 2, 2**48 - 1) for life in (0, 1, 2**26 - 1)}
    assert len(ids) == 18
    assert stix.indicator_id(consortium, 42, 0) == f"indicator--{consortium[:14]}8000-8000-00000000002a"
    for stix_id in ids:
        collection = consortium if stix_id.startswith(f"indicator--{consortium[:14]}") else group
        assert stix.indicator_id(collection, *stix.parse_indicator_id(collection, stix_id)) == stix_id
        other = group if collection == consortium else consortium
        assert stix.parse_indicator_id(other, stix_id) is None  # another collection's id names nothing here
        stix2.parse({**minimal_indicator(), "id": stix_id}, allow_custom=False)
    with pytest.raises(ValueError):
        stix.indicator_id(consortium, 2**48, 0)


@pytest.mark.parametrize("stix_id", [
    "indicator--nonsense", "identity--19c9d60a-1f5a-8000-8000-000000000001", "indicator--19C9D60A-1F5A-8000-8000-000000000001",
    "indicator--19c9d60a-1f5a-4000-8000-000000000001", "",
])
def test_anything_but_one_of_the_collections_indicator_ids_names_no_indicator(stix_id):
    assert stix.parse_indicator_id("19c9d60a-1f5a-52b6-8891-5c05711198b9", stix_id) is None


def test_date_added_is_the_events_time_plus_its_seq_in_microseconds():
    at = datetime(2026, 12, 1, 3, 4, 5, 999_999, tzinfo=timezone.utc)
    assert stix.date_added(at, 1) == at + timedelta(microseconds=1)
    assert [stix.timestamp(stix.date_added(at, seq)) for seq in (1, 2)] == [
        "2026-12-01T03:04:06.000000Z", "2026-12-01T03:04:06.000001Z"]


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-12-01T03:04:05Z", datetime(2026, 12, 1, 3, 4, 5, tzinfo=timezone.utc)),
    ("2026-12-01T03:04:05.123Z", datetime(2026, 12, 1, 3, 4, 5, 123000, tzinfo=timezone.utc)),
    ("2026-12-01T03:04:05.1234567891Z", datetime(2026, 12, 1, 3, 4, 5, 123456, tzinfo=timezone.utc)),
    ("2026-12-01T04:04:05.000001+01:00", datetime(2026, 12, 1, 3, 4, 5, 1, tzinfo=timezone.utc)),
    ("2026-12-01T03:04:05", None), ("2026-13-01T03:04:05Z", None), ("yesterday", None), ("", None),
])
def test_timestamps_are_read_as_rfc_3339_with_a_time_zone(text, expected):
    assert stix.parse_timestamp(text) == expected


def test_patterns_name_each_signal_as_stix_writes_file_hashes():
    assert stix.pattern("pdq", "ab" * 32) == f"[file:hashes.x_pdq = '{'ab' * 32}']"
    assert stix.pattern("vpdq", "cd" * 32) == f"[file:hashes.x_vpdq = '{'cd' * 32}']"
    assert stix.pattern("md5", "ef" * 16) == f"[file:hashes.MD5 = '{'ef' * 16}']"
    assert stix.pattern("sha256", "01" * 32) == f"[file:hashes.'SHA-256' = '{'01' * 32}']"


@pytest.mark.parametrize("tlp", sorted(stix.TLP_MARKINGS))
def test_the_servers_own_objects_are_valid_stix_without_custom_content(tlp):
    identity, marking, extension = (stix2.parse(o, allow_custom=False) for o in stix.server_objects(tlp))
    assert marking.id == stix.TLP_MARKINGS[tlp] and marking.name == f"TLP:{tlp.upper()}"
    assert extension.id == stix.EXTENSION_ID and extension.created_by_ref == identity.id
    assert extension.extension_types == ["property-extension"]


def minimal_indicator() -> dict:
    return {
        "type": "indicator", "spec_version": "2.1", "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        "created": "2026-12-01T00:00:00.000Z", "modified": "2026-12-01T00:00:00.000Z",
        "pattern": stix.pattern("md5", "ef" * 16), "pattern_type": "stix", "valid_from": "2026-12-01T00:00:00Z",
    }
