"""Routes outside the member API: the public page and its JSON (404 unless TRANSPARENCY_PUBLIC)."""

from django.urls import path

from . import apis, views

urlpatterns = [
    path("transparency/", views.transparency_page, name="transparency"),
    path("transparency.json", apis.PublicStatsApi.as_view(), name="transparency-json"),
]
