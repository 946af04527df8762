from __future__ import annotations

from django.contrib import admin

from consortium.admin_tools import ReadOnlyAdmin, SlugFixedAdmin

from .models import Corroboration, Event, Hash, Incident, Label, Statement
from .services.taxonomy import incident_close


@admin.register(Label)
class LabelAdmin(SlugFixedAdmin):
    list_display = ["slug", "name", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["slug", "name"]

    def has_delete_permission(self, request, obj=None):
        return False  # published statements carry their labels for good; deactivate a label instead


@admin.register(Incident)
class IncidentAdmin(SlugFixedAdmin):
    list_display = ["slug", "name", "state", "declared_at", "closed_at"]
    list_filter = ["state"]
    search_fields = ["slug", "name"]
    readonly_fields = ["state", "declared_at", "closed_at"]
    actions = ["close"]

    # Declaring an incident puts its statements ahead of everyone else's, so declaring, closing and
    # deleting one each need manage_incident on top of Django's own permission.
    def has_manage_incident_permission(self, request) -> bool:
        return request.user.has_perm("hashes.manage_incident")

    def has_add_permission(self, request):
        return super().has_add_permission(request) and self.has_manage_incident_permission(request)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self.has_manage_incident_permission(request)

    @admin.action(description="Close selected incidents", permissions=["manage_incident"])
    def close(self, request, queryset):
        for incident in queryset:
            incident_close(incident=incident, actor=request.user)


@admin.register(Statement)
class StatementAdmin(ReadOnlyAdmin):
    list_display = ["id", "member", "jti", "kind", "state", "rejection_code", "priority", "received_at", "published_at"]
    list_filter = ["state", "kind", "rejection_code", "priority", "member"]
    search_fields = ["jti", "id", "member__slug"]
    date_hierarchy = "received_at"
    list_select_related = ["member"]
    readonly_fields = [f.name for f in Statement._meta.fields] + ["labels"]


class CorroborationInline(admin.TabularInline):
    model = Corroboration
    fields = ["statement", "member", "distance", "created_at", "retracted_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Hash)
class HashAdmin(ReadOnlyAdmin):
    list_display = ["id", "signal_type", "value", "cluster", "state", "created_at", "updated_at"]
    list_filter = ["signal_type", "state"]
    search_fields = ["value"]
    readonly_fields = [f.name for f in Hash._meta.fields]
    inlines = [CorroborationInline]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["seq", "type", "hash", "occurred_at", "cause"]
    list_filter = ["type"]
    readonly_fields = [f.name for f in Event._meta.fields]
