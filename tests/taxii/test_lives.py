"""A hash's lives in a collection (each an indicator of its own) are recorded on its corroborations
when they are published (hashes.lives), so that a TAXII page reads the rows of the versions it
shows, not every corroboration its hashes ever had: one member re-asserting a hash cannot make
every reader's pages dearer. What was recorded is what the hash's history gives, and the indicators
are the same bytes whether read from it or worked out from the history (rows published before
migration 0014, until its backfill reaches them)."""

from __future__ import annotations

import importlib
from typing import Any

from django.apps import apps as django_apps
from django.db.models.query import FlatValuesListIterable, ModelIterable, ValuesIterable, ValuesListIterable

from hashes.models import Corroboration, Dispute, Event
from hashes.services.disputes import dispute_resolve, removal_lift
from taxii import stix
from tests.factories import md5

from .conftest import all_pages, collection_ids, get, objects_path


def count_rows_read(monkeypatch, model) -> dict[str, int]:
    """Rows of `model` any queryset hands to Python from here on."""
    read = {"n": 0}
    for iterable in (ModelIterable, ValuesIterable, ValuesListIterable, FlatValuesListIterable):
        def counting(self, iterate=iterable.__iter__):
            for row in iterate(self):
                if self.queryset.model is model:
                    read["n"] += 1
                yield row
        monkeypatch.setattr(iterable, "__iter__", counting)
    return read


def test_paging_through_a_reasserted_hash_reads_a_row_or_two_of_its_history_per_page(alice, bob, pipeline, monkeypatch):
    for n in range(40):  # one live corroboration, 40 rows
        alice.submit(alice.statement([md5(777)], labels=["glorification"] if n % 2 else []))
        pipeline()
    assert Corroboration.objects.filter(hash__value=md5(777)["value"]).count() == 40
    consortium = collection_ids(bob)["consortium"]
    read = count_rows_read(monkeypatch, Corroboration)
    path = objects_path(consortium)
    pages, cursor, most = 0, None, 0
    while True:
        before = read["n"]
        response = get(bob, path, limit="1", **{"match[version]": "all"}, **({"next": cursor} if cursor else {}))
        assert response.status_code == 200, response.content
        most, pages = max(most, read["n"] - before), pages + 1
        if not response.json()["more"]:
            break
        cursor = response.json()["next"]
    assert pages > 40
    assert most <= 2, f"a page of one version read {most} corroboration rows"
    # Asking for one of the hash's indicators reads a few rows (whether it exists, where its life
    # begins and where the next would, the version shown), not its history either.
    indicator = stix.indicator_id(consortium, Corroboration.objects.first().hash_id, 0)
    for ask in (f"{path}{indicator}/", f"{path}{indicator}/versions/", path):
        before = read["n"]
        assert get(bob, ask, limit="1", **({"match[id]": indicator} if ask == path else {})).status_code == 200
        assert read["n"] - before <= 4, ask


def lives_scenario(alice, bob, charlie, homeoffice, trusted_group, pipeline) -> None:
    """Lives that begin, go on and end every way there is, in the consortium and in a group."""
    homeoffice.submit(homeoffice.statement([md5(1), md5(2)], jti="h1"))
    alice.submit(alice.statement([md5(1)], jti="a1", share="trusted"))
    pipeline()
    charlie.submit(charlie.statement([md5(1)], jti="c1"))  # corroborates the consortium's life 0
    pipeline()
    homeoffice.submit(homeoffice.retraction("h1", jti="hr1"))
    pipeline()
    charlie.submit(charlie.retraction("c1", jti="cr1"))  # md5(1) ends for the consortium; md5(2) too
    pipeline()
    charlie.submit(charlie.statement([md5(1)], jti="c2"))  # life 1
    alice.submit(alice.retraction("a1", jti="ar1"))  # the group's life 0 ends
    pipeline()
    alice.submit(alice.statement([md5(1)], jti="a2", share="trusted"))  # the group's life 1
    pipeline()
    for n in range(3):  # re-assertions: the same life
        charlie.submit(charlie.statement([md5(1), md5(2)], jti=f"c3{n}"))  # md5(2)'s life 1
        pipeline()
    # A retraction and a new assertion of the same audience in one batch: their spans touch, one life.
    charlie.submit(charlie.retraction("c32", jti="cr32"))
    homeoffice.submit(homeoffice.statement([md5(1), md5(2)], jti="h2"))
    pipeline()
    # Removed after a dispute (the server retracts every statement), then shared again: a new life.
    bob.submit(bob.feedback(md5(2), "disagree", reasons=["newsworthy"]))
    pipeline()
    dispute = Dispute.objects.get(hash__value=md5(2)["value"])
    dispute_resolve(dispute_id=dispute.pk, outcome="removed", resolution="counter-speech")
    removal_lift(hash_id=dispute.hash_id, reason="shared again after review")  # a removal holds until lifted
    bob.submit(bob.statement([md5(2)], jti="b1"))
    pipeline()


def recorded() -> dict[tuple[int, str], tuple[Any, ...]]:
    return {(h, str(s)): (life, seq, began) for h, s, life, seq, began in Corroboration.objects.values_list(
        "hash_id", "statement_id", "life", "life_seq", "life_began")}


def from_history() -> dict[tuple[int, str], tuple[Any, ...]]:
    from hashes import lives  # here, so that the test of what a page reads runs before migration 0014 too

    found = lives.compute(Corroboration.objects, Event.objects, set(Corroboration.objects.values_list("hash_id", flat=True)))
    return {(hash_id, sid): life for (hash_id, _), group in found.items() for sid, life in group.items()}


def test_the_lives_recorded_when_publishing_are_those_the_history_gives(
        alice, bob, charlie, homeoffice, trusted_group, pipeline):
    lives_scenario(alice, bob, charlie, homeoffice, trusted_group, pipeline)
    stored = recorded()
    assert None not in {life for life, _, _ in stored.values()}
    assert stored == from_history()
    numbers = {life for life, _, _ in stored.values()}
    assert numbers == {0, 1, 2}  # md5(2): the consortium's life 0, then 1, then 2 after its removal
    # Every life began with an event its opener caused on the hash.
    for hash_id, _ in stored:
        for life, seq, began in {v for k, v in stored.items() if k[0] == hash_id}:
            assert Event.objects.get(seq=seq).occurred_at == began and Event.objects.get(seq=seq).hash_id == hash_id


def every_answer(actors_collections) -> list[bytes]:
    bodies = []
    for actor, collection in actors_collections:
        path = objects_path(collection)
        for params in ({"match[version]": "all"}, {}, {"match[version]": "all", "limit": "2"}):
            objects, pages = all_pages(actor, path, **params)
            bodies += [p.content for p in pages]
            for stix_id in dict.fromkeys(o["id"] for o in objects if o["type"] == "indicator"):
                bodies.append(get(actor, f"{path}{stix_id}/versions/").content)
                bodies.append(get(actor, f"{path}{stix_id}/", **{"match[version]": "all"}).content)
    return bodies


def test_rows_without_a_recorded_life_read_the_same_and_the_backfill_records_it(
        alice, bob, charlie, homeoffice, trusted_group, pipeline):
    lives_scenario(alice, bob, charlie, homeoffice, trusted_group, pipeline)
    readers = [(charlie, collection_ids(charlie)["consortium"]), (alice, collection_ids(alice)["trusted"])]
    stored = recorded()
    answers = every_answer(readers)
    assert sum(body.count(b'"revoked":true') for body in answers) > 5

    # As rows published before migration 0014 are until its backfill reaches them.
    Corroboration.objects.update(life=None, life_seq=None, life_began=None)
    assert every_answer(readers) == answers
    # Publishing meanwhile works the lives out from the history too.
    charlie.submit(charlie.statement([md5(1)], jti="c4"))
    alice.submit(alice.statement([md5(2)], jti="a3", share="trusted"))
    pipeline()
    new = {k: v for k, v in recorded().items() if v[0] is not None}
    assert len(new) == 2 and all(from_history()[k] == v for k, v in new.items())

    mixed = every_answer(readers)  # two rows with their lives, the others without

    migration = importlib.import_module("hashes.migrations.0014_corroboration_life")
    migration.backfill(django_apps, None)
    assert recorded() == from_history()
    assert {k: v for k, v in recorded().items() if k in stored} == stored
    assert every_answer(readers) == mixed
