"""Undo what a scenario published, so that a differential test's second run starts where its first
did (tests/hashes/test_non_interference.py, tests/transparency/test_non_interference.py)."""

from __future__ import annotations

from django.core.cache import cache

from distribution import rendering
from hashes.matching import indexes
from hashes.models import Cluster, Corroboration, Dispute, Event, Feedback, Hash, HashLink, Statement


def reset_published() -> None:
    Event.objects.all().delete()
    Dispute.objects.all().delete()
    Feedback.objects.all().delete()
    HashLink.objects.all().delete()
    Corroboration.objects.all().delete()
    Hash.objects.all().delete()
    Cluster.objects.all().delete()
    Statement.objects.exclude(retracts=None).delete()
    Statement.objects.all().delete()
    indexes.reset()
    rendering.clear_caches()
    cache.clear()
