from __future__ import annotations

from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from consortium.api.errors import DomainError
from consortium.api.exceptions import is_multipart
from consortium.api.fields import PositionField
from consortium.api.pagination import Pagination
from consortium.api.parsers import BoundedJSONParser
from consortium.api.renderers import FastJSONRenderer
from members.throttling import TokenRateThrottle
from ops.metrics import timed_match

from . import tasks
from .models import Dispute, Statement
from .schemas import (
    DisputeSerializer, FeedEventSerializer, HashDetailSerializer, HashStatementSerializer, MatchResultSerializer,
    MatchSignalSerializer, ReasonsField, SignalSerializer, SignalsField, SupersededSerializer, TargetField,
)
from .selectors import (
    dispute_list, feed_page, hash_detail, hash_statements, match_signals, statement_get, statement_list, superseded_rows,
    with_superseded,
)
from .services.media import upload_signals
from .services.submission import statements_submit
from .signals.parse import parse_match_queries
from .visibility import Viewer


class StatementOutputSerializer(serializers.ModelSerializer):
    member = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    statement = serializers.CharField(source="raw")
    statement_truncated = serializers.SerializerMethodField(
        help_text="True when `statement` is only the start of the JWS received: a statement that no active key of "
                  "yours signed (rejected with a key code or signature_invalid) keeps its first 1024 characters.")
    labels = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    incident = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    signals = SignalsField(read_only=True)
    target = TargetField(read_only=True)
    reasons = ReasonsField(read_only=True)
    share = serializers.SerializerMethodField()
    retracts = serializers.SerializerMethodField()
    superseded = serializers.SerializerMethodField(
        help_text="Hash statements: the hashes on which a later statement of yours with the same share replaced "
                  "this one (one live assertion per member, hash and share), by which statement and when.")

    class Meta:
        model = Statement
        fields = [
            "id", "jti", "kind", "state", "rejection_code", "rejection_message", "member", "statement",
            "statement_truncated",
            "received_at", "verified_at", "published_at", "retracted_at", "content_type", "signals",
            "labels", "incident", "share", "retracts", "target", "verdict", "reasons", "superseded",
        ]

    def get_statement_truncated(self, obj: Statement) -> bool:
        return obj.size is not None and len(obj.raw) < obj.size

    def get_share(self, obj: Statement) -> str | None:
        if obj.state in (Statement.State.RECEIVED, Statement.State.REJECTED):
            return None
        return obj.share_group.slug if obj.share_group_id else "consortium"

    def get_retracts(self, obj: Statement) -> str | None:
        return str(obj.retracts_id) if obj.retracts_id else None

    @extend_schema_field(SupersededSerializer(many=True))
    def get_superseded(self, obj: Statement) -> list[dict[str, Any]]:
        rows = getattr(obj, "superseded_rows", None)
        if rows is None:
            rows = superseded_rows(obj)
        return [{"hash": row.hash_id, "by": str(row.superseded_by_id), "at": row.retracted_at.isoformat()}
                for row in rows]


class AcceptedSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    id = serializers.CharField()
    jti = serializers.CharField()
    state = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class RejectedSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    error = ErrorSerializer()


class StatementPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = StatementOutputSerializer(many=True)


class StatementsApi(APIView):
    """POST: submit 1 to SUBMIT_MAX_STATEMENTS signed statements. GET: the member's own statements."""

    required_scope = {"GET": "read", "POST": "submit"}
    renderer_classes = [FastJSONRenderer]  # an answer of 500 accepted statements, thousands a second

    class InputSerializer(serializers.Serializer):
        statements = serializers.ListField(
            child=serializers.CharField(max_length=settings.STATEMENT_MAX_BYTES), min_length=1,
            max_length=settings.SUBMIT_MAX_STATEMENTS,
            help_text="Signed statements (JWS compact serialization); more answer 413 too_many_statements.")

        class Meta:
            ref_name = "StatementSubmission"

    class OutputSerializer(serializers.Serializer):
        accepted = AcceptedSerializer(many=True)
        rejected = RejectedSerializer(many=True)

        class Meta:
            ref_name = "SubmitResult"

    @extend_schema(request=InputSerializer, responses={202: OutputSerializer}, summary="Submit signed statements",
                   operation_id="statements_submit", tags=["statements"])
    def post(self, request):
        data = request.data
        statements = data.get("statements") if isinstance(data, dict) else None
        if not isinstance(statements, list):
            raise DomainError("statements_missing", 'The body must be {"statements": ["<jws>", ...]}.')
        if not statements:
            raise DomainError("statements_empty", "Send at least one statement.")
        limit = settings.SUBMIT_MAX_STATEMENTS
        if len(statements) > limit:
            raise DomainError("too_many_statements", f"Send at most {limit} statements per request.",
                              {"max": limit, "received": len(statements)}, status=413)
        result = statements_submit(member=request.user.member, statements=statements)
        transaction.on_commit(partial(tasks.enqueue_verification, result.to_verify, fast=result.fast))
        return Response({"accepted": result.accepted, "rejected": result.rejected}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[OpenApiParameter("state", str, enum=Statement.State.values),
                    OpenApiParameter("limit", int, description=f"At most {Pagination.max_limit} (more are served as "
                                     f"{Pagination.max_limit}); default {Pagination.default_limit}."),
                    OpenApiParameter("offset", int)],
        responses=StatementPageSerializer, summary="The calling member's statements, newest first",
        operation_id="statements_list", tags=["statements"],
    )
    def get(self, request):
        state = request.query_params.get("state")
        if state and state not in Statement.State.values:
            raise DomainError("validation_error", f"state must be one of {', '.join(Statement.State.values)}.")
        paginator = Pagination()
        page = paginator.paginate_queryset(
            with_superseded(statement_list(member=request.user.member, state=state)
                            .select_related("member", "incident", "share_group").prefetch_related("labels")),
            request, view=self,
        )
        return paginator.get_paginated_response(StatementOutputSerializer(page, many=True).data)


class StatementDetailApi(APIView):
    required_scope = "read"

    @extend_schema(responses=StatementOutputSerializer, summary="One of the calling member's statements",
                   operation_id="statements_read", tags=["statements"])
    def get(self, request, statement_id):
        statement = statement_get(member=request.user.member, statement_id=statement_id)
        return Response(StatementOutputSerializer(statement).data)


class HashDetailApi(APIView):
    required_scope = "read"

    @extend_schema(responses=HashDetailSerializer, summary="A hash, as its visible statements describe it",
                   operation_id="hashes_read", tags=["hashes"])
    def get(self, request, hash_id: int):
        return Response(hash_detail(viewer=Viewer.for_client(request.user), hash_id=hash_id))


class HashStatementsApi(APIView):
    """Every live statement of a hash the member may see, paged: a hash view carries only some of
    them (HASH_MAX_STATEMENTS) and counts the rest in `statements_omitted`."""

    required_scope = "read"

    class InputSerializer(serializers.Serializer):
        offset = PositionField(default=0)
        limit = serializers.IntegerField(min_value=1, max_value=100, default=20)

        class Meta:
            ref_name = "HashStatementsQuery"

    class OutputSerializer(serializers.Serializer):
        statements = HashStatementSerializer(many=True)
        next_offset = serializers.IntegerField(allow_null=True)

        class Meta:
            ref_name = "HashStatementsPage"

    @extend_schema(parameters=[InputSerializer], responses=OutputSerializer, summary="A hash's signed statements, paged",
                   operation_id="hashes_statements_list", tags=["hashes"])
    def get(self, request, hash_id: int):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        return Response(hash_statements(viewer=Viewer.for_client(request.user), hash_id=hash_id,
                                        **params.validated_data))


class MatchRequestSerializer(serializers.Serializer):
    signals = serializers.ListField(child=MatchSignalSerializer(), min_length=1, max_length=settings.MATCH_MAX_QUERIES)
    exclude_disputed = serializers.BooleanField(
        required=False, help_text="Leave out hashes with an open dispute you can see (default false).")

    class Meta:
        ref_name = "MatchSignals"


class SignalListSerializer(serializers.Serializer):
    signals = SignalSerializer(many=True)

    class Meta:
        ref_name = "SignalList"


class MediaUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text=f"An image or a video, at most {settings.MEDIA_MAX_BYTES} bytes "
                                           "(413 media_too_large beyond).")

    class Meta:
        ref_name = "MediaUpload"


class MatchUploadSerializer(MediaUploadSerializer):
    exclude_disputed = serializers.BooleanField(required=False)

    class Meta:
        ref_name = "MatchUpload"


class MatchApi(APIView):
    """Match signals (JSON) or an uploaded image or video (multipart `file`) against every hash
    visible to the member."""

    required_scope = "match"
    parser_classes = [BoundedJSONParser, MultiPartParser]
    renderer_classes = [FastJSONRenderer]

    def get_throttles(self):
        # A file sent here is hashed in the request, as by POST hash/: it counts as media too.
        throttles = super().get_throttles()
        if is_multipart(self.request):
            throttles.append(TokenRateThrottle("media"))
        return throttles

    class OutputSerializer(serializers.Serializer):
        results = MatchResultSerializer(many=True, help_text="One per query, in query order.")
        truncated = serializers.BooleanField(help_text="Matches were left out to keep the answer within "
                                                       "MATCH_MAX_RESPONSE_BYTES.")

        class Meta:
            ref_name = "MatchResults"

    @extend_schema(request={"application/json": MatchRequestSerializer, "multipart/form-data": MatchUploadSerializer},
                   responses=OutputSerializer, summary="Match signals or a media file", operation_id="match",
                   tags=["matching"])
    @timed_match
    def post(self, request):
        if request.content_type.startswith("multipart/"):
            raw = upload_signals(request.FILES.get("file"))
            exclude = {"true": True, "false": False}.get(request.data.get("exclude_disputed", "false"))
        else:
            raw = request.data.get("signals") if isinstance(request.data, dict) else None
            exclude = request.data.get("exclude_disputed", False) if isinstance(request.data, dict) else False
        if not isinstance(exclude, bool):
            raise DomainError("exclude_disputed_invalid", "exclude_disputed is true or false.")
        queries = parse_match_queries(raw, max_queries=settings.MATCH_MAX_QUERIES,
                                      max_distance=settings.MATCH_MAX_DISTANCE, max_frames=settings.VPDQ_MAX_FRAMES)
        return Response(match_signals(viewer=Viewer.for_client(request.user), queries=queries,
                                      exclude_disputed=exclude))


class MediaHashApi(APIView):
    """The signals of an uploaded image (PDQ) or video (vPDQ), plus MD5 and SHA-256. Nothing is kept."""

    required_scope = "match"
    throttle_scope = "media"
    parser_classes = [MultiPartParser]

    @extend_schema(request={"multipart/form-data": MediaUploadSerializer}, responses=SignalListSerializer,
                   summary="Hash an image or a video", operation_id="media_hash", tags=["matching"])
    def post(self, request):
        return Response({"signals": upload_signals(request.FILES.get("file"))})


class FeedApi(APIView):
    required_scope = "read"
    renderer_classes = [FastJSONRenderer]  # pages of up to FEED_MAX_LIMIT events, read as they are published

    class InputSerializer(serializers.Serializer):
        after = PositionField(default=0)
        limit = serializers.IntegerField(min_value=1, required=False)

        class Meta:
            ref_name = "FeedQuery"

    class OutputSerializer(serializers.Serializer):
        events = FeedEventSerializer(many=True)
        next_after = serializers.IntegerField()
        has_more = serializers.BooleanField()

        class Meta:
            ref_name = "FeedPage"

    class DocumentedQuery(InputSerializer):
        """The query as the schema states it: a larger limit is served as FEED_MAX_LIMIT."""

        limit = serializers.IntegerField(
            min_value=1, max_value=settings.FEED_MAX_LIMIT, required=False,
            help_text=f"Events per page (default {settings.FEED_DEFAULT_LIMIT}).")

        class Meta:
            ref_name = "FeedQuery"

    @extend_schema(
        parameters=[DocumentedQuery], responses=OutputSerializer, summary="The ordered event feed", operation_id="feed_read", tags=["feed"])
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        limit = min(params.validated_data.get("limit", settings.FEED_DEFAULT_LIMIT), settings.FEED_MAX_LIMIT)
        page = feed_page(viewer=Viewer.for_client(request.user), after=params.validated_data["after"], limit=limit)
        return Response(page)


class DisputeListApi(APIView):
    """Disputes on hashes you can see, that you may see: opened by a statement visible to you, or by
    the suppression list. Oldest first; `after` is the last id of the previous page."""

    required_scope = "read"

    class InputSerializer(serializers.Serializer):
        after = PositionField(default=0)
        limit = serializers.IntegerField(min_value=1, max_value=500, default=100)
        state = serializers.ChoiceField(choices=Dispute.State.values, required=False)

        class Meta:
            ref_name = "DisputeQuery"

    class OutputSerializer(serializers.Serializer):
        disputes = DisputeSerializer(many=True)
        next_after = serializers.IntegerField(allow_null=True)

        class Meta:
            ref_name = "DisputePage"

    @extend_schema(parameters=[InputSerializer], responses=OutputSerializer, summary="Disputes you can see",
                   operation_id="disputes_list", tags=["disputes"])
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        return Response(dispute_list(viewer=Viewer.for_client(request.user), **params.validated_data))
