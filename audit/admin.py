from django.contrib import admin

from consortium.admin_tools import ReadOnlyAdmin

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor_label", "action", "object_type", "object_id", "object_repr"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_label", "object_id", "object_repr"]
    date_hierarchy = "at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
