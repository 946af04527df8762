from django.urls import path

from . import apis

urlpatterns = [
    path("me/", apis.MeApi.as_view(), name="me"),
    path("keys/", apis.KeysApi.as_view(), name="keys"),
]
