from __future__ import annotations

import pytest
from django.utils import timezone

# Imported before any test stands a clock in for timezone.now: its Context takes `now` from
# timezone.now as it is at import, and must not keep one test's clock for the next.
import hashes.services.verification  # noqa: F401
from members.models import SharingGroup
from tests.actors import make_actor

from .scenario import Clock, World


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """Time as the scenario says: every timestamp the pipeline and dispute_resolve write is its."""
    clock = Clock()
    monkeypatch.setattr(timezone, "now", clock)
    return clock


@pytest.fixture
def cast(db) -> dict:
    actors = {
        "alice": make_actor("alice"), "bob": make_actor("bob"), "charlie": make_actor("charlie"),
        "homeoffice": make_actor("homeoffice", kind="government"), "watchdog": make_actor("watchdog", kind="ngo"),
    }
    group = SharingGroup.objects.create(slug="trusted", name="Trusted")
    group.members.set([actors["alice"].member, actors["bob"].member])
    return actors


@pytest.fixture
def world(cast, clock, pipeline) -> World:
    return World(cast, clock, pipeline)
