"""The webhook bodies (distribution.rendering), described for the OpenAPI schema's `webhooks`
(SPECTACULAR_SETTINGS["WEBHOOKS"]): what a subscription's receiver is sent. Documentation only."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, OpenApiWebhook, extend_schema
from rest_framework import serializers

from hashes.schemas import FeedEventSerializer

from .models import Delivery, Subscription

SIGNATURE_HEADERS = (
    "Headers (Standard Webhooks): `webhook-id` (the same on every retry of a batch), `webhook-timestamp` "
    "(unix seconds of this attempt) and `webhook-signature`: space-separated `v1,<base64 HMAC-SHA256 with each "
    "active whsec_ secret>` and `v1a,<base64 Ed25519 with each server key of /.well-known/jwks.json>`, over "
    "`{webhook-id}.{webhook-timestamp}.{body}` (the raw body bytes)."
)


class WebhookBatchSerializer(serializers.Serializer):
    lane = serializers.ChoiceField([Delivery.Lane.MAIN.value, Delivery.Lane.PRIORITY.value],
                                   help_text="priority: an incident's events pushed at once; they come again on main.")
    first_seq = serializers.IntegerField(min_value=1)
    last_seq = serializers.IntegerField(min_value=1)
    count = serializers.IntegerField(min_value=1)
    events = FeedEventSerializer(many=True, help_text="Feed events in seq order, as GET feed/ gives them to you.")

    class Meta:
        ref_name = "WebhookBatch"


class WebhookEventsSerializer(serializers.Serializer):
    type = serializers.ChoiceField(["hash.events"])
    timestamp = serializers.DateTimeField(help_text="When the batch's last event occurred (a retry sends the same bytes).")
    data = WebhookBatchSerializer()

    class Meta:
        ref_name = "WebhookEvents"


class WebhookPingDataSerializer(serializers.Serializer):
    subscription = serializers.UUIDField()

    class Meta:
        ref_name = "WebhookPingData"


class WebhookPingSerializer(serializers.Serializer):
    type = serializers.ChoiceField(["ping"])
    timestamp = serializers.DateTimeField()
    data = WebhookPingDataSerializer()

    class Meta:
        ref_name = "WebhookPing"


RECEIVER_ANSWERS = {
    "2XX": OpenApiResponse(description="Acknowledged: the subscription's cursor moves past the batch."),
    "410": OpenApiResponse(description="Gone: the subscription is disabled at once (endpoint_gone)."),
    "429": OpenApiResponse(description="Retried, never sooner than the `Retry-After` header says (so is 503)."),
}

hash_events = OpenApiWebhook(
    name="hash.events",
    decorator=extend_schema(
        summary="A batch of feed events for a subscription",
        description=(
            f"POSTed to the subscription's URL, one batch in flight at a time, at most {settings.WEBHOOK_BATCH_SIZE} "
            f"consecutive seqs and about {settings.WEBHOOK_MAX_BATCH_BYTES} bytes. Any 2xx acknowledges; anything "
            "else (a redirect, a timeout) is retried with backoff and the subscription is disabled when the retries "
            f"run out. {SIGNATURE_HEADERS}"
        ),
        request=WebhookEventsSerializer,
        responses=RECEIVER_ANSWERS,
    ),
)

ping = OpenApiWebhook(
    name="ping",
    decorator=extend_schema(
        summary="A test ping (POST subscriptions/{id}/test/)",
        description=f"Signed like every delivery. {SIGNATURE_HEADERS}",
        request=WebhookPingSerializer,
        responses={"2XX": OpenApiResponse(description="Received.")},
    ),
)


# Choice sets named in the schema (SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]).
SUBSCRIPTION_STATES = Subscription.State.values
SUBSCRIPTION_STATE_REASONS = Subscription.Reason.values
DELIVERY_LANES = Delivery.Lane.values
DELIVERY_STATES = Delivery.State.values
WEBHOOK_LANES = [Delivery.Lane.MAIN.value, Delivery.Lane.PRIORITY.value]
