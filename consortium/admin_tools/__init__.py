"""Admin building blocks shared by the apps: every change made in the admin lands in the audit trail."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.forms.models import model_to_dict

from audit.services import audit_record


def jsonable(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, (list, tuple, set)):
            out[key] = sorted(str(getattr(v, "pk", v)) for v in value)
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[key] = value
        else:
            out[key] = str(getattr(value, "pk", value))
    return out


class AuditedAdmin(admin.ModelAdmin):
    """Records who changed which fields from what to what, for adds, edits and deletions."""

    # Never copied into an audit record, whatever form they appear in.
    secret_fields = frozenset({"password", "password1", "password2"})

    def save_model(self, request, obj, form, change):
        fields = [f for f in (form.changed_data if change else form.fields) if f not in self.secret_fields]
        before = jsonable({f: form.initial.get(f) for f in fields}) if change else None
        super().save_model(request, obj, form, change)
        # Kept on the request, not on this ModelAdmin, which every thread of the server shares.
        request._pending_audit = (obj, fields, before, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj, fields, before, change = request._pending_audit
        after = jsonable({k: v for k, v in model_to_dict(obj).items() if k in fields})
        if not change or before != after:
            action = f"{obj._meta.model_name}.{'change' if change else 'create'}"
            audit_record(actor=request.user, action=action, obj=obj, before=before, after=after)

    def delete_model(self, request, obj):
        audit_record(actor=request.user, action=f"{obj._meta.model_name}.delete", obj=obj,
                     before=jsonable(model_to_dict(obj)))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


class SlugFixedAdmin(AuditedAdmin):
    """Slugs are names that signed statements use (`iss`, `labels`, `incident`, `share`): renaming
    one would reject statements in flight and make published ones disagree with their signature.
    They are set once, at creation, and so are the fields listed in `fixed_after_creation`."""

    fixed_after_creation: tuple[str, ...] = ("slug",)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return fields + [f for f in self.fixed_after_creation if f not in fields] if obj else fields


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records the pipeline writes: administrators inspect them, never edit them by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
