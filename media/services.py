"""Media hashing jobs: every write. A job is a row (the source of truth) and a file under
MEDIA_JOB_DIR; a message on the `media` queue only says "look at this row". A job is claimed with a
conditional UPDATE that gives it a new lease, every later write of that attempt names the lease, and
the sweep takes a job back from an attempt whose heartbeat stopped, so a lost message or a killed
worker delays a job but never loses it or leaves it running for ever."""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from consortium.api.errors import DomainError, TooManyRequests
from members.models import Member

from .models import MediaJob
from .uploads import incoming_dir

logger = logging.getLogger(__name__)

MEDIA_JOBS_LIMIT = "media_jobs_limit"
WORKER_LOST = "worker_lost"
JOB_TIMEOUT = "media_job_timeout"
JOB_ERROR = "media_job_error"
# What a failed job's `error.code` can be: the media's own refusals (as POST hash/ gives them) and the job's.
FAILURE_CODES = ["media_unreadable", "media_unsupported", "media_too_large", "media_too_long", "video_unsupported",
                 JOB_TIMEOUT, WORKER_LOST, JOB_ERROR]
# A request's upload that no write has touched for this long belongs to a web process that died.
_INCOMING_ABANDONED_SECONDS = 3600
_LIMIT_RETRY_AFTER_SECONDS = 30


class LeaseLost(Exception):
    """The sweep gave the job to another attempt: this one stops and writes nothing more."""


def job_file(job_id: uuid.UUID) -> Path:
    return settings.MEDIA_JOB_DIR / f"{job_id}.media"


def media_jobs_refuse_over_limit(member: Member) -> None:
    """TooManyRequests when the member already has MEDIA_JOB_MAX_PER_MEMBER jobs queued or running.
    The view asks before it reads the upload (so a member at the limit costs no disk), and
    media_job_create again under the member's lock (so two requests at once cannot both pass)."""
    limit = settings.MEDIA_JOB_MAX_PER_MEMBER
    active = MediaJob.objects.filter(owner=member, state__in=MediaJob.ACTIVE).count()
    if active >= limit:
        raise TooManyRequests(
            MEDIA_JOBS_LIMIT, f"You have {active} media jobs queued or running; at most {limit} at once.",
            retry_after=_LIMIT_RETRY_AFTER_SECONDS, details={"max_jobs": limit},
        )


def media_job_create(*, member: Member, upload: Any) -> MediaJob:
    """A queued job for an upload already on disk (media.uploads.JobUploadHandler), at most
    MEDIA_JOB_MAX_PER_MEMBER queued or running per member. The job keeps the file under its own name;
    the request's name for it goes when the request ends."""
    if not isinstance(upload, UploadedFile) or not hasattr(upload, "temporary_file_path"):
        raise DomainError("file_missing", 'Send the media as a multipart form field named "file".')
    if upload.size == 0:
        raise DomainError("media_unreadable", "The file is empty.")
    with transaction.atomic():
        # One member's requests take turns here, so two at once cannot both pass the limit.
        Member.objects.select_for_update().only("pk").get(pk=member.pk)
        media_jobs_refuse_over_limit(member)
        job = MediaJob(owner=member, file_size=upload.size)
        path = job_file(job.id)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.link(upload.temporary_file_path(), path)
        os.utime(path)  # the orphan sweep goes by age: the job's file is new now, not when the upload ended
        job.file_path = str(path)
        try:
            job.save(force_insert=True)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        transaction.on_commit(lambda: enqueue_media_jobs([job.id]))
    return job


def enqueue_media_jobs(ids: list[uuid.UUID]) -> None:
    """Best effort: jobs the broker did not take stay queued in the database, marked so that the next
    sweep (every MEDIA_JOB_SWEEP_SECONDS) queues them again; a message lost after the broker took it
    is queued again after MEDIA_JOB_REQUEUE_SECONDS."""
    from .tasks import run_media_job

    sent = 0
    try:
        for job_id in ids:
            run_media_job.delay(str(job_id))
            sent += 1
    except Exception:
        logger.exception("media jobs could not be queued; the next sweep queues them again")
        try:
            MediaJob.objects.filter(pk__in=ids[sent:], state=MediaJob.State.QUEUED).update(
                enqueued_at=_for_the_next_sweep())
        except Exception:  # the database too: the sweep still finds them, MEDIA_JOB_REQUEUE_SECONDS later
            logger.exception("media jobs not queued could not be marked for the next sweep")


@dataclass
class _Heartbeat:
    """Called after each hashed frame: writes progress and the heartbeat every MEDIA_JOB_HEARTBEAT_SECONDS,
    notices a lease the sweep took back, and stops the attempt at MEDIA_JOB_TIME_LIMIT_SECONDS."""

    job_id: uuid.UUID
    lease: uuid.UUID
    started: float = field(default_factory=time.monotonic)
    last: float = field(default_factory=time.monotonic)

    def __call__(self, done: float) -> None:
        now = time.monotonic()
        if now - self.started > settings.MEDIA_JOB_TIME_LIMIT_SECONDS:
            from consortium_client.media import MediaError

            raise MediaError(JOB_TIMEOUT, f"Hashing took over {settings.MEDIA_JOB_TIME_LIMIT_SECONDS} s.")
        if now - self.last < settings.MEDIA_JOB_HEARTBEAT_SECONDS:
            return
        self.last = now
        held = _held(self.job_id, self.lease).update(progress=min(max(done, 0.0), 1.0), heartbeat_at=timezone.now())
        if not held:
            raise LeaseLost


def _held(job_id: uuid.UUID, lease: uuid.UUID):
    return MediaJob.objects.filter(pk=job_id, lease=lease, state=MediaJob.State.RUNNING)


def media_job_run(*, job_id: uuid.UUID | str) -> None:
    """Hash a queued job's file, unless another attempt holds it, it is finished, or its member
    already runs MEDIA_JOB_MAX_RUNNING_PER_MEMBER jobs (then it waits its turn)."""
    # The client's hasher, as POST hash/ and `consortium hash` use: PyAV and pdqhash load only here.
    from consortium_client.media import video_supported

    video_supported()  # loads PyAV now: an attempt's first heartbeat, after its first frame, is not late for it
    lease = uuid.uuid4()
    if not _claim(job_id, lease):
        return
    job = MediaJob.objects.get(pk=job_id)
    try:
        _hash_job(job, lease)
    finally:
        _queue_next(job.owner_id)


def _claim(job_id: uuid.UUID | str, lease: uuid.UUID) -> bool:
    """Take a queued job, unless its member already runs MEDIA_JOB_MAX_RUNNING_PER_MEMBER jobs: then
    it waits, marked for the next sweep, and its turn comes when one of them ends (_queue_next)."""
    with transaction.atomic():
        owner_id = MediaJob.objects.filter(pk=job_id, state=MediaJob.State.QUEUED).values_list(
            "owner_id", flat=True).first()
        if owner_id is None:
            return False
        # One member's claims take turns, so two workers cannot both start its jobs past the limit.
        Member.objects.select_for_update().only("pk").get(pk=owner_id)
        waiting = MediaJob.objects.filter(pk=job_id, state=MediaJob.State.QUEUED)
        running = MediaJob.objects.filter(owner_id=owner_id, state=MediaJob.State.RUNNING).count()
        if running >= settings.MEDIA_JOB_MAX_RUNNING_PER_MEMBER:
            waiting.update(enqueued_at=_for_the_next_sweep())
            return False
        now = timezone.now()
        return bool(waiting.update(state=MediaJob.State.RUNNING, lease=lease, attempts=F("attempts") + 1,
                                   progress=0.0, heartbeat_at=now, started_at=now))


def _for_the_next_sweep() -> datetime:
    """An enqueued_at the next sweep queues again (it queues what waited MEDIA_JOB_REQUEUE_SECONDS)."""
    return timezone.now() - timedelta(seconds=settings.MEDIA_JOB_REQUEUE_SECONDS + 1)


def _queue_next(owner_id: int) -> None:
    """A job of this member ended: queue its oldest waiting job now rather than at the next sweep."""
    following = list(MediaJob.objects.filter(owner_id=owner_id, state=MediaJob.State.QUEUED)
                     .order_by("created_at").values_list("pk", flat=True)[:1])
    enqueue_media_jobs(following)


def _hash_job(job: MediaJob, lease: uuid.UUID) -> None:
    from consortium_client.media import MediaError, hash_media

    try:
        signals = hash_media(
            job.file_path, max_bytes=settings.MEDIA_MAX_BYTES, max_pixels=settings.MEDIA_MAX_PIXELS,
            max_frame_pixels=settings.MEDIA_MAX_FRAME_PIXELS, max_video_seconds=settings.MEDIA_JOB_MAX_VIDEO_SECONDS,
            seconds_per_hash=settings.MEDIA_VPDQ_SECONDS_PER_HASH, progress=_Heartbeat(job.pk, lease),
        )
    except LeaseLost:
        logger.warning("media job %s was taken back by the sweep; this attempt stops", job.pk)
        return
    except MediaError as exc:
        _finish(_held(job.pk, lease), MediaJob.State.FAILED, error_code=exc.code, error_message=exc.message)
        return
    except Exception:
        logger.exception("media job %s failed", job.pk)
        _finish(_held(job.pk, lease), MediaJob.State.FAILED, error_code=JOB_ERROR,
                error_message="The file could not be hashed.")
        raise
    _finish(_held(job.pk, lease), MediaJob.State.DONE, result=signals, progress=1.0)


def _finish(jobs, state: str, **fields: Any) -> int:
    """Finish the jobs of `jobs` that are still there to finish, and delete their files."""
    paths = list(jobs.exclude(file_path="").values_list("file_path", flat=True))
    finished = jobs.update(state=state, lease=None, file_path="", finished_at=timezone.now(), **fields)
    if finished:
        for path in paths:
            Path(path).unlink(missing_ok=True)
    return finished


@dataclass
class SweepResult:
    resumed: list[uuid.UUID] = field(default_factory=list)
    requeued: list[uuid.UUID] = field(default_factory=list)
    failed: int = 0
    expired: int = 0
    files_removed: int = 0


def media_jobs_sweep(*, now: datetime | None = None) -> SweepResult:
    """Take back running jobs whose heartbeat stopped (queued again, or failed `worker_lost` after
    MEDIA_JOB_MAX_ATTEMPTS), queue again queued jobs whose message may be lost, delete finished jobs
    past MEDIA_JOB_RETENTION_HOURS and files no job holds. Returns what it did; queues what it must."""
    now = now or timezone.now()
    result = SweepResult()
    silent = MediaJob.objects.filter(
        state=MediaJob.State.RUNNING, heartbeat_at__lt=now - timedelta(seconds=settings.MEDIA_JOB_LEASE_SECONDS)
    )
    for job in silent.only("pk", "attempts", "lease"):
        # Conditional on the lease it had, so an attempt that just wrote a heartbeat keeps its job.
        still_silent = silent.filter(pk=job.pk, lease=job.lease)
        if job.attempts < settings.MEDIA_JOB_MAX_ATTEMPTS:
            if still_silent.update(state=MediaJob.State.QUEUED, lease=None, progress=0.0, enqueued_at=now):
                result.resumed.append(job.pk)
        else:
            result.failed += _finish(still_silent, MediaJob.State.FAILED, error_code=WORKER_LOST, error_message=(
                f"The worker hashing this file stopped {job.attempts} times."))
    stale_queue = MediaJob.objects.filter(
        state=MediaJob.State.QUEUED, enqueued_at__lt=now - timedelta(seconds=settings.MEDIA_JOB_REQUEUE_SECONDS)
    )
    result.requeued = list(stale_queue.values_list("pk", flat=True))
    MediaJob.objects.filter(pk__in=result.requeued).update(enqueued_at=now)
    result.expired, _ = MediaJob.objects.filter(
        state__in=(MediaJob.State.DONE, MediaJob.State.FAILED),
        finished_at__lt=now - timedelta(hours=settings.MEDIA_JOB_RETENTION_HOURS),
    ).delete()
    result.files_removed = _remove_orphan_files(now)
    transaction.on_commit(lambda: enqueue_media_jobs(result.resumed + result.requeued))
    return result


def _remove_orphan_files(now: datetime) -> int:
    """Job files whose job is finished or gone (a worker died between its answer and the unlink, or
    a request failed after linking), and request uploads no process has written to for an hour."""
    removed = 0
    cutoff = now.timestamp() - settings.MEDIA_JOB_LEASE_SECONDS
    held = {str(p) for p in MediaJob.objects.exclude(file_path="").values_list("file_path", flat=True)}
    folder: Path = settings.MEDIA_JOB_DIR
    candidates = [(p, cutoff) for p in folder.glob("*.media") if str(p) not in held]
    candidates += [(p, now.timestamp() - _INCOMING_ABANDONED_SECONDS) for p in incoming_dir().glob("*.upload")]
    for path, before in candidates:
        try:
            if path.stat().st_mtime < before:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
