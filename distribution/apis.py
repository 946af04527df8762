"""Webhook subscriptions in the member API. A member sees and acts on its own subscriptions only;
anyone else's answer 404, as if they did not exist.

Every operation needs the `subscribe` scope: a subscription makes the server send requests to a URL
the member chooses, which a token that only reads the feed should not be able to do. Tokens issued
before this scope existed were given it with `read` (members migration 0002)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from consortium.api.errors import DomainError
from consortium.api.fields import BoundedListField, PositionField
from consortium.api.openapi import ERRORS
from hashes.models import SignalType
from hashes.services.feed import feed_head

from . import tasks
from .models import Delivery, Subscription
from .selectors import delivery_page, in_flight, subscription_get, subscription_list
from .services.subscriptions import (
    MAX_FILTER_ITEMS, subscription_create, subscription_delete, subscription_replay, subscription_test,
    subscription_update,
)

DELIVERIES_DEFAULT_LIMIT = 20
DELIVERIES_MAX_LIMIT = 100
UNKNOWN_FIELDS_SHOWN = 20


def refuse_unknown_fields(data: Any, serializer: serializers.Serializer) -> None:
    """A misspelt field would otherwise be ignored and the request answered as if it had worked."""
    unknown = sorted(str(name) for name in set(data) - set(serializer.fields)) if isinstance(data, dict) else []
    if unknown:
        shown = unknown[:UNKNOWN_FIELDS_SHOWN]
        raise DomainError("field_unknown", f"Unknown fields: {', '.join(shown)}.", {"unknown": shown})


class FiltersSerializer(serializers.Serializer):
    signal_types = BoundedListField(child=serializers.ChoiceField(SignalType.values), required=False,
                                    max_length=MAX_FILTER_ITEMS, help_text="Only these signal types; empty: all.")
    labels = BoundedListField(child=serializers.SlugField(), required=False, max_length=MAX_FILTER_ITEMS,
                              help_text="Only hashes with one of these labels; empty: all.")
    incident_only = serializers.BooleanField(required=False, help_text="Only events tied to an incident.")
    min_corroboration = serializers.IntegerField(min_value=1, max_value=1000, required=False,
                                                 help_text="Only hashes with at least this many visible statements.")
    include_retractions = serializers.BooleanField(required=False, help_text="Send hash.retracted (default true).")
    exclude_disputed = serializers.BooleanField(
        required=False, help_text="Hold back events of a hash while a dispute you can see is open on it (default "
                                  "false); the events opening and resolving the dispute, and retractions, still come.")

    class Meta:
        ref_name = "SubscriptionFilters"

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        if unknown:
            raise serializers.ValidationError({name: ["Unknown filter."] for name in unknown})
        return super().to_internal_value(data)


class LastErrorSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    code = serializers.CharField()
    status = serializers.IntegerField(allow_null=True)
    message = serializers.CharField()


class InFlightSerializer(serializers.Serializer):
    webhook_id = serializers.CharField()
    first_seq = serializers.IntegerField()
    last_seq = serializers.IntegerField()
    event_count = serializers.IntegerField()
    attempts = serializers.IntegerField(source="attempt_count")
    failures = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)


class SubscriptionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.CharField()
    description = serializers.CharField()
    filters = FiltersSerializer(source="*")
    state = serializers.ChoiceField(Subscription.State.values)
    state_reason = serializers.ChoiceField(Subscription.Reason.values, allow_blank=True,
        help_text="Why it is not active: member (you paused it), admin (an administrator paused it; only an "
                  "administrator can resume it), retries_exhausted or endpoint_gone (resume with state active), "
                  "token_revoked (the API token that set its URL was revoked; only an administrator can re-enable "
                  "it); empty when active.")
    state_changed_at = serializers.DateTimeField()
    cursor = serializers.IntegerField(help_text="The last feed seq acknowledged (or skipped as not for you).")
    backlog = serializers.SerializerMethodField(help_text="Feed events after the cursor (not all may be for you).")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    secret_rotated_at = serializers.DateTimeField(allow_null=True)
    previous_secret_expires_at = serializers.DateTimeField(allow_null=True)
    last_success_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.SerializerMethodField()
    in_flight = serializers.SerializerMethodField()

    class Meta:
        ref_name = "Subscription"

    def get_backlog(self, obj: Subscription) -> int:
        return max(0, self.context["head"] - obj.cursor)

    @extend_schema_field(LastErrorSerializer(allow_null=True))
    def get_last_error(self, obj: Subscription) -> dict[str, Any] | None:
        if not obj.last_error_at:
            return None
        return {"at": obj.last_error_at, "code": obj.last_error_code, "status": obj.last_error_status,
                "message": obj.last_error_message}

    @extend_schema_field(InFlightSerializer(allow_null=True))
    def get_in_flight(self, obj: Subscription) -> dict[str, Any] | None:
        delivery = in_flight(obj)
        return None if delivery is None else InFlightSerializer(delivery).data


class SubscriptionWithSecretSerializer(SubscriptionSerializer):
    secret = serializers.CharField(help_text="whsec_...: shown in this answer only.")

    class Meta:
        ref_name = "SubscriptionWithSecret"


class SubscriptionUpdatedSerializer(SubscriptionSerializer):
    secret = serializers.CharField(required=False, help_text="With rotate_secret only: the new whsec_ secret, "
                                                             "shown in this answer only.")

    class Meta:
        ref_name = "SubscriptionUpdated"


def subscription_body(subscription: Subscription, secret: str | None = None) -> dict[str, Any]:
    data = SubscriptionSerializer(subscription, context={"head": feed_head()}).data
    if secret is not None:
        data["secret"] = secret
    return data


class SubscriptionsApi(APIView):
    required_scope = "subscribe"

    class InputSerializer(serializers.Serializer):
        url = serializers.CharField(max_length=2000)
        description = serializers.CharField(max_length=200, required=False, allow_blank=True)
        filters = FiltersSerializer(required=False)
        after = PositionField(required=False,
                              help_text="Start after this feed seq (0: from the beginning); default: now.")

        class Meta:
            ref_name = "SubscriptionCreate"

    @extend_schema(responses=SubscriptionSerializer(many=True), summary="Your webhook subscriptions",
                   operation_id="subscriptions_list", tags=["subscriptions"])
    def get(self, request):
        head = feed_head()
        subscriptions = subscription_list(member=request.user.member)
        return Response(SubscriptionSerializer(subscriptions, many=True, context={"head": head}).data)

    @extend_schema(request=InputSerializer, responses={201: SubscriptionWithSecretSerializer, 409: ERRORS[409]},
                   summary="Subscribe a URL; the whsec_ secret is in this answer only",
                   operation_id="subscriptions_create", tags=["subscriptions"])
    def post(self, request):
        params = self.InputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        created = subscription_create(
            member=request.user.member, url=data["url"], description=data.get("description", ""),
            filters=data.get("filters", {}), after=data.get("after"), actor=request.user.member,
            token=request.user.token,
        )
        tasks.dispatch_if_active(created.subscription)
        return Response(subscription_body(created.subscription, created.secret), status=status.HTTP_201_CREATED)


class SubscriptionDetailApi(APIView):
    required_scope = "subscribe"

    class InputSerializer(serializers.Serializer):
        url = serializers.CharField(max_length=2000, required=False)
        description = serializers.CharField(max_length=200, required=False, allow_blank=True)
        filters = FiltersSerializer(required=False, help_text="The filters given replace those of the same name.")
        state = serializers.ChoiceField(["active", "paused"], required=False,
                                        help_text="paused: stop sending; active: resume, or re-enable a disabled one.")
        rotate_secret = serializers.BooleanField(required=False, help_text="Issue a new secret (in this answer only).")
        secret_overlap_seconds = serializers.IntegerField(
            min_value=0, max_value=7 * 86400, required=False,
            help_text="How long the old secret keeps signing beside the new one (default WEBHOOK_SECRET_OVERLAP_SECONDS).")

        class Meta:
            ref_name = "SubscriptionUpdate"

    @extend_schema(responses=SubscriptionSerializer, summary="One of your subscriptions, with its delivery health",
                   operation_id="subscriptions_read", tags=["subscriptions"])
    def get(self, request, subscription_id):
        return Response(subscription_body(subscription_get(member=request.user.member, subscription_id=subscription_id)))

    @extend_schema(request=InputSerializer, responses={200: SubscriptionUpdatedSerializer, 409: ERRORS[409]},
                   summary="Change, pause, resume or re-enable a subscription, or rotate its secret",
                   operation_id="subscriptions_update", tags=["subscriptions"],
                   description="Unknown fields are refused (400 field_unknown). A request that changes nothing "
                               "changes nothing, not even updated_at. 409 paused_by_admin: an administrator "
                               "paused this subscription, and only an administrator can resume it. 409 "
                               "disabled_by_token_revocation: the token that set its URL was revoked, and only an "
                               "administrator can re-enable it.")
    def patch(self, request, subscription_id):
        subscription = subscription_get(member=request.user.member, subscription_id=subscription_id)
        params = self.InputSerializer(data=request.data)
        refuse_unknown_fields(request.data, params)
        params.is_valid(raise_exception=True)
        updated = subscription_update(subscription=subscription, changes=dict(params.validated_data),
                                      actor=request.user.member, token=request.user.token)
        if updated.changed:
            tasks.dispatch_if_active(updated.subscription)
        return Response(subscription_body(updated.subscription, updated.secret))

    @extend_schema(responses={204: None}, summary="Delete a subscription", operation_id="subscriptions_delete",
                   tags=["subscriptions"])
    def delete(self, request, subscription_id):
        subscription = subscription_get(member=request.user.member, subscription_id=subscription_id)
        subscription_delete(subscription=subscription, actor=request.user.member)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeliveryAttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    duration_ms = serializers.IntegerField()
    status = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(help_text="Empty when a 2xx acknowledged the delivery.")
    detail = serializers.CharField()
    retry_after = serializers.IntegerField(allow_null=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True)


class DeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Increases with each delivery; `before` in deliveries/ takes it.")
    webhook_id = serializers.CharField()
    lane = serializers.ChoiceField(Delivery.Lane.values, help_text="main, priority (incident push) or test (ping)")
    state = serializers.ChoiceField(Delivery.State.values)
    first_seq = serializers.IntegerField(allow_null=True)
    last_seq = serializers.IntegerField(allow_null=True)
    event_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    failures = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    attempts = DeliveryAttemptSerializer(many=True, source="attempts.all")

    class Meta:
        ref_name = "Delivery"


class DeliveryPageSerializer(serializers.Serializer):
    deliveries = DeliverySerializer(many=True)
    next_before = serializers.IntegerField(
        allow_null=True, help_text="Ask again with before=this for older deliveries; null: there are none.")

    class Meta:
        ref_name = "DeliveryPage"


class SubscriptionDeliveriesApi(APIView):
    required_scope = "subscribe"

    class InputSerializer(serializers.Serializer):
        limit = serializers.IntegerField(min_value=1, max_value=DELIVERIES_MAX_LIMIT, default=DELIVERIES_DEFAULT_LIMIT)
        before = PositionField(min_value=1, required=False,
                               help_text="Only deliveries older than this one (its id): next_before.")

        class Meta:
            ref_name = "DeliveriesQuery"

    @extend_schema(parameters=[InputSerializer], responses=DeliveryPageSerializer,
                   summary="Deliveries of a subscription, newest first, with every attempt",
                   operation_id="subscriptions_deliveries_list", tags=["subscriptions"],
                   description="Page back through the history by asking again with before=next_before until "
                               "next_before is null. Pages do not shift while new deliveries are made; "
                               "deliveries older than WEBHOOK_RETENTION_DAYS are pruned.")
    def get(self, request, subscription_id):
        subscription = subscription_get(member=request.user.member, subscription_id=subscription_id)
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        page = delivery_page(subscription=subscription, limit=params.validated_data["limit"],
                             before=params.validated_data.get("before"))
        return Response(DeliveryPageSerializer(page).data)


class SubscriptionTestApi(APIView):
    required_scope = "subscribe"

    @extend_schema(request=None, responses={202: DeliverySerializer, 409: ERRORS[409]},
                   summary="Send a signed ping; its outcome appears in the subscription's deliveries",
                   operation_id="subscriptions_test", tags=["subscriptions"],
                   description="Whatever the subscription's state, so a receiver can be checked before resuming. "
                               "409 test_in_flight while an earlier ping waits to be sent.")
    def post(self, request, subscription_id):
        subscription = subscription_get(member=request.user.member, subscription_id=subscription_id)
        delivery = subscription_test(subscription=subscription, actor=request.user.member)
        transaction.on_commit(lambda: tasks.enqueue_push([delivery.pk]))
        delivery = Delivery.objects.prefetch_related("attempts").get(pk=delivery.pk)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class SubscriptionReplayApi(APIView):
    required_scope = "subscribe"

    class InputSerializer(serializers.Serializer):
        from_seq = PositionField(min_value=1, help_text="Send again every event from this seq on.")

        class Meta:
            ref_name = "SubscriptionReplay"

    @extend_schema(request=InputSerializer, responses={202: SubscriptionSerializer},
                   summary="Send events again from a feed seq on", operation_id="subscriptions_replay",
                   tags=["subscriptions"])
    def post(self, request, subscription_id):
        subscription = subscription_get(member=request.user.member, subscription_id=subscription_id)
        params = self.InputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        replayed = subscription_replay(subscription=subscription, from_seq=params.validated_data["from_seq"],
                                       actor=request.user.member)
        tasks.dispatch_if_active(replayed)
        return Response(subscription_body(replayed), status=status.HTTP_202_ACCEPTED)
