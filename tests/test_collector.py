"""consortium/collector.py: what a worker loaded is kept out of the garbage collector's passes."""

import gc
import importlib
import importlib.util
import weakref
from pathlib import Path

import pytest

from consortium import collector
from hashes import matching

ROOT = Path(__file__).resolve().parents[1]
celery_app = importlib.import_module("consortium.celery_app")  # the module (the package exports its app)


@pytest.fixture
def restored_collector():
    threshold = gc.get_threshold()
    collector._asked.clear()
    yield
    collector._asked.clear()
    gc.unfreeze()
    gc.set_threshold(*threshold)


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_settle_collects_garbage_freezes_what_is_alive_and_collects_the_young_less_often(restored_collector):
    held = [[n] for n in range(1_000)]  # tracked objects (lists), alive now
    garbage = weakref.ref(Node())  # unreachable already, but in a cycle
    frozen = gc.get_freeze_count()
    collector.settle()
    assert garbage() is None  # collected, not frozen for the life of the process
    assert gc.get_freeze_count() >= frozen + len(held)
    tracked = {id(o) for o in gc.get_objects()}  # every generation but the frozen one
    assert not any(id(item) in tracked for item in held)
    assert gc.get_threshold()[0] == collector.YOUNG_THRESHOLD
    later = [0]
    assert id(later) in {id(o) for o in gc.get_objects()}  # what comes after is collected as usual


def test_the_index_warm_up_asks_for_a_settle_once_the_index_has_loaded(settings, monkeypatch, restored_collector):
    settings.INDEX_WARM_ON_START = True
    calls = []
    monkeypatch.setattr(matching.indexes, "fresh", lambda: calls.append("index loaded"))
    monkeypatch.setattr(collector, "settle", lambda: calls.append("settled"))
    monkeypatch.setattr(collector, "settle_later", lambda: calls.append("asked"))
    thread = matching.warm_in_background()
    thread.join(timeout=30)
    assert calls == ["index loaded", "asked"]  # the loading thread never freezes a request's objects


def test_a_settle_asked_for_happens_once_at_the_end_of_a_request_or_task(monkeypatch, restored_collector):
    settled = []
    monkeypatch.setattr(collector, "settle", lambda: settled.append(1))
    spec = importlib.util.spec_from_file_location("gunicorn_conf", ROOT / "gunicorn.conf.py")
    gunicorn_conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gunicorn_conf)
    ends = [lambda: gunicorn_conf.post_request(None, None, {}, None),
            lambda: celery_app.settle_once_the_index_has_loaded(task=None)]
    for end in ends:
        end()
        assert settled == []  # nobody asked
        collector.settle_later()
        end()
        end()
        assert settled == [1]
        settled.clear()


def test_no_warm_up_thread_when_warming_is_off(settings):
    settings.INDEX_WARM_ON_START = False
    assert matching.warm_in_background() is None
