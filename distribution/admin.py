"""Subscriptions and their delivery health for administrators: last success, last error, events
waiting after the cursor, attempts of the batch in flight; actions to re-enable, pause and replay.
Every action goes through a service and is audited. Secrets are never shown."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import F, IntegerField, OuterRef, Subquery, Value
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from consortium.admin_tools import ConsortiumAdmin, ReadOnlyAdmin
from consortium.api.errors import CodedError
from hashes.services.feed import feed_head
from members.admin import token_label

from . import tasks
from .models import Delivery, DeliveryAttempt, Subscription
from .services.subscriptions import (
    subscription_delete, subscription_replay, subscription_set_state, url_for_display,
)

RECENT_DELIVERIES = 10


class ReplayForm(forms.Form):
    from_seq = forms.IntegerField(min_value=1, help_text="Send every event from this feed seq on again.")


@admin.register(Subscription)
class SubscriptionAdmin(ConsortiumAdmin):
    list_display = ["__str__", "member", "target", "token", "state", "state_reason", "cursor", "backlog",
                    "last_success_at", "last_error", "in_flight_failures", "next_attempt_at"]
    list_filter = ["state", "state_reason", "member"]
    # not url: a search would reveal its query secrets
    search_fields = ["id", "member__slug", "description", "set_by_token__prefix"]
    list_select_related = ["member", "set_by_token"]
    actions = ["reenable", "pause", "replay"]
    fields = ["member", "target", "token", "description", "state", "state_reason", "state_changed_at", "cursor",
              "backlog",
              "signal_types", "labels", "incident_only", "min_corroboration", "include_retractions",
              "exclude_disputed",
              "last_success_at", "last_error", "in_flight_failures", "next_attempt_at", "secret_rotated_at",
              "previous_secret_expires_at", "created_at", "updated_at", "recent_deliveries"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False  # members subscribe through the API, which validates the URL and shows the secret once

    def has_change_permission(self, request, obj=None):
        return False  # changes go through the actions below, each a service that audits it

    def get_queryset(self, request):
        pending = Delivery.objects.filter(subscription=OuterRef("pk"), lane=Delivery.Lane.MAIN,
                                          state=Delivery.State.PENDING)
        return super().get_queryset(request).annotate(
            events_waiting=Value(feed_head(), output_field=IntegerField()) - F("cursor"),
            pending_failures=Subquery(pending.values("failures")[:1]),
            pending_next=Subquery(pending.values("next_attempt_at")[:1]),
        )

    @admin.display(description="URL (secrets hidden)")
    def target(self, obj: Subscription) -> str:
        return url_for_display(obj.url)

    @admin.display(description="set by token", ordering="set_by_token__prefix")
    def token(self, obj: Subscription) -> str:
        return token_label(obj.set_by_token)

    @admin.display(description="backlog (events after cursor)", ordering="events_waiting")
    def backlog(self, obj: Subscription) -> int:
        return max(0, obj.events_waiting)

    @admin.display(description="last error")
    def last_error(self, obj: Subscription) -> str:
        if not obj.last_error_at:
            return "-"
        status = f" HTTP {obj.last_error_status}" if obj.last_error_status else ""
        return f"{obj.last_error_at:%Y-%m-%d %H:%M:%S} {obj.last_error_code}{status}: {obj.last_error_message}"

    @admin.display(description="failed attempts of the batch in flight")
    def in_flight_failures(self, obj: Subscription) -> int | str:
        return "-" if obj.pending_failures is None else obj.pending_failures

    @admin.display(description="next attempt")
    def next_attempt_at(self, obj: Subscription):
        return obj.pending_next or "-"

    @admin.display(description="recent deliveries")
    def recent_deliveries(self, obj: Subscription) -> str:
        rows = Delivery.objects.filter(subscription=obj).order_by("-id")[:RECENT_DELIVERIES]
        return format_html(
            "<table><tr><th>webhook-id</th><th>lane</th><th>state</th><th>seqs</th><th>attempts</th>"
            "<th>last status</th><th>last error</th><th>created</th></tr>{}</table>",
            format_html_join("", "<tr><td><a href='{}'>{}</a></td><td>{}</td><td>{}</td><td>{}-{}</td><td>{}</td>"
                             "<td>{}</td><td>{}</td><td>{}</td></tr>", (
                (reverse("admin:distribution_delivery_change", args=[d.pk]), d.webhook_id, d.lane, d.state,
                 d.first_seq or "", d.last_seq or "", d.attempt_count, d.last_status or "", d.last_error or "",
                 f"{d.created_at:%Y-%m-%d %H:%M:%S}") for d in rows)),
        )

    def _each(self, request, queryset, change) -> None:
        for subscription in queryset:
            try:
                tasks.dispatch_if_active(change(subscription))
            except CodedError as exc:
                self.message_user(request, f"{subscription}: {exc.message}", level=messages.ERROR)

    def has_manage_subscription_permission(self, request) -> bool:
        return request.user.has_perm("distribution.manage_subscription")

    # Deleting a member's subscription stops its deliveries for good: manage_subscription on top of
    # Django's own permission, as pausing and replaying need.
    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self.has_manage_subscription_permission(request)

    @admin.action(description="Re-enable (or resume) selected subscriptions: delivery resumes from the cursor",
                  permissions=["manage_subscription"])
    def reenable(self, request, queryset):
        self._each(request, queryset, lambda s: subscription_set_state(
            subscription=s, state=Subscription.State.ACTIVE, actor=request.user))

    @admin.action(description="Pause selected subscriptions", permissions=["manage_subscription"])
    def pause(self, request, queryset):
        self._each(request, queryset, lambda s: subscription_set_state(
            subscription=s, state=Subscription.State.PAUSED, actor=request.user))

    @admin.action(description="Replay selected subscriptions from a feed seq", permissions=["manage_subscription"])
    def replay(self, request, queryset):
        form = ReplayForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            from_seq = form.cleaned_data["from_seq"]
            self._each(request, queryset, lambda s: subscription_replay(
                subscription=s, from_seq=from_seq, actor=request.user))
            self.message_user(request, f"Replay from seq {from_seq} requested.")
            return None
        context = {**self.admin_site.each_context(request), "title": "Replay subscriptions", "form": form,
                   "subscriptions": queryset, "opts": self.model._meta,
                   "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME}
        return TemplateResponse(request, "admin/distribution/subscription/replay.html", context)

    def delete_model(self, request, obj):
        subscription_delete(subscription=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for subscription in queryset:
            subscription_delete(subscription=subscription, actor=request.user)


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ["number", "started_at", "duration_ms", "status", "error", "detail", "retry_after", "next_attempt_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["webhook_id", "subscription", "lane", "state", "first_seq", "last_seq", "event_count",
                    "attempt_count", "failures", "last_status", "last_error", "next_attempt_at", "created_at",
                    "finished_at"]
    list_filter = ["lane", "state", "last_error"]
    search_fields = ["webhook_id", "subscription__id", "subscription__member__slug"]
    list_select_related = ["subscription__member"]
    readonly_fields = [f.name for f in Delivery._meta.fields]
    inlines = [DeliveryAttemptInline]
