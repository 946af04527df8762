from django.urls import path

from . import apis

urlpatterns = [
    path("stats/", apis.StatsApi.as_view(), name="stats"),
]
