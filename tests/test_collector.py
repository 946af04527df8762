"""consortium/collector.py: what a worker loaded is kept out of the garbage collector's passes."""

import gc

import pytest

from consortium import collector
from hashes import matching


@pytest.fixture
def restored_collector():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_settle_freezes_what_is_alive_and_collects_the_young_less_often(restored_collector):
    held = [[n] for n in range(1_000)]  # tracked objects (lists), alive now
    frozen = gc.get_freeze_count()
    collector.settle()
    assert gc.get_freeze_count() >= frozen + len(held)
    tracked = {id(o) for o in gc.get_objects()}  # every generation but the frozen one
    assert not any(id(item) in tracked for item in held)
    assert gc.get_threshold()[0] == collector.YOUNG_THRESHOLD
    later = [0]
    assert id(later) in {id(o) for o in gc.get_objects()}  # what comes after is collected as usual


def test_the_index_warm_up_settles_once_the_index_has_loaded(settings, monkeypatch, restored_collector):
    settings.INDEX_WARM_ON_START = True
    calls = []
    monkeypatch.setattr(matching.indexes, "fresh", lambda: calls.append("index loaded"))
    monkeypatch.setattr(collector, "settle", lambda: calls.append("settled"))
    thread = matching.warm_in_background()
    thread.join(timeout=30)
    assert calls == ["index loaded", "settled"]


def test_no_warm_up_thread_when_warming_is_off(settings):
    settings.INDEX_WARM_ON_START = False
    assert matching.warm_in_background() is None
