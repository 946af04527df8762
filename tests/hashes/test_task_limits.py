"""Every task has a time limit, and a task stopped by it loses nothing: its transaction rolls back,
the database still holds the work, and the sweep queues it again."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from billiard.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from consortium import celery_app
from hashes import tasks
from hashes.models import Event, Statement
from hashes.services import publishing, verification
from tests.factories import md5

ROOT = Path(__file__).resolve().parents[2]


def test_tasks_run_under_soft_and_hard_time_limits(settings):
    assert celery_app.conf.task_soft_time_limit == settings.CELERY_TASK_SOFT_TIME_LIMIT == 300
    assert celery_app.conf.task_time_limit == settings.CELERY_TASK_TIME_LIMIT == 360


def stop_after(count: int, real):
    calls = []

    def stopping(*args, **kwargs):
        calls.append(1)
        if len(calls) > count:
            raise SoftTimeLimitExceeded()
        return real(*args, **kwargs)

    return stopping


def age_queue_marks() -> None:
    Statement.objects.update(queued_at=timezone.now() - timedelta(hours=1))


def test_a_verification_stopped_by_its_time_limit_is_done_again_by_the_sweep(alice, bob, monkeypatch):
    ids = [a["id"] for a in alice.submit(*[alice.statement([md5(n)]) for n in range(5)])["accepted"]]
    monkeypatch.setattr(verification, "verify_one", stop_after(2, verification.verify_one))

    with pytest.raises(SoftTimeLimitExceeded):
        tasks.verify_statements(ids)

    assert set(Statement.objects.values_list("state", flat=True)) == {"received"}  # nothing half-written
    monkeypatch.undo()
    age_queue_marks()
    tasks.sweep(stale_after_seconds=30)  # tasks run eagerly here: verification, then publishing

    assert set(Statement.objects.values_list("state", flat=True)) == {"published"}
    assert len(bob.feed()["events"]) == 5


def test_a_publication_stopped_by_its_time_limit_is_done_again_by_the_sweep(alice, bob, monkeypatch):
    alice.submit(*[alice.statement([md5(n)]) for n in range(5)])
    verification.statements_verify(ids=Statement.objects.values_list("id", flat=True))
    monkeypatch.setattr(publishing.Batch, "record", stop_after(2, publishing.Batch.record))

    with pytest.raises(SoftTimeLimitExceeded):
        tasks.publish_verified()

    assert set(Statement.objects.values_list("state", flat=True)) == {"verified"}
    assert Event.objects.count() == 0
    monkeypatch.undo()
    tasks.sweep(stale_after_seconds=30)

    assert set(Statement.objects.values_list("state", flat=True)) == {"published"}
    assert [e["seq"] for e in bob.feed()["events"]] == [1, 2, 3, 4, 5]


def test_limits_that_cannot_work_refuse_to_start(tmp_path):
    for overrides in ({"CELERY_TASK_SOFT_TIME_LIMIT": "400"},
                      {"CELERY_BROKER_URL": "redis://127.0.0.1:1/0", "CELERY_VISIBILITY_TIMEOUT": "300"}):
        environ = {**os.environ, "CONSORTIUM_VAR_DIR": str(tmp_path / "var"), **overrides}
        done = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=environ,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode != 0 and "CELERY_TASK_TIME_LIMIT" in done.stderr
