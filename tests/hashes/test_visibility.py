"""One visibility rule on every way out: alice and bob share in "trusted"; charlie is outside."""

from __future__ import annotations

import pytest

from hashes.models import Hash, Statement
from hashes.selectors import feed_page, hash_views
from hashes.visibility import Viewer, visible_hashes
from members.models import SharingGroup
from tests.factories import md5


def hash_id() -> int:
    """The consortium-wide hash (a group's statement that came first holds the value apart)."""
    return Hash.objects.get(share_group=None).pk


def test_a_group_statement_reaches_group_members_only(alice, bob, charlie, trusted_group, pipeline):
    alice.submit(alice.statement([md5(1)], share="trusted"))
    pipeline()

    assert [e["type"] for e in bob.feed()["events"]] == ["hash.added"]
    assert charlie.feed()["events"] == []
    group_hash = Hash.objects.get().pk
    assert bob.api.get(f"/api/v1/hashes/{group_hash}/").status_code == 200
    response = charlie.api.get(f"/api/v1/hashes/{group_hash}/")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_a_member_sees_of_a_hash_only_its_visible_statements(alice, bob, charlie, homeoffice, trusted_group, pipeline):
    alice.submit(alice.statement([md5(1)], share="trusted", labels=["recruitment"]))
    pipeline()
    homeoffice.submit(homeoffice.statement([md5(1)], labels=["glorification"]))
    pipeline()

    # To charlie the hash appears when the Home Office's consortium-wide statement arrives.
    charlie_events = charlie.feed()["events"]
    assert [e["type"] for e in charlie_events] == ["hash.added"]
    seen = charlie_events[0]["hash"]
    assert seen["submitters"] == [{"member": "homeoffice", "kind": "government"}]
    assert seen["labels"] == ["glorification"] and seen["corroboration_count"] == 1
    assert len(seen["statements"]) == 1
    detail = charlie.api.get(f"/api/v1/hashes/{hash_id()}/").json()
    assert [c["member"] for c in detail["corroborations"]] == ["homeoffice"]
    assert detail["labels"] == ["glorification"]

    # The group's hash came first, so the consortium's statement made a hash of its own (joining the
    # group's would show outsiders the group's older hash); the group sees both.
    group_hash, consortium_hash = (e["hash"] for e in bob.feed()["events"])
    assert (group_hash["submitters"], group_hash["labels"]) == ([{"member": "alice", "kind": "platform"}], ["recruitment"])
    assert consortium_hash == seen


def test_a_change_invisible_to_a_member_is_not_an_event_for_it(alice, bob, charlie, homeoffice, trusted_group, pipeline):
    homeoffice.submit(homeoffice.statement([md5(1)]))
    pipeline()
    alice.submit(alice.statement([md5(1)], share="trusted"))
    pipeline()

    assert [e["type"] for e in charlie.feed()["events"]] == ["hash.added"]
    assert [e["type"] for e in bob.feed()["events"]] == ["hash.added", "hash.updated"]


def test_a_group_statement_corroborates_its_own_groups_hash_before_the_consortiums(
    alice, bob, charlie, homeoffice, trusted_group, pipeline
):
    alice.submit(alice.statement([md5(1)], share="trusted"))
    pipeline()
    homeoffice.submit(homeoffice.statement([md5(1)]))
    pipeline()
    bob.submit(bob.statement([md5(1)], share="trusted"))
    pipeline()

    group_hash, consortium_hash = Hash.objects.get(share_group=trusted_group), Hash.objects.get(share_group=None)
    assert (group_hash.corroborations.count(), consortium_hash.corroborations.count()) == (2, 1)
    assert [e["type"] for e in charlie.feed()["events"]] == ["hash.added"]

def test_retracting_a_group_statement_retracts_the_hash_for_the_group_only(
    alice, bob, charlie, homeoffice, trusted_group, pipeline
):
    alice.submit(alice.statement([md5(1)], share="trusted", jti="g1"))
    homeoffice.submit(homeoffice.statement([md5(1)]))
    pipeline()
    alice.submit(alice.retraction("g1"))
    pipeline()

    assert [e["type"] for e in charlie.feed()["events"]] == ["hash.added"]
    group_hash = Hash.objects.get(share_group=trusted_group).pk
    assert [(e["type"], e["hash"]["id"] == group_hash) for e in bob.feed()["events"]] == [
        ("hash.added", True), ("hash.added", False), ("hash.retracted", True)]


def test_a_member_reads_only_its_own_statements(alice, bob, pipeline):
    body = alice.submit(alice.statement([md5(1)]))
    statement_id = body["accepted"][0]["id"]

    response = bob.api.get(f"/api/v1/statements/{statement_id}/")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert bob.api.get("/api/v1/statements/").json()["results"] == []
    assert [s["id"] for s in alice.api.get("/api/v1/statements/").json()["results"]] == [statement_id]


def test_the_statement_list_filters_by_state(alice, pipeline):
    alice.submit(alice.statement([md5(1)]), alice.statement([{"type": "md5", "value": "bad"}]))
    pipeline()

    rejected = alice.api.get("/api/v1/statements/?state=rejected").json()["results"]
    assert [s["rejection_code"] for s in rejected] == ["signal_value_invalid"]
    response = alice.api.get("/api/v1/statements/?state=lost")
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"


def test_a_member_that_left_a_group_stops_seeing_its_statements(alice, bob, trusted_group, pipeline):
    alice.submit(alice.statement([md5(1)], share="trusted"))
    pipeline()
    trusted_group.members.remove(bob.member)

    assert bob.feed()["events"] == []
    assert Statement.objects.get().share_group == trusted_group


def test_nothing_of_a_hidden_statement_shows_through_the_hash(alice, bob, charlie, homeoffice, trusted_group, pipeline):
    alice.submit(alice.statement([md5(1)], share="trusted", content_type="video"))
    pipeline()
    homeoffice.submit(homeoffice.statement([md5(1)], content_type="photo"))
    pipeline()
    bob.submit(bob.statement([md5(1)], share="trusted", content_type="file"))  # hidden from charlie
    pipeline()

    detail = charlie.api.get(f"/api/v1/hashes/{hash_id()}/").json()
    home = Statement.objects.get(member=homeoffice.member)
    corroboration = Hash.objects.get(pk=hash_id()).corroborations.get(statement=home)
    assert detail["content_type"] == "photo"
    assert detail["created_at"] == detail["updated_at"] == corroboration.created_at.isoformat()
    assert [c["member"] for c in detail["corroborations"]] == ["homeoffice"]
    assert "quality" not in detail
    events = charlie.feed()["events"]
    assert len(events) == 1 and events[0]["hash"]["content_type"] == "photo"
    assert "cause" in events[0] and events[0]["cause"]["member"] == "homeoffice"


def test_a_viewer_narrowed_to_an_audience_sees_only_what_was_shared_with_it(
        alice, bob, charlie, homeoffice, trusted_group, pipeline):
    homeoffice.submit(homeoffice.statement([md5(1)], labels=["glorification"]))
    alice.submit(alice.statement([md5(2)], share="trusted"), alice.statement([md5(3)]))
    pipeline()
    bob.submit(bob.statement([md5(1)], share="trusted", labels=["recruitment"]))  # corroborates the consortium's
    pipeline()

    def values(viewer: Viewer) -> list[tuple[str, str, list[str]]]:
        return [(e["type"], e["hash"]["value"], e["hash"]["labels"])
                for e in feed_page(viewer=viewer, after=0, limit=100)["events"]]

    consortium = [("hash.added", md5(1)["value"], ["glorification"]), ("hash.added", md5(3)["value"], [])]
    # The consortium's view is the same for every member, whatever groups it belongs to.
    for member in (alice, bob, charlie):
        assert values(Viewer.for_member(member.member).within(None)) == consortium
    # The group's view holds the group's statements only: its own hash, and what it said of the
    # consortium's (a corroboration of a hash it did not see before: added, for this view).
    trusted = [("hash.added", md5(2)["value"], []), ("hash.added", md5(1)["value"], ["recruitment"])]
    assert values(Viewer.for_member(alice.member).within(trusted_group.pk)) == trusted
    group_view = Viewer.for_member(bob.member).within(trusted_group.pk)
    assert values(group_view) == trusted
    consortium_hash = Hash.objects.get(share_group=None, value=md5(1)["value"])
    assert set(visible_hashes(group_view).values_list("value", flat=True)) == {md5(1)["value"], md5(2)["value"]}
    seen = hash_views(group_view, [consortium_hash])[consortium_hash.pk]
    assert seen["submitters"] == [{"member": "bob", "kind": "platform"}] and seen["corroboration_count"] == 1

    other = SharingGroup.objects.create(slug="other", name="Other")
    with pytest.raises(ValueError):
        Viewer.for_member(alice.member).within(other.pk)


def test_the_second_lock_keeps_a_narrowed_viewer_to_its_audience():
    """visible_facts checks each statement again against the viewer, narrowed one included, whatever
    its caller read: a statement of another audience is dropped, the viewer's own among them."""
    from hashes.selectors import StatementFacts, visible_facts

    def fact(statement_id: str, *, member_id: int, share_group_id: int | None) -> StatementFacts:
        return StatementFacts(id=statement_id, jti=statement_id, kind="hash", member_id=member_id, member_slug="m",
                              member_kind="platform", share_group_id=share_group_id, content_type="photo", raw="x",
                              labels=())

    viewer = Viewer(member_id=1, group_ids=frozenset({10}))
    read = {"everyone": fact("everyone", member_id=2, share_group_id=None),
            "group": fact("group", member_id=2, share_group_id=10),
            "own-in-group": fact("own-in-group", member_id=1, share_group_id=10),
            "own-elsewhere": fact("own-elsewhere", member_id=1, share_group_id=11),
            "other-group": fact("other-group", member_id=2, share_group_id=11)}

    assert [f.id for f in visible_facts(viewer, list(read), read)] == ["everyone", "group", "own-in-group", "own-elsewhere"]
    assert [f.id for f in visible_facts(viewer.within(None), list(read), read)] == ["everyone"]
    assert [f.id for f in visible_facts(viewer.within(10), list(read), read)] == ["group", "own-in-group"]


def test_an_api_request_sees_through_exactly_the_groups_the_member_is_in_now(alice, bob, charlie):
    """The groups read with a request's token (one query, members.services.token_find) are the
    member's own, as Viewer.for_member reads them, with none, one or two groups, and follow each
    change of membership from the next request. Token and member ids are kept apart, so that a
    read keyed on the wrong one cannot pass by chance."""
    from members.authentication import ApiTokenAuthentication
    from members.services import token_create

    for member in (alice.member, bob.member, alice.member):  # token ids run ahead of member ids
        token_create(member=member, scopes=["read"])
    plaintext = token_create(member=charlie.member, scopes=["read"]).plaintext
    first = SharingGroup.objects.create(slug="first", name="First")
    second = SharingGroup.objects.create(slug="second", name="Second")
    first.members.add(alice.member, bob.member)
    second.members.add(alice.member)

    def client_viewer() -> Viewer:
        client, token = ApiTokenAuthentication().authenticate_credentials(plaintext)
        assert token.pk != charlie.member.pk
        return Viewer.for_client(client)

    for groups in ([], [first], [first, second], [second], []):
        charlie.member.sharing_groups.set(groups)
        assert client_viewer() == Viewer.for_member(charlie.member)
        assert client_viewer().group_ids == {group.pk for group in groups}
