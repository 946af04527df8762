"""The shapes the hash views answer as plain dicts (hashes.selectors), described for the OpenAPI
schema only: no view renders through these serializers, so what they say must follow the selectors
(tests/openapi check every answer of a live server against them)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from members.models import Member

from .models import Dispute, Event, Hash, SignalType, Statement

HEX = r"^[0-9a-f]+$"


class VpdqFrameSerializer(serializers.Serializer):
    i = serializers.IntegerField(min_value=0, help_text="Frame index.")
    t = serializers.FloatField(min_value=0, help_text="Seconds from the start.")
    pdq = serializers.RegexField(r"^[0-9a-f]{64}$", help_text="The frame's PDQ, 64 hex digits.")
    q = serializers.IntegerField(min_value=0, max_value=100, help_text="The frame's PDQ quality.")

    class Meta:
        ref_name = "VpdqFrame"


class SignalSerializer(serializers.Serializer):
    """One signal, as statements carry them and `POST hash/` computes them."""

    type = serializers.ChoiceField(SignalType.values)
    value = serializers.CharField(required=False, help_text="pdq: 64 hex digits; md5: 32; sha256: 64. Absent for vpdq.")
    quality = serializers.IntegerField(required=False, min_value=0, max_value=100, help_text="pdq only.")
    frames = VpdqFrameSerializer(many=True, required=False, help_text="vpdq only.")

    class Meta:
        ref_name = "Signal"


class MatchSignalSerializer(serializers.Serializer):
    """A match query: a signal in the statement shape (PDQ quality optional) and, per query, how near."""

    type = serializers.ChoiceField(SignalType.values)
    value = serializers.CharField(required=False, max_length=64,
                                  help_text="pdq: 64 hex digits; md5: 32; sha256: 64. Not for vpdq.")
    quality = serializers.IntegerField(required=False, min_value=0, max_value=100, help_text="pdq only; optional.")
    frames = serializers.ListField(child=VpdqFrameSerializer(), required=False, max_length=settings.VPDQ_MAX_FRAMES,
                                   help_text="vpdq only.")
    max_distance = serializers.IntegerField(
        required=False, min_value=0, max_value=settings.MATCH_MAX_DISTANCE,
        help_text=f"pdq only: the largest Hamming distance matched (default {settings.MATCH_DISTANCE}).")
    min_match_percent = serializers.FloatField(
        required=False, min_value=0, max_value=100,
        help_text=f"vpdq only: the smallest match percentage (default {settings.VPDQ_CLUSTER_PERCENT}).")

    class Meta:
        ref_name = "MatchSignal"


class HashLinkSerializer(serializers.Serializer):
    hash = serializers.IntegerField(help_text="The linked hash's id.")
    distance = serializers.IntegerField(required=False, help_text="PDQ links.")
    query_match_percent = serializers.FloatField(required=False, help_text="vPDQ links.")
    stored_match_percent = serializers.FloatField(required=False, help_text="vPDQ links.")

    class Meta:
        ref_name = "HashLink"


class SubmitterSerializer(serializers.Serializer):
    member = serializers.CharField(help_text="The member's slug.")
    kind = serializers.ChoiceField(Member.Kind.values)

    class Meta:
        ref_name = "Submitter"


class FeedbackCountsSerializer(serializers.Serializer):
    agree = serializers.IntegerField(min_value=0)
    disagree = serializers.IntegerField(min_value=0)
    seen = serializers.IntegerField(min_value=0)

    class Meta:
        ref_name = "FeedbackCounts"


class HashDisputeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    state = serializers.ChoiceField(Dispute.State.values)
    opened_at = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(allow_null=True)
    reasons = serializers.ListField(child=serializers.CharField())
    resolution = serializers.CharField(allow_blank=True, help_text="Empty until resolved.")

    class Meta:
        ref_name = "HashDispute"


class HashViewSerializer(serializers.Serializer):
    """A hash as the reader's visible statements describe it: in feed events, match results,
    webhooks and `GET hashes/{id}/`."""

    id = serializers.IntegerField()
    signal_type = serializers.ChoiceField(SignalType.values)
    value = serializers.CharField(help_text="Lower-case hex; for vPDQ the SHA-256 of its frames' PDQs joined by "
                                            "newlines (what feedback targets).")
    frames = VpdqFrameSerializer(many=True, required=False, help_text="vPDQ only.")
    content_type = serializers.CharField(allow_blank=True, help_text="photo, video or file.")
    cluster = serializers.IntegerField(help_text="Its variant family.")
    previous_cluster = serializers.IntegerField(required=False, help_text="Feed events of a family merge only.")
    links = HashLinkSerializer(many=True)
    state = serializers.ChoiceField(Hash.State.values)
    labels = serializers.ListField(child=serializers.CharField())
    submitters = SubmitterSerializer(many=True)
    corroboration_count = serializers.IntegerField(min_value=0, help_text="Members, not statements.")
    statements = serializers.ListField(child=serializers.CharField(), help_text="Signed statements (JWS), one per "
                                       f"member, at most {settings.HASH_MAX_STATEMENTS} members.")
    statements_omitted = serializers.IntegerField(min_value=0, help_text="Live statements not carried here: "
                                                  "GET hashes/{id}/statements/ pages through them.")
    feedback = FeedbackCountsSerializer(help_text="Distinct members per verdict among the feedback you may see.")
    dispute = HashDisputeSerializer(allow_null=True)

    class Meta:
        ref_name = "HashView"


class CorroborationSerializer(serializers.Serializer):
    statement_id = serializers.UUIDField()
    member = serializers.CharField()
    distance = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    retracted_at = serializers.DateTimeField(allow_null=True, help_text="When it ended: retracted, or superseded.")
    superseded_by = serializers.UUIDField(
        allow_null=True, help_text="The member's later statement of the same hash and share that replaced this one "
                                   "(one live assertion per member, hash and share); null unless superseded.")

    class Meta:
        ref_name = "Corroboration"


class SupersededSerializer(serializers.Serializer):
    hash = serializers.IntegerField(help_text="The hash.")
    by = serializers.UUIDField(help_text="Your later statement that replaced this one on it.")
    at = serializers.DateTimeField()

    class Meta:
        ref_name = "Superseded"


class HashDetailSerializer(HashViewSerializer):
    created_at = serializers.DateTimeField(required=False)
    updated_at = serializers.DateTimeField(required=False)
    corroborations = CorroborationSerializer(
        many=True, required=False, help_text="The newest corroborations you may see, live or ended, oldest first "
                                             "(at most 100).")
    corroborations_omitted = serializers.IntegerField(
        min_value=0, required=False, help_text="Older corroborations you may see that are not listed.")

    class Meta:
        ref_name = "HashDetail"


class EventCauseSerializer(serializers.Serializer):
    member = serializers.CharField()
    kind = serializers.ChoiceField(Statement.Kind.values, help_text="The kind of the statement.")
    jti = serializers.CharField()
    statement = serializers.CharField(required=False, help_text="Its JWS, when not among the hash's statements.")

    class Meta:
        ref_name = "EventCause"


class FeedEventSerializer(serializers.Serializer):
    seq = serializers.IntegerField(min_value=1)
    id = serializers.UUIDField(help_text="Stable event id.")
    type = serializers.ChoiceField(Event.Type.values)
    occurred_at = serializers.DateTimeField()
    hash = HashViewSerializer()
    cause = EventCauseSerializer(required=False, help_text="The statement that caused the event, if you may see it.")

    class Meta:
        ref_name = "FeedEvent"


class HashStatementSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    member = serializers.CharField()
    kind = serializers.ChoiceField(Member.Kind.values, help_text="The member's kind.")
    statement = serializers.CharField(help_text="The JWS.")

    class Meta:
        ref_name = "HashStatement"


class MatchQueryEchoSerializer(serializers.Serializer):
    type = serializers.ChoiceField(SignalType.values)
    value = serializers.CharField(required=False, help_text="Not for vpdq.")
    frame_count = serializers.IntegerField(required=False, help_text="vpdq only.")
    max_distance = serializers.IntegerField(required=False)
    min_match_percent = serializers.FloatField(required=False)

    class Meta:
        ref_name = "MatchQueryEcho"


class MatchSerializer(serializers.Serializer):
    hash = HashViewSerializer()
    distance = serializers.IntegerField(required=False, help_text="pdq, md5, sha256.")
    query_match_percent = serializers.FloatField(required=False, help_text="vpdq.")
    stored_match_percent = serializers.FloatField(required=False, help_text="vpdq.")

    class Meta:
        ref_name = "Match"


class MatchResultSerializer(serializers.Serializer):
    query = MatchQueryEchoSerializer()
    matches = MatchSerializer(many=True, help_text="Nearest first.")
    truncated = serializers.BooleanField()

    class Meta:
        ref_name = "MatchResult"


class DisputeTargetSerializer(serializers.Serializer):
    type = serializers.ChoiceField(SignalType.values)
    value = serializers.CharField()

    class Meta:
        ref_name = "DisputeTarget"


class DisputeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    hash = serializers.IntegerField()
    target = DisputeTargetSerializer()
    state = serializers.ChoiceField(Dispute.State.values)
    opened_at = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(allow_null=True)
    reasons = serializers.ListField(child=serializers.CharField())
    resolution = serializers.CharField(allow_blank=True)
    labels = serializers.ListField(child=serializers.CharField(), allow_null=True,
                                   help_text="relabelled: the labels that replaced the hash's.")

    class Meta:
        ref_name = "Dispute"


@extend_schema_field(SignalSerializer(many=True, allow_null=True))
class SignalsField(serializers.JSONField):
    """A statement's stored signals, rendered as stored (a JSONField), described as signals."""


@extend_schema_field(DisputeTargetSerializer(allow_null=True))
class TargetField(serializers.JSONField):
    """A feedback statement's target, rendered as stored."""


@extend_schema_field(serializers.ListField(child=serializers.CharField()))
class ReasonsField(serializers.JSONField):
    """A feedback statement's reasons, rendered as stored."""


# Choice sets named in the schema (SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]): many fields are
# called `state`, `type` or `kind`, and each set deserves one stable component name.
SIGNAL_TYPES = SignalType.values
STATEMENT_KINDS = Statement.Kind.values
STATEMENT_STATES = Statement.State.values
HASH_STATES = Hash.State.values
DISPUTE_STATES = Dispute.State.values
EVENT_TYPES = Event.Type.values
