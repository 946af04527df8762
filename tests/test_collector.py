"""consortium/collector.py: what a worker loaded is kept out of the garbage collector's passes."""

import gc
import importlib
import importlib.util
import weakref
from pathlib import Path

import pytest
from celery.signals import task_prerun, worker_process_init

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


def gunicorn_conf():
    spec = importlib.util.spec_from_file_location("gunicorn_conf", ROOT / "gunicorn.conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_settle_asked_for_happens_once_before_the_next_request_or_task(monkeypatch, restored_collector):
    """Before, not after: after a request its response (in reference cycles through DRF's renderer
    context) is still alive, and would be frozen for the life of the process."""
    settled = []
    monkeypatch.setattr(collector, "settle", lambda: settled.append(1))
    starts = [lambda: gunicorn_conf().pre_request(None, None),
              lambda: celery_app.settle_once_the_index_has_loaded(task=None)]
    assert celery_app.settle_once_the_index_has_loaded in [r() for _, r in task_prerun.receivers]
    assert not hasattr(gunicorn_conf(), "post_request")
    for start in starts:
        start()
        assert settled == []  # nobody asked
        collector.settle_later()
        start()
        start()
        assert settled == [1]
        settled.clear()


def test_a_worker_settles_what_it_loaded_before_the_index_starts_loading(monkeypatch, restored_collector):
    calls = []
    monkeypatch.setattr(collector, "settle", lambda: calls.append("settled"))
    monkeypatch.setattr(matching, "warm_in_background", lambda: calls.append("warm-up started"))
    gunicorn_conf().post_worker_init(None)
    assert calls == ["settled", "warm-up started"]
    calls.clear()
    for receiver in (r() for _, r in worker_process_init.receivers):
        if receiver in (celery_app.freeze_what_startup_loaded, celery_app.warm_match_indexes):
            receiver()
    assert calls == ["settled", "warm-up started"]  # in the order Celery calls them


def test_no_warm_up_thread_when_warming_is_off(settings):
    settings.INDEX_WARM_ON_START = False
    assert matching.warm_in_background() is None
