from django.urls import path

from . import apis

urlpatterns = [
    path("statements/", apis.StatementsApi.as_view(), name="statements"),
    path("statements/<uuid:statement_id>/", apis.StatementDetailApi.as_view(), name="statement-detail"),
    path("hashes/<int:hash_id>/", apis.HashDetailApi.as_view(), name="hash-detail"),
    path("hashes/<int:hash_id>/statements/", apis.HashStatementsApi.as_view(), name="hash-statements"),
    path("feed/", apis.FeedApi.as_view(), name="feed"),
    path("disputes/", apis.DisputeListApi.as_view(), name="disputes"),
    path("match/", apis.MatchApi.as_view(), name="match"),
    path("hash/", apis.MediaHashApi.as_view(), name="hash-media"),
]
