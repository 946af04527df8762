"""TAXII 2.1 through Django's test client: the media type on every answer, errors in TAXII's shape,
authentication, paging and its bounds, filters, versions."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from hashes.models import Event, Hash
from members.models import Member
from taxii import stix
from tests.factories import md5, pdq, sha256, vpdq

from .conftest import COLLECTIONS, DISCOVERY, all_pages, collection_ids, get, indicators, objects_path, ours, parsed

ERROR_KEYS = {"title", "description", "error_code", "http_status"}


def assert_taxii_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == stix.TAXII_MEDIA_TYPE
    body = response.json()
    assert ERROR_KEYS <= set(body) <= ERROR_KEYS | {"details"}
    assert (body["error_code"], body["http_status"]) == (code, str(status))
    return body


def consortium_objects(actor) -> str:
    return objects_path(collection_ids(actor)["consortium"])


def test_discovery_names_the_one_api_root_and_the_root_its_version(alice):
    discovery = get(alice, DISCOVERY).json()
    assert discovery["api_roots"] == [discovery["default"]] == ["http://testserver/taxii2/api/"]
    root = get(alice, "/taxii2/api/").json()
    assert root["versions"] == [stix.TAXII_MEDIA_TYPE] and root["max_content_length"] > 0 and root["title"]
    assert get(alice, "/taxii2").status_code == 200  # no redirect: every answer is TAXII's


def test_collections_are_the_consortiums_and_the_members_groups_only(alice, charlie, trusted_group):
    listed = get(alice, COLLECTIONS).json()["collections"]
    assert [(c["alias"], c["can_read"], c["can_write"], c["media_types"]) for c in listed] == [
        ("consortium", True, False, [stix.STIX_MEDIA_TYPE]), ("trusted", True, False, [stix.STIX_MEDIA_TYPE])]
    assert [c["alias"] for c in get(charlie, COLLECTIONS).json()["collections"]] == ["consortium"]
    for collection in listed:
        assert get(alice, f"{COLLECTIONS}{collection['id']}/").json() == collection
    # The consortium's collection has the same id for everyone.
    assert collection_ids(charlie)["consortium"] == listed[0]["id"]


@pytest.mark.parametrize("scheme", ["Token", "Bearer", "token", "Basic"])
def test_the_api_token_authenticates_as_token_bearer_or_basic_password(alice, scheme):
    credentials = alice.token if scheme != "Basic" else base64.b64encode(f"any-user:{alice.token}".encode()).decode()
    response = APIClient().get(COLLECTIONS, HTTP_AUTHORIZATION=f"{scheme} {credentials}")
    assert response.status_code == 200 and response["Content-Type"] == stix.TAXII_MEDIA_TYPE


@pytest.mark.parametrize(("authorization", "code"), [
    (None, "not_authenticated"),
    ("Token cst_nonsense", "invalid_token"),
    ("Bearer", "invalid_token"),
    ("Basic !!!", "invalid_token"),
    ("Basic " + base64.b64encode(b"no-colon").decode(), "invalid_token"),
    ("Basic " + base64.b64encode(b"user:").decode(), "invalid_token"),
    ("Basic " + base64.b64encode(b"user:cst_nonsense").decode(), "invalid_token"),
])
def test_missing_or_bad_credentials_are_401_with_a_basic_and_bearer_challenge(db, authorization, code):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    for path in (DISCOVERY, COLLECTIONS, f"{COLLECTIONS}{stix.collection_id(None)}/objects/"):
        response = APIClient().get(path, **headers)
        assert_taxii_error(response, 401, code)
        assert response["WWW-Authenticate"] == 'Basic realm="consortium", Bearer realm="consortium"'


def test_a_revoked_token_a_suspended_member_and_a_token_without_read_are_refused(alice, actor_factory):
    from members.services import token_revoke

    submit_only = actor_factory("submitter", scopes=("submit",))
    assert_taxii_error(submit_only.api.get(COLLECTIONS), 403, "insufficient_scope")
    Member.objects.filter(pk=alice.member.pk).update(status=Member.Status.SUSPENDED)
    assert_taxii_error(alice.api.get(COLLECTIONS), 403, "member_suspended")
    token_revoke(token=alice.member.tokens.get())
    assert_taxii_error(alice.api.get(COLLECTIONS), 401, "token_revoked")


def test_taxii_reads_are_throttled_as_reads_in_taxiis_shape(alice, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "read": (2, 60)}
    assert alice.api.get(COLLECTIONS).status_code == 200
    assert alice.api.get("/api/v1/me/").status_code == 200  # the same count as the rest of the API's reads
    response = alice.api.get(COLLECTIONS)
    body = assert_taxii_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0 and body["details"]["retry_after_seconds"] > 0


def test_every_error_is_taxiis_media_type_and_shape(alice, trusted_group):
    objects = consortium_objects(alice)
    assert_taxii_error(get(alice, "/taxii2/no/such/thing/"), 404, "not_found")
    assert_taxii_error(APIClient(enforce_csrf_checks=True).post("/taxii2/api/status/1/"), 404, "not_found")
    assert_taxii_error(get(alice, f"{COLLECTIONS}nope/"), 404, "not_found")
    assert_taxii_error(get(alice, f"{objects}indicator--{stix.collection_id(None)}/"), 404, "not_found")
    assert_taxii_error(alice.api.post(objects, {}, format="json"), 405, "method_not_allowed")
    assert_taxii_error(alice.api.delete(f"{objects}x/"), 405, "method_not_allowed")
    assert_taxii_error(alice.api.get(objects, HTTP_ACCEPT="application/json"), 406, "not_acceptable")
    assert_taxii_error(alice.api.get(objects, HTTP_ACCEPT="application/taxii+json;version=2.0"), 406, "not_acceptable")
    for params, code in [({"limit": "0"}, "limit_invalid"), ({"limit": "ten"}, "limit_invalid"),
                         ({"next": "x"}, "next_invalid"), ({"next": "-99"}, "next_invalid"),
                         ({"added_after": "yesterday"}, "added_after_invalid"),
                         ({"added_after": "2026-01-01T00:00:00"}, "added_after_invalid"),
                         ({"match[version]": "newest"}, "match_version_invalid"),
                         ({"match[id]": ",".join(["x"] * 1001)}, "too_many_values")]:
        body = assert_taxii_error(get(alice, objects, **params), 400, code)
        assert body["details"]["parameter"] in params
    for accept in ("*/*", "application/*", "application/taxii+json", "text/html, */*;q=0.8"):
        assert alice.api.get(objects, HTTP_ACCEPT=accept)["Content-Type"] == stix.TAXII_MEDIA_TYPE


def test_a_request_django_refuses_before_any_view_is_a_taxii_error(alice, settings):
    response = alice.api.get(COLLECTIONS, HTTP_HOST="evil.example")
    assert_taxii_error(response, 400, "bad_host")


def test_every_object_parses_as_stix_and_names_its_extension_and_marking(alice, bob, homeoffice, pipeline):
    alice.submit(alice.statement([md5(1), sha256(1), pdq(7)], labels=["glorification"], incident=None),
                 alice.statement([vpdq(1, 2, 3)], content_type="video", labels=["graphic-violence"]))
    pipeline()
    homeoffice.submit(homeoffice.statement([md5(1)]))
    bob.submit(bob.feedback(md5(1), "disagree", reasons=["newsworthy"]))
    pipeline()

    objects, _ = all_pages(alice, consortium_objects(alice), **{"match[version]": "all"})
    parsed(objects)
    served = {obj["type"]: obj for obj in objects if obj["type"] != "indicator"}
    assert set(served) == {"identity", "marking-definition", "extension-definition"}
    assert served["marking-definition"]["id"] == stix.TLP_MARKINGS["amber"]
    found = indicators(objects)
    assert {o["pattern"] for o in found} == {stix.pattern("md5", md5(1)["value"]), stix.pattern("sha256", sha256(1)["value"]),
                                             stix.pattern("pdq", pdq(7)["value"]),
                                             stix.pattern("vpdq", Hash.objects.get(signal_type="vpdq").value)}
    for obj in found:
        assert obj["object_marking_refs"] == [served["marking-definition"]["id"]]
        assert obj["created_by_ref"] == served["identity"]["id"]
        assert list(obj["extensions"]) == [served["extension-definition"]["id"]]
    latest = [o for o in found if o["pattern"] == stix.pattern("md5", md5(1)["value"])][-1]
    data = ours(latest)
    assert data["submitters"] == [{"member": "alice", "kind": "platform"}, {"member": "homeoffice", "kind": "government"}]
    assert data["corroboration_count"] == 2 and len(data["statements"]) == 2
    assert data["feedback"] == {"agree": 0, "disagree": 1, "seen": 0} and data["dispute"]["state"] == "open"
    assert latest["labels"] == ["glorification"] and data["signal_type"] == "md5" and data["cluster"]
    video = next(o for o in found if ours(o)["signal_type"] == "vpdq")
    assert [f["pdq"] for f in ours(video)["frames"]] == [f["pdq"] for f in vpdq(1, 2, 3)["frames"]]


def test_pages_follow_next_and_date_added_increases_strictly_even_within_one_batch(alice, pipeline):
    alice.submit(*(alice.statement([md5(n)]) for n in range(1, 8)))
    pipeline()
    assert len({e.occurred_at for e in Event.objects.all()}) == 1  # one batch, one time

    manifest, pages = all_pages(alice, objects_path(collection_ids(alice)["consortium"]).replace("objects", "manifest"),
                                limit=3)
    assert [len(page.json()["objects"]) for page in pages] == [3, 3, 3, 1]  # 3 server objects, 7 indicators
    added = [entry["date_added"] for entry in manifest]
    assert added[3:] == sorted(added[3:]) and len(set(added[3:])) == 7
    assert all(entry["media_type"] == stix.STIX_MEDIA_TYPE for entry in manifest)
    for page in pages:
        entries = page.json()["objects"]
        assert page["X-TAXII-Date-Added-First"] == entries[0]["date_added"]
        assert page["X-TAXII-Date-Added-Last"] == entries[-1]["date_added"]
    for event, entry in zip(Event.objects.order_by("seq"), manifest[3:]):
        assert entry["date_added"] == stix.timestamp(event.occurred_at + timedelta(microseconds=event.seq))


def test_added_after_returns_exactly_what_was_added_after_the_given_time(alice, pipeline):
    alice.submit(*(alice.statement([md5(n)]) for n in range(1, 6)))
    pipeline()
    path = objects_path(collection_ids(alice)["consortium"])
    manifest, _ = all_pages(alice, path.replace("objects", "manifest"))
    third = stix.parse_timestamp(manifest[5]["date_added"])

    after, _ = all_pages(alice, path, added_after=stix.timestamp(third))
    assert [o["pattern"] for o in after] == [stix.pattern("md5", md5(n)["value"]) for n in (4, 5)]
    just_before, _ = all_pages(alice, path, added_after=stix.timestamp(third - timedelta(microseconds=1)))
    assert len(just_before) == 3
    everything, _ = all_pages(alice, path, added_after="2000-01-01T00:00:00Z")
    assert len(everything) == 8  # the server's own objects come first, added before any event
    nothing = get(alice, path, added_after=manifest[-1]["date_added"])
    assert nothing.json() == {"more": False} and "X-TAXII-Date-Added-First" not in nothing


def test_a_page_stops_at_the_byte_bound_holding_at_least_one_object_and_skips_none(alice, pipeline, settings):
    alice.submit(*(alice.statement([md5(n)], note="x" * 1500) for n in range(1, 6)))
    pipeline()
    settings.TAXII_MAX_BYTES = 1
    objects, pages = all_pages(alice, consortium_objects(alice), limit=100)
    assert [len(p.json()["objects"]) for p in pages] == [1] * 8
    assert len(indicators(objects)) == 5


def test_the_limit_is_capped(alice, pipeline, settings):
    alice.submit(*(alice.statement([md5(n)]) for n in range(1, 6)))
    pipeline()
    settings.TAXII_MAX_LIMIT = 4
    page = get(alice, consortium_objects(alice), limit=1000).json()
    assert len(page["objects"]) == 4 and page["more"] and page["next"]


def test_a_page_examines_a_bounded_number_of_events_and_resumes_past_the_hidden_ones(
        alice, bob, charlie, trusted_group, pipeline, settings, monkeypatch):
    monkeypatch.setattr("taxii.selectors.FEED_SCAN_FACTOR", 2)
    alice.submit(*(alice.statement([md5(n)], share="trusted") for n in range(1, 9)))
    alice.submit(alice.statement([md5(100)]))
    pipeline()

    path = objects_path(collection_ids(charlie)["consortium"])
    objects, pages = all_pages(charlie, path, limit=2)
    assert [o["pattern"] for o in indicators(objects)] == [stix.pattern("md5", md5(100)["value"])]
    # 3 server objects, then 8 hidden events at 4 a request (the first 4 with the last server
    # object), then the visible one.
    assert [len(p.json().get("objects", [])) for p in pages] == [2, 1, 0, 1]


def test_match_filters_select_by_type_id_and_version(alice, bob, pipeline):
    alice.submit(alice.statement([md5(1)], jti="one"), alice.statement([md5(2)]))
    pipeline()
    bob.submit(bob.statement([md5(1)]))
    pipeline()
    path = consortium_objects(alice)
    every, _ = all_pages(alice, path, **{"match[version]": "all"})
    versions = [o for o in indicators(every) if o["pattern"] == stix.pattern("md5", md5(1)["value"])]
    assert len(versions) == 2 and versions[0]["id"] == versions[1]["id"]
    one = versions[0]["id"]

    def ids_and_versions(**params):
        return [(o["id"], o.get("modified", o.get("created"))) for o in all_pages(alice, path, **params)[0]]

    assert ids_and_versions(**{"match[id]": one}) == [(one, versions[1]["modified"])]
    assert ids_and_versions(**{"match[id]": one, "match[version]": "first"}) == [(one, versions[0]["modified"])]
    assert ids_and_versions(**{"match[id]": one, "match[version]": "first,last"}) == [
        (one, versions[0]["modified"]), (one, versions[1]["modified"])]
    assert ids_and_versions(**{"match[id]": one, "match[version]": versions[0]["modified"]}) == [
        (one, versions[0]["modified"])]
    assert [t for t, _ in ids_and_versions(**{"match[type]": "marking-definition,identity"})] == [
        stix.IDENTITY_ID, stix.TLP_MARKINGS["amber"]]
    assert len(ids_and_versions(**{"match[type]": "indicator"})) == 2
    assert ids_and_versions(**{"match[spec_version]": "2.0"}) == []
    # The same hash's id in another collection matches nothing here.
    hash_id, life = stix.parse_indicator_id(collection_ids(alice)["consortium"], one)
    assert ids_and_versions(**{"match[id]": stix.indicator_id(stix.collection_id(99), hash_id, life)}) == []


def test_the_default_lists_each_indicator_once_at_its_latest_version(alice, bob, homeoffice, pipeline):
    alice.submit(alice.statement([md5(1)]), alice.statement([md5(2)]))
    pipeline()
    bob.submit(bob.statement([md5(1)]))
    pipeline()
    homeoffice.submit(homeoffice.statement([md5(1)]))
    pipeline()

    for limit in (1, 2, 100):
        found = indicators(all_pages(alice, consortium_objects(alice), limit=limit)[0])
        assert [(ours(o)["value"], ours(o)["corroboration_count"]) for o in found] == [
            (md5(2)["value"], 1), (md5(1)["value"], 3)]


def test_an_object_its_versions_and_a_retraction_as_a_revoked_version(alice, bob, pipeline):
    alice.submit(alice.statement([md5(1)], jti="first"))
    pipeline()
    bob.submit(bob.statement([md5(1)], jti="second"))
    pipeline()
    alice.submit(alice.retraction("first"))
    bob.submit(bob.retraction("second"))
    pipeline()

    path = consortium_objects(alice)
    latest = indicators(all_pages(alice, path)[0])
    assert len(latest) == 1 and latest[0]["revoked"] is True
    one = latest[0]["id"]
    versions, pages = all_pages(alice, f"{path}{one}/versions/", key="versions")
    assert len(versions) == 4 and versions == sorted(versions) and pages[0]["X-TAXII-Date-Added-Last"] == versions[-1]
    every = get(alice, f"{path}{one}/", **{"match[version]": "all"}).json()["objects"]
    assert [o["modified"] for o in every] == versions
    assert [o.get("revoked", False) for o in every] == [False, False, False, True]
    assert [ours(o)["corroboration_count"] for o in every[:3]] == [1, 2, 1]
    assert {o["created"] for o in every} == {every[0]["modified"]}
    assert get(alice, f"{path}{one}/").json()["objects"] == [every[-1]]
    parsed(every)

    # Shared again, the value is a new indicator: a revocation is final.
    bob.submit(bob.statement([md5(1)], jti="third"))
    pipeline()
    again = indicators(all_pages(alice, path)[0])
    assert [o.get("revoked", False) for o in again] == [True, False] and again[1]["id"] != one
    assert stix.parse_indicator_id(collection_ids(alice)["consortium"], again[1]["id"])[1] == 1
    assert len(all_pages(alice, f"{path}{one}/versions/", key="versions")[0]) == 4
    assert len(all_pages(alice, f"{path}{again[1]['id']}/versions/", key="versions")[0]) == 1


def test_an_unknown_or_invisible_object_is_not_found(alice, charlie, trusted_group, pipeline):
    alice.submit(alice.statement([md5(1)], share="trusted"))
    pipeline()
    group_hash = Hash.objects.get().pk
    consortium = collection_ids(charlie)["consortium"]
    for stix_id in (stix.indicator_id(consortium, group_hash, 0), stix.indicator_id(consortium, 10**6, 0), "nonsense"):
        for suffix in ("", "versions/"):
            body = assert_taxii_error(get(charlie, f"{objects_path(consortium)}{stix_id}/{suffix}"), 404, "not_found")
            assert body["description"] == "No object with this id is in this collection."


def test_indicators_carry_the_configured_tlp_marking_which_the_collection_serves(alice, pipeline, settings):
    settings.TAXII_TLP = "green"
    alice.submit(alice.statement([md5(1)]))
    pipeline()
    objects, _ = all_pages(alice, consortium_objects(alice))
    parsed(objects)
    markings = [o for o in objects if o["type"] == "marking-definition"]
    assert [(m["id"], m["name"]) for m in markings] == [(stix.TLP_MARKINGS["green"], "TLP:GREEN")]
    assert indicators(objects)[0]["object_marking_refs"] == [stix.TLP_MARKINGS["green"]]
