from django.urls import path

from . import apis

urlpatterns = [
    path("hash/jobs/", apis.MediaJobCreateApi.as_view(), name="media-jobs"),
    path("hash/jobs/<uuid:job_id>/", apis.MediaJobDetailApi.as_view(), name="media-job-detail"),
]
