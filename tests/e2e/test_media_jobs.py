"""Media jobs with real processes: gunicorn takes the upload, the `media` worker of deploy/Procfile
hashes it, and a media worker SIGKILLed mid-job loses nothing: beat's sweep gives the job to the
next worker (or fails it once MEDIA_JOB_MAX_ATTEMPTS workers died on it), and the answer is what the
member CLI computes from the same file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import transaction

from consortium_client.http import ConsortiumClient
from media.models import MediaJob
from tests.client.conftest import cli_env
from tests.media.videos import cached_video
from tests.signals.vectors import requires_video

from .stack import wait_until

pytestmark = [pytest.mark.e2e, requires_video]


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """Long enough that the worker is still hashing when it is caught (about 1,800 frames)."""
    return cached_video(tmp_path_factory.mktemp("videos"), seconds=60, width=480, height=270)


def cli_hash(path: Path, home: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "consortium_client.cli", "hash", str(path)], env=cli_env(home),
                          capture_output=True, timeout=300, check=True)
    return json.loads(done.stdout)


def caught_running(job_id: str) -> bool:
    """Hold the job's row once it is running: the worker can write no heartbeat and no answer until
    the lock is released, so it is certainly killed mid-job."""
    transaction.set_autocommit(False)
    job = MediaJob.objects.select_for_update().get(pk=job_id)
    if job.state == MediaJob.State.RUNNING:
        return True  # the lock is kept, the transaction open
    assert job.state == MediaJob.State.QUEUED, "the job ended before it could be caught: make the video longer"
    transaction.rollback()
    transaction.set_autocommit(True)
    return False


@pytest.mark.parametrize("attempts,outcome", [(2, "done"), (1, "failed")], ids=["resumed", "failed"])
def test_a_media_worker_killed_mid_job_is_replaced_and_the_job_never_lost_nor_stuck(
        stack, actor_factory, long_video, tmp_path, attempts, outcome):
    alice = actor_factory("alice")
    stack.overrides.update({"MEDIA_JOB_MAX_ATTEMPTS": str(attempts), "MEDIA_JOB_HEARTBEAT_SECONDS": "0.05",
                            "MEDIA_JOB_LEASE_SECONDS": "10", "MEDIA_JOB_SWEEP_SECONDS": "1"})
    stack.start("web", "worker", "beat", "media")
    stack.wait_for_web()
    job_files = stack.workdir / "var" / "media-jobs"

    api = ConsortiumClient(stack.base_url, alice.token)
    job_id = api.hash_job_start(long_video)["id"]
    wait_until(lambda: caught_running(job_id), timeout=300, interval=0.02, what="the media worker to start the job")
    try:
        stack.kill("media")
    finally:
        transaction.commit()
        transaction.set_autocommit(True)
    assert (job_files / f"{job_id}.media").exists()

    stack.start("media")
    wait_until(lambda: api.hash_job(job_id)["state"] in ("done", "failed"), timeout=600, what="the job to finish")

    body = api.hash_job(job_id)
    assert body["state"] == outcome, body["error"]
    if outcome == "done":
        assert MediaJob.objects.get(pk=job_id).attempts == 2
        assert body["signals"] == cli_hash(long_video, tmp_path)["signals"]
        assert len(body["signals"][0]["frames"]) == 1800
    else:
        assert body["error"]["code"] == "worker_lost"
    assert not list(job_files.glob("*.media")) and not list((job_files / "incoming").glob("*"))
