"""Admin building blocks shared by the apps: every change made in the admin lands in the audit trail."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin import widgets
from django.contrib.admin.filters import SimpleListFilter
from django.db.models.constants import LOOKUP_SEP
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


class ConsortiumAdmin(admin.ModelAdmin):
    """The base of every ModelAdmin here: a changelist filters by query string only on what its
    list_filter and date_hierarchy offer. Django lets through any lookup on a model's own fields, so
    `?url__contains=token%3Da` on a field the admin masks, or never shows, answers by its row count
    whether a guess is right: a staff user with only view permission read webhook URLs' secrets and
    members' media hashes that way."""

    def lookup_allowed(self, lookup, value, request=None):
        if not super().lookup_allowed(lookup, value, request):
            return False
        for fk_lookup in self.model._meta.related_fkey_lookups:  # a raw-id popup's own choices
            choices = fk_lookup() if callable(fk_lookup) else fk_lookup
            if (lookup, value) in widgets.url_params_from_lookup_dict(choices).items():
                return True
        offered = {self.date_hierarchy} - {None}
        for item in self.get_list_filter(request) if request is not None else self.list_filter:
            if isinstance(item, type) and issubclass(item, SimpleListFilter):
                offered.add(item.parameter_name)
            else:
                offered.add(item[0] if isinstance(item, (list, tuple)) else item)
        return any(lookup == name or lookup.startswith(name + LOOKUP_SEP) for name in offered)


class AuditedAdmin(ConsortiumAdmin):
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


class ReadOnlyAdmin(ConsortiumAdmin):
    """For records the pipeline writes: administrators inspect them, never edit them by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
