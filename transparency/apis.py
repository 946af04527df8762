from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.http import HttpResponse, QueryDict
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from consortium.api.errors import NotFound
from consortium.api.openapi import ERRORS

from .months import DEFAULT_MONTHS, MAX_MONTHS, MonthRange, parse_range
from .public import public_json
from .selectors import CACHE_SECONDS, stats_cached


class StatsHashesSerializer(serializers.Serializer):
    added = serializers.IntegerField()
    retracted_by_submitters = serializers.IntegerField()
    removed_by_dispute = serializers.IntegerField()

    class Meta:
        ref_name = "StatsHashes"


class StatsOutcomesSerializer(serializers.Serializer):
    upheld = serializers.IntegerField()
    relabelled = serializers.IntegerField()
    removed = serializers.IntegerField()

    class Meta:
        ref_name = "StatsOutcomes"


class StatsMediansSerializer(serializers.Serializer):
    all = serializers.FloatField(allow_null=True)
    upheld = serializers.FloatField(allow_null=True)
    relabelled = serializers.FloatField(allow_null=True)
    removed = serializers.FloatField(allow_null=True)

    class Meta:
        ref_name = "StatsMedians"


class StatsContributionsSerializer(serializers.Serializer):
    platform = serializers.IntegerField()
    government = serializers.IntegerField()
    ngo = serializers.IntegerField()

    class Meta:
        ref_name = "StatsContributions"


class StatsDisputesSerializer(serializers.Serializer):
    opened = serializers.IntegerField()
    resolved = StatsOutcomesSerializer()
    median_resolution_seconds = StatsMediansSerializer(
        help_text="Seconds from opening to resolution; null: none resolved.")

    class Meta:
        ref_name = "StatsDisputes"


class StatsFiguresSerializer(serializers.Serializer):
    hashes = StatsHashesSerializer()
    disputes = StatsDisputesSerializer()
    contributions = StatsContributionsSerializer(help_text="Consortium-wide hash statements published, by member kind.")

    class Meta:
        ref_name = "StatsFigures"


class StatsGroupOnlySerializer(serializers.Serializer):
    contributions = serializers.IntegerField()
    hashes = StatsHashesSerializer()
    disputes = inline_serializer("StatsGroupDisputes", {"opened": serializers.IntegerField(),
                                                        "resolved": serializers.IntegerField()})

    class Meta:
        ref_name = "StatsGroupOnly"


class StatsMemberSerializer(serializers.Serializer):
    member = serializers.CharField()
    kind = serializers.CharField()
    contributions = serializers.IntegerField()

    class Meta:
        ref_name = "StatsMember"


class StatsBlockSerializer(serializers.Serializer):
    all_labels = StatsFiguresSerializer(help_text="Every hash, dispute and statement once, whatever its labels.")
    by_label = serializers.DictField(child=StatsFiguresSerializer(), help_text="By label slug.")
    unlabelled = StatsFiguresSerializer()
    group_only = StatsGroupOnlySerializer(help_text="Sharing groups' statements, hashes and disputes: totals only.")
    members = StatsMemberSerializer(many=True, required=False, help_text="Only when TRANSPARENCY_PER_MEMBER is true.")

    class Meta:
        ref_name = "StatsBlock"


class StatsPeriodSerializer(StatsBlockSerializer):
    period = serializers.CharField(help_text="YYYY-MM (UTC).")

    class Meta:
        ref_name = "StatsPeriod"


StatsOutputSerializer = inline_serializer("Stats", {
    "period": serializers.CharField(),
    "from": serializers.CharField(),
    "to": serializers.CharField(),
    "generated_at": serializers.DateTimeField(),
    "labels": inline_serializer("StatsLabel", {"slug": serializers.CharField(), "name": serializers.CharField()},
                                many=True),
    "periods": StatsPeriodSerializer(many=True),
    "total": StatsBlockSerializer(),
})


def request_range(params: QueryDict, now: datetime) -> MonthRange:
    return parse_range(first=params.get("from"), last=params.get("to"), period=params.get("period"), now=now)


class StatsApi(APIView):
    """Transparency statistics per month and label (README.md, "Transparency statistics"): the same
    figures for every member, counted over consortium-wide statements only."""

    required_scope = "read"
    # A range not asked for within the last minute costs the database a count over its months.
    throttle_scope = "stats"

    @extend_schema(
        parameters=[
            OpenApiParameter("from", str, description=f"First month, YYYY-MM (default: {DEFAULT_MONTHS - 1} months "
                                                      "before `to`)."),
            OpenApiParameter("to", str, description="Last month, YYYY-MM (default: the current month). "
                                                    f"At most {MAX_MONTHS} months in all."),
            OpenApiParameter("period", str, enum=["month"]),
        ],
        responses=StatsOutputSerializer, summary="Transparency statistics", operation_id="stats_read",
        tags=["transparency"],
    )
    def get(self, request):
        months = request_range(request.query_params, timezone.now())
        return Response(stats_cached(months=months, per_member=settings.TRANSPARENCY_PER_MEMBER))


class PublicStatsApi(APIView):
    """The figures of the public page /transparency/, for anyone, while TRANSPARENCY_PUBLIC is true
    (404 otherwise): the last TRANSPARENCY_PUBLIC_MONTHS months. Served from a cache refreshed
    at most once a minute."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: StatsOutputSerializer, 404: ERRORS[404]}, summary="Transparency statistics (public)",
                   description="404 while TRANSPARENCY_PUBLIC is false.", auth=[],
                   operation_id="transparency_public", tags=["transparency"])
    def get(self, request):
        if not settings.TRANSPARENCY_PUBLIC:
            raise NotFound("No such endpoint.")
        response = HttpResponse(public_json(), content_type="application/json")
        response["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
        return response
