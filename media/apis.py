from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from hashes.apis import MediaUploadSerializer
from hashes.schemas import SignalSerializer

from .models import MediaJob
from .selectors import media_job_frames, media_job_get
from .services import FAILURE_CODES, media_job_create, media_jobs_refuse_over_limit
from .uploads import JobUploadHandler


class JobErrorSerializer(serializers.Serializer):
    code = serializers.ChoiceField(FAILURE_CODES, help_text="Stable: the codes POST hash/ gives for the same file, "
                                   "or media_job_timeout, worker_lost, media_job_error.")
    message = serializers.CharField(help_text="For people; may change.")

    class Meta:
        ref_name = "MediaJobError"


class FramePageSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="Frames of the video's vpdq signal in all.")
    after = serializers.IntegerField(help_text="Frames before this page: the request's frames_after.")
    next_after = serializers.IntegerField(help_text="frames_after for the next page.")
    has_more = serializers.BooleanField(help_text="Whether frames follow this page.")

    class Meta:
        ref_name = "MediaJobFramePage"


class MediaJobSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    state = serializers.ChoiceField(MediaJob.State.values)
    progress = serializers.FloatField(min_value=0, max_value=1, help_text="Share of the file hashed: 0..1.")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True, help_text="When a finished job's answer is deleted "
                                           "(MEDIA_JOB_RETENTION_HOURS after it finished).")
    signals = SignalSerializer(many=True, allow_null=True, help_text=(
        "Once done: exactly what POST hash/ gives, except that a video's vpdq signal holds one page of its "
        "frames (see frame_page)."))
    frame_page = FramePageSerializer(allow_null=True, help_text=(
        "Once done, for a video: which of its frames the vpdq signal holds. Ask for the next page with "
        "frames_after=next_after while has_more."))
    error = JobErrorSerializer(allow_null=True, help_text="Once failed.")

    class Meta:
        ref_name = "MediaJob"


class FramePageQuery(serializers.Serializer):
    frames_after = serializers.IntegerField(min_value=0, default=0, help_text=(
        "Frames to skip: 0 for the first page, then the previous page's frame_page.next_after."))
    frames_limit = serializers.IntegerField(min_value=1, required=False)

    class Meta:
        ref_name = "MediaJobQuery"


class DocumentedFramePageQuery(FramePageQuery):
    """The query as the schema states it: a larger frames_limit is served as MEDIA_JOB_PAGE_FRAMES."""

    frames_limit = serializers.IntegerField(
        min_value=1, max_value=settings.MEDIA_JOB_PAGE_FRAMES, required=False,
        help_text=f"Frames per page (default and most {settings.MEDIA_JOB_PAGE_FRAMES}).")

    class Meta:
        ref_name = "MediaJobQuery"


def job_body(job: MediaJob, *, frames_after: int = 0, frames_limit: int | None = None) -> dict[str, Any]:
    # Built by hand rather than through the serializer: a page holds thousands of frames, already
    # in the wire shape.
    finished = job.finished_at
    signals, page = None, None
    if job.state == MediaJob.State.DONE:
        limit = min(frames_limit or settings.MEDIA_JOB_PAGE_FRAMES, settings.MEDIA_JOB_PAGE_FRAMES)
        signals, page = media_job_frames(job, after=frames_after, limit=limit)
    return {
        "id": str(job.id),
        "state": job.state,
        "progress": job.progress,
        "created_at": serializers.DateTimeField().to_representation(job.created_at),
        "finished_at": serializers.DateTimeField().to_representation(finished) if finished else None,
        "expires_at": serializers.DateTimeField().to_representation(
            finished + timedelta(hours=settings.MEDIA_JOB_RETENTION_HOURS)) if finished else None,
        "signals": signals,
        "frame_page": page,
        "error": ({"code": job.error_code, "message": job.error_message}
                  if job.state == MediaJob.State.FAILED else None),
    }


class MediaJobCreateApi(APIView):
    """Hash an image or a long video in the background: the file is kept on disk until hashed."""

    required_scope = "match"
    throttle_scope = "media"
    parser_classes = [MultiPartParser]

    @extend_schema(request={"multipart/form-data": MediaUploadSerializer}, responses={202: MediaJobSerializer},
                   summary="Start hashing an image or a video", operation_id="media_job_create", tags=["matching"])
    def post(self, request):
        media_jobs_refuse_over_limit(request.user.member)  # before a byte of the upload is stored
        # Straight to disk beside the job files, never to memory; set before the body is read.
        handler = JobUploadHandler(request._request)
        request._request.upload_handlers = [handler]
        try:
            job = media_job_create(member=request.user.member, upload=request.FILES.get("file"))
        except BaseException:
            handler.upload_interrupted()  # a refused or broken upload leaves nothing behind
            raise
        return Response(job_body(job), status=status.HTTP_202_ACCEPTED)


class MediaJobDetailApi(APIView):
    required_scope = "match"

    @extend_schema(parameters=[DocumentedFramePageQuery], responses=MediaJobSerializer,
                   summary="A media hashing job you started", operation_id="media_job_get", tags=["matching"])
    def get(self, request, job_id):
        params = FramePageQuery(data=request.query_params)
        params.is_valid(raise_exception=True)
        return Response(job_body(media_job_get(member=request.user.member, job_id=job_id), **params.validated_data))
