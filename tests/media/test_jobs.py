"""Media hashing jobs through the API, run in this process (the job's task runs when its creating
transaction commits): the same signals as POST hash/, failures with the codes POST hash/ gives,
files kept only while they wait, jobs seen only by the member who started them. Real workers, and a
worker killed mid-job, are in tests/e2e/test_media_jobs.py."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from media.models import MediaJob
from media.services import media_jobs_sweep
from tests.databases import postgresql_only
from tests.test_upload_limits import MultipartBody, assert_media_too_large, post


@pytest.fixture(autouse=True)
def job_dir(settings, tmp_path) -> Path:
    settings.MEDIA_JOB_DIR = tmp_path / "media-jobs"
    return settings.MEDIA_JOB_DIR


def files_left(job_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(job_dir)) for p in job_dir.rglob("*") if p.is_file()) if job_dir.exists() else []


def start_job(actor, content: bytes, capture, *, run: bool = True):
    """POST hash/jobs/; with `run`, the job's task runs when the request's transaction commits."""
    with capture(execute=run):
        response = actor.api.post("/api/v1/hash/jobs/", {"file": _upload(content)}, format="multipart")
    return response


def _upload(content: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("clip.mp4", content, content_type="application/octet-stream")


def job(actor, job_id: str, query: str = ""):
    return actor.api.get(f"/api/v1/hash/jobs/{job_id}/" + (f"?{query}" if query else ""))


def test_a_short_videos_job_gives_exactly_what_post_hash_gives(alice, django_capture_on_commit_callbacks, job_dir,
                                                              short_video):
    content = short_video.read_bytes()
    direct = alice.api.post("/api/v1/hash/", {"file": _upload(content)}, format="multipart")
    assert direct.status_code == 200, direct.content

    started = start_job(alice, content, django_capture_on_commit_callbacks, run=False)
    assert started.status_code == 202, started.content
    assert (started.json()["state"], started.json()["progress"]) == ("queued", 0.0)
    assert files_left(job_dir) == [f"{started.json()['id']}.media"]  # the upload waits under the job's name
    with django_capture_on_commit_callbacks(execute=True):
        media_jobs_sweep(now=timezone.now() + timedelta(days=1))  # a lost message: the sweep queues it again

    body = job(alice, started.json()["id"]).json()
    assert (body["state"], body["progress"], body["error"]) == ("done", 1.0, None)
    assert body["signals"] == direct.json()["signals"]
    assert body["signals"][0]["type"] == "vpdq" and len(body["signals"][0]["frames"]) == 90
    assert body["frame_page"] == {"total": 90, "after": 0, "next_after": 90, "has_more": False}  # one page
    assert body["expires_at"] is not None
    assert files_left(job_dir) == []


def test_a_videos_frames_come_a_bounded_page_at_a_time_and_add_up_to_what_post_hash_gives(
        alice, settings, django_capture_on_commit_callbacks, short_video):
    settings.MEDIA_JOB_PAGE_FRAMES = 40
    content = short_video.read_bytes()
    direct = alice.api.post("/api/v1/hash/", {"file": _upload(content)}, format="multipart").json()["signals"]
    job_id = start_job(alice, content, django_capture_on_commit_callbacks).json()["id"]

    pages, after = [], 0
    while True:
        body = job(alice, job_id, f"frames_after={after}").json()
        pages.append(body)
        after = body["frame_page"]["next_after"]
        if not body["frame_page"]["has_more"]:
            break
    asked_for_more = job(alice, job_id, "frames_limit=1000").json()
    asked_for_fewer = job(alice, job_id, "frames_after=85&frames_limit=3").json()

    assert [len(page["signals"][0]["frames"]) for page in pages] == [40, 40, 10]
    assert [page["frame_page"] for page in pages] == [
        {"total": 90, "after": 0, "next_after": 40, "has_more": True},
        {"total": 90, "after": 40, "next_after": 80, "has_more": True},
        {"total": 90, "after": 80, "next_after": 90, "has_more": False},
    ]
    assert [frame for page in pages for frame in page["signals"][0]["frames"]] == direct[0]["frames"]
    assert all(page["signals"][1:] == direct[1:] for page in pages)  # the file's digests on every page
    assert len(asked_for_more["signals"][0]["frames"]) == 40  # a larger limit is served as the most
    assert asked_for_fewer["signals"][0]["frames"] == direct[0]["frames"][85:88]
    assert asked_for_fewer["frame_page"] == {"total": 90, "after": 85, "next_after": 88, "has_more": True}


def a_finished_job(owner, frames: int) -> MediaJob:
    return MediaJob.objects.create(owner=owner, state="done", progress=1.0, finished_at=timezone.now(), result=[
        {"type": "vpdq", "frames": [{"pdq": f"{n:064x}", "quality": 100, "timestamp": n / 30} for n in range(frames)]},
        {"type": "md5", "value": "0" * 32},
    ])


@pytest.mark.parametrize("after", [2_999, 3_000, 2**31 - 1, 2**31 + 5, 10**30])
def test_a_page_at_or_past_the_end_is_empty_and_says_so(alice, after):
    done = a_finished_job(alice.member, 3_000)

    body = job(alice, str(done.id), f"frames_after={after}").json()

    assert len(body["signals"][0]["frames"]) == (after == 2_999)
    assert body["signals"][1] == {"type": "md5", "value": "0" * 32}
    assert body["frame_page"] == {"total": 3_000, "after": after, "next_after": after + (after == 2_999),
                                  "has_more": False}


@postgresql_only("on SQLite, the embedded single-user database, the answer is cut in the web process")
def test_a_page_of_a_long_videos_answer_is_cut_in_the_database(alice, settings):
    """A four-hour video hashed at every frame is an answer of 400,000 frames: no page request reads
    it whole into a web process."""
    settings.MEDIA_JOB_PAGE_FRAMES = 100
    done = a_finished_job(alice.member, 3_000)

    with CaptureQueriesContext(connection) as captured:
        body = job(alice, str(done.id), "frames_after=2950").json()

    assert [f["pdq"] for f in body["signals"][0]["frames"]] == [f"{n:064x}" for n in range(2_950, 3_000)]
    assert not [q["sql"] for q in captured.captured_queries if '"media_mediajob"."result"' in q["sql"]]


@pytest.mark.parametrize("query", ["frames_after=-1", "frames_after=first", "frames_limit=0", "frames_limit=x"])
def test_a_bad_frame_page_is_refused_with_a_code(alice, django_capture_on_commit_callbacks, short_video, query):
    job_id = start_job(alice, short_video.read_bytes(), django_capture_on_commit_callbacks).json()["id"]

    answer = job(alice, job_id, query)

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "validation_error"


def test_a_job_is_seen_only_by_the_member_who_started_it(alice, bob, django_capture_on_commit_callbacks, short_video):
    started = start_job(alice, short_video.read_bytes(), django_capture_on_commit_callbacks).json()

    hidden, missing = job(bob, started["id"]), job(bob, str(uuid.uuid4()))

    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()
    assert job(alice, started["id"]).json()["state"] == "done"


@pytest.mark.parametrize("content,code", [
    (b"this is a text file, not a video" * 100, "media_unreadable"),
    (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 5000, "media_unreadable"),  # a video header and nothing after
    ("truncated", "media_unreadable"),
    ("long", "media_too_long"),
], ids=["not-media", "header-only", "truncated", "too-long"])
def test_a_file_that_cannot_be_hashed_fails_the_job_with_a_code_and_is_deleted(
        alice, settings, django_capture_on_commit_callbacks, job_dir, short_video, content, code):
    settings.MEDIA_JOB_MAX_VIDEO_SECONDS = 2  # the video lasts 3 s
    video = short_video.read_bytes()
    data = {"truncated": video[:4000], "long": video}.get(content, content)
    direct = alice.api.post("/api/v1/hash/", {"file": _upload(data)}, format="multipart")

    started = start_job(alice, data, django_capture_on_commit_callbacks)
    assert started.status_code == 202, started.content

    body = job(alice, started.json()["id"]).json()
    assert (body["state"], body["signals"], body["error"]["code"]) == ("failed", None, code)
    if content != "long":  # POST hash/ refuses the same file with the same code (its own limit is 60 s)
        assert direct.json()["error"]["code"] == code
    assert files_left(job_dir) == []


def test_an_upload_over_the_limit_is_refused_while_streaming_and_nothing_is_kept(bob, settings, job_dir):
    settings.MEDIA_MAX_BYTES = 200_000
    body = MultipartBody(3_000_000)

    response = post(bob, "/api/v1/hash/jobs/", body)

    assert_media_too_large(response, 200_000)
    assert body.bytes_read < 200_000 + 3 * 65_536
    assert files_left(job_dir) == []
    assert not MediaJob.objects.exists()


def test_an_upload_declared_too_long_is_refused_before_a_byte_is_read(bob, settings, job_dir):
    settings.MEDIA_MAX_BYTES = 100_000
    body = MultipartBody(10)

    response = post(bob, "/api/v1/hash/jobs/", body, content_length=100_000 + settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)

    assert_media_too_large(response, 100_000)
    assert body.bytes_read == 0
    assert files_left(job_dir) == [] and not MediaJob.objects.exists()


def test_a_request_without_a_file_is_refused(alice, job_dir):
    response = alice.api.post("/api/v1/hash/jobs/", {"note": "no file"}, format="multipart")

    assert (response.status_code, response.json()["error"]["code"]) == (400, "file_missing")
    assert not MediaJob.objects.exists()


def test_a_member_may_have_only_so_many_jobs_queued_or_running(alice, bob, settings, django_capture_on_commit_callbacks,
                                                               job_dir):
    settings.MEDIA_JOB_MAX_PER_MEMBER = 2
    first = start_job(alice, b"x" * 100, django_capture_on_commit_callbacks, run=False).json()
    start_job(alice, b"y" * 100, django_capture_on_commit_callbacks, run=False)

    refused = start_job(alice, b"z" * 100, django_capture_on_commit_callbacks, run=False)

    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "media_jobs_limit"
    assert refused.json()["error"]["details"]["max_jobs"] == 2 and int(refused["Retry-After"]) > 0
    assert MediaJob.objects.filter(owner=alice.member).count() == 2 and len(files_left(job_dir)) == 2
    assert start_job(bob, b"w" * 100, django_capture_on_commit_callbacks, run=False).status_code == 202
    MediaJob.objects.filter(pk=first["id"]).update(state=MediaJob.State.FAILED)  # a finished job frees its place
    assert start_job(alice, b"z" * 100, django_capture_on_commit_callbacks, run=False).status_code == 202


# --- the sweep --------------------------------------------------------------------------------------

def a_job(owner, job_dir: Path, **fields) -> MediaJob:
    job = MediaJob(owner=owner, **fields)
    job_dir.mkdir(parents=True, exist_ok=True)
    path = job_dir / f"{job.id}.media"
    path.write_bytes(b"media")
    job.file_path = str(path)
    job.save()
    return job


def test_the_sweep_queues_again_a_running_job_whose_heartbeat_stopped(alice, settings, job_dir):
    settings.MEDIA_JOB_MAX_ATTEMPTS = 2
    now = timezone.now()
    silent = a_job(alice.member, job_dir, state="running", attempts=1, lease=uuid.uuid4(), progress=0.5,
                   heartbeat_at=now - timedelta(seconds=settings.MEDIA_JOB_LEASE_SECONDS + 1))
    alive = a_job(alice.member, job_dir, state="running", attempts=1, lease=uuid.uuid4(), progress=0.5,
                  heartbeat_at=now - timedelta(seconds=settings.MEDIA_JOB_LEASE_SECONDS - 5))

    result = media_jobs_sweep(now=now)

    assert result.resumed == [silent.pk]
    silent.refresh_from_db()
    alive.refresh_from_db()
    assert (silent.state, silent.lease, silent.progress) == ("queued", None, 0.0)
    assert Path(silent.file_path).exists()  # the next attempt hashes it
    assert alive.state == "running"


def test_a_job_the_broker_did_not_take_is_queued_again_by_the_next_sweep(
        alice, bob, django_capture_on_commit_callbacks, job_dir, monkeypatch):
    from kombu.exceptions import OperationalError

    from media.tasks import run_media_job

    taken = a_job(bob.member, job_dir)  # queued just now, its message with the broker
    refused = []

    def broker_down(job_id):
        refused.append(job_id)
        raise OperationalError("[Errno 111] Connection refused")

    monkeypatch.setattr(run_media_job, "delay", broker_down)
    started = start_job(alice, b"not a video", django_capture_on_commit_callbacks)
    assert started.status_code == 202 and refused == [started.json()["id"]]

    sent = []
    monkeypatch.setattr(run_media_job, "delay", sent.append)
    with django_capture_on_commit_callbacks(execute=True):
        result = media_jobs_sweep()  # the next sweep, not MEDIA_JOB_REQUEUE_SECONDS later
    assert [str(pk) for pk in result.requeued] == sent == [started.json()["id"]]
    assert taken.pk not in result.requeued
    assert MediaJob.objects.get(pk=started.json()["id"]).state == "queued"


def test_a_members_jobs_take_turns_so_another_members_job_starts_at_once(alice, bob, settings, job_dir,
                                                                         monkeypatch):
    """Two media workers, and alice's four-hour videos: her second job waits while her first runs
    (MEDIA_JOB_MAX_RUNNING_PER_MEMBER, 1), so bob's job takes the other worker at once."""
    from media.services import media_job_run
    from media.tasks import run_media_job

    hashed = []
    monkeypatch.setattr("consortium_client.media.hash_media", lambda path, **_: hashed.append(path) or [])
    queued = []
    monkeypatch.setattr(run_media_job, "delay", queued.append)
    hers = a_job(alice.member, job_dir, state="running", attempts=1, lease=uuid.uuid4(), heartbeat_at=timezone.now())
    her_next = a_job(alice.member, job_dir)
    his = a_job(bob.member, job_dir)

    media_job_run(job_id=her_next.pk)  # the second worker takes her next job's message first
    media_job_run(job_id=his.pk)

    assert MediaJob.objects.get(pk=her_next.pk).state == "queued" and hashed == [his.file_path]
    assert [str(pk) for pk in media_jobs_sweep().requeued] == [str(her_next.pk)]  # not lost meanwhile
    MediaJob.objects.filter(pk=hers.pk).update(state="done", lease=None)  # her first job ends
    media_job_run(job_id=str(her_next.pk))
    assert hashed == [his.file_path, her_next.file_path]


def test_when_a_members_job_ends_its_next_waiting_job_is_queued_at_once(alice, settings, job_dir, monkeypatch):
    from media.services import media_job_run
    from media.tasks import run_media_job

    first = a_job(alice.member, job_dir)
    second = a_job(alice.member, job_dir)

    def hash_media(path, **_):
        if path == first.file_path:  # meanwhile the other worker takes the second job's message: it waits
            media_job_run(job_id=second.pk)
        return []

    monkeypatch.setattr("consortium_client.media.hash_media", hash_media)
    queued = []
    monkeypatch.setattr(run_media_job, "delay", queued.append)

    media_job_run(job_id=first.pk)

    assert [MediaJob.objects.get(pk=job.pk).state for job in (first, second)] == ["done", "queued"]
    assert queued == [str(second.pk)]  # its turn, now rather than at the next sweep


def test_the_sweep_fails_a_job_whose_worker_died_on_every_attempt_and_deletes_its_file(alice, settings, job_dir):
    settings.MEDIA_JOB_MAX_ATTEMPTS = 2
    now = timezone.now()
    silent = a_job(alice.member, job_dir, state="running", attempts=2, lease=uuid.uuid4(),
                   heartbeat_at=now - timedelta(seconds=settings.MEDIA_JOB_LEASE_SECONDS + 1))

    assert media_jobs_sweep(now=now).failed == 1

    silent.refresh_from_db()
    assert (silent.state, silent.error_code, silent.file_path) == ("failed", "worker_lost", "")
    assert files_left(job_dir) == []


def test_the_sweep_deletes_answers_past_their_retention_and_files_no_job_holds(alice, settings, job_dir):
    now = timezone.now()
    retention = timedelta(hours=settings.MEDIA_JOB_RETENTION_HOURS)
    old = MediaJob.objects.create(owner=alice.member, state="done", result=[], finished_at=now - retention - timedelta(1))
    recent = MediaJob.objects.create(owner=alice.member, state="failed", finished_at=now - retention + timedelta(hours=1))
    waiting = a_job(alice.member, job_dir)
    orphan = job_dir / f"{uuid.uuid4()}.media"
    orphan.write_bytes(b"left by a worker that died after answering")
    later = now + timedelta(seconds=settings.MEDIA_JOB_LEASE_SECONDS + 1)

    result = media_jobs_sweep(now=later)

    assert result.expired == 1 and result.files_removed == 1
    assert set(MediaJob.objects.values_list("pk", flat=True)) == {recent.pk, waiting.pk}
    assert files_left(job_dir) == [f"{waiting.pk}.media"]
    assert not MediaJob.objects.filter(pk=old.pk).exists()
