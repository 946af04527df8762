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
from .selectors import media_job_get
from .services import FAILURE_CODES, media_job_create, media_jobs_refuse_over_limit
from .uploads import JobUploadHandler


class JobErrorSerializer(serializers.Serializer):
    code = serializers.ChoiceField(FAILURE_CODES, help_text="Stable: the codes POST hash/ gives for the same file, "
                                   "or media_job_timeout, worker_lost, media_job_error.")
    message = serializers.CharField(help_text="For people; may change.")

    class Meta:
        ref_name = "MediaJobError"


class MediaJobSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    state = serializers.ChoiceField(MediaJob.State.values)
    progress = serializers.FloatField(min_value=0, max_value=1, help_text="Share of the file hashed: 0..1.")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True, help_text="When a finished job's answer is deleted "
                                           "(MEDIA_JOB_RETENTION_HOURS after it finished).")
    signals = SignalSerializer(many=True, allow_null=True, help_text="Once done: exactly what POST hash/ gives.")
    error = JobErrorSerializer(allow_null=True, help_text="Once failed.")

    class Meta:
        ref_name = "MediaJob"


def job_body(job: MediaJob) -> dict[str, Any]:
    # Built by hand rather than through the serializer: a long video's answer holds tens of thousands
    # of frames, already in the wire shape.
    finished = job.finished_at
    return {
        "id": str(job.id),
        "state": job.state,
        "progress": job.progress,
        "created_at": serializers.DateTimeField().to_representation(job.created_at),
        "finished_at": serializers.DateTimeField().to_representation(finished) if finished else None,
        "expires_at": serializers.DateTimeField().to_representation(
            finished + timedelta(hours=settings.MEDIA_JOB_RETENTION_HOURS)) if finished else None,
        "signals": job.result if job.state == MediaJob.State.DONE else None,
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

    @extend_schema(responses=MediaJobSerializer, summary="A media hashing job you started",
                   operation_id="media_job_get", tags=["matching"])
    def get(self, request, job_id):
        return Response(job_body(media_job_get(member=request.user.member, job_id=job_id)))
