from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from consortium.admin_tools import ReadOnlyAdmin
from consortium.api.errors import CodedError

from .entries import ENTRY_TYPES, MAX_REASON_CHARS, EntryError, entry_row
from .files import FORMATS, FileRejected, guess_format
from .models import BenignEntry
from .services import benign_entries_add, benign_entries_set_active, benign_import

FIELD_OF_CODE = {"type_invalid": "signal_type", "value_invalid": "value", "reason_missing": "reason",
                 "reason_too_long": "reason"}


class EntryForm(forms.Form):
    signal_type = forms.ChoiceField(label="Type", choices=[(t, t) for t in ENTRY_TYPES])
    value = forms.CharField(max_length=64, help_text="Hex; a vPDQ video by its value digest (as in feedback targets).")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), max_length=MAX_REASON_CHARS,
                             help_text="Why it is benign (blank frame, logo, news footage...).")

    def clean(self):
        data = super().clean()
        if not self.errors:
            try:
                data["entry"] = entry_row(data["signal_type"], data["value"], data["reason"])
            except EntryError as exc:
                self.add_error(FIELD_OF_CODE.get(exc.code), f"{exc.code}: {exc.message}")
        return data


class ImportForm(forms.Form):
    file = forms.FileField(help_text="CSV with the columns type, value, reason; or a JSON array of "
                                     '{"type", "value", "reason"} objects.')
    format = forms.ChoiceField(choices=[("", "from the file's name or content"), *[(f, f) for f in FORMATS]],
                               required=False)


@admin.register(BenignEntry)
class BenignEntryAdmin(ReadOnlyAdmin):
    """Entries are added (one by one or from a file), deactivated and reactivated through the
    services, each step audited and each needing manage_benignentry; nothing edits or deletes one."""

    list_display = ["signal_type", "value", "short_reason", "active", "added_by_label", "added_at", "covered_at"]
    list_filter = ["active", "signal_type"]
    search_fields = ["value", "reason"]
    readonly_fields = [f.name for f in BenignEntry._meta.fields]
    actions = ["deactivate", "reactivate"]
    change_list_template = "admin/suppression/benignentry/change_list.html"

    @admin.display(description="reason")
    def short_reason(self, entry: BenignEntry) -> str:
        return entry.reason if len(entry.reason) <= 80 else f"{entry.reason[:79]}…"

    def has_manage_benignentry_permission(self, request) -> bool:
        return request.user.has_perm("suppression.manage_benignentry")

    def has_add_permission(self, request):
        return self.has_manage_benignentry_permission(request)

    def get_urls(self):
        own = [path("import/", self.admin_site.admin_view(self.import_view), name="suppression_benignentry_import")]
        return own + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_import": self.has_manage_benignentry_permission(request)}
        return super().changelist_view(request, extra_context)

    def page(self, request, template: str, title: str, **context) -> TemplateResponse:
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title, **context}
        return TemplateResponse(request, f"admin/suppression/benignentry/{template}", context)

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = EntryForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                result = benign_entries_add(entries=[form.cleaned_data["entry"]], actor=request.user)
            except CodedError as exc:
                form.add_error(None, f"{exc.code}: {exc.message}")
            else:
                level = messages.WARNING if result.unchanged else messages.SUCCESS
                self.message_user(request, "Already listed: nothing changed." if result.unchanged else result.summary(),
                                  level=level)
                return redirect(reverse("admin:suppression_benignentry_changelist"))
        return self.page(request, "add_entry.html", "Add a known-benign entry", form=form)

    def import_view(self, request):
        if not self.has_manage_benignentry_permission(request):
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        rejected: FileRejected | None = None
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            # One byte past the bound is enough to refuse the file as too large.
            data = upload.read(settings.BENIGN_IMPORT_MAX_BYTES + 1)
            fmt = form.cleaned_data["format"] or guess_format(upload.name, data)
            try:
                result = benign_import(data=data, fmt=fmt, actor=request.user, name=upload.name)
            except FileRejected as exc:
                rejected = exc
            except CodedError as exc:
                form.add_error(None, f"{exc.code}: {exc.message}")
            else:
                self.message_user(request, f"Imported {upload.name}: {result.summary()}.", level=messages.SUCCESS)
                return redirect(reverse("admin:suppression_benignentry_changelist"))
        return self.page(request, "import.html", "Import known-benign entries", form=form, rejected=rejected,
                         max_bytes=settings.BENIGN_IMPORT_MAX_BYTES, max_rows=settings.BENIGN_IMPORT_MAX_ROWS)

    @admin.action(description="Deactivate selected entries (statements asserting them are accepted again)",
                  permissions=["manage_benignentry"])
    def deactivate(self, request, queryset):
        changed = benign_entries_set_active(entry_ids=queryset.values_list("pk", flat=True), active=False,
                                            actor=request.user)
        self.message_user(request, f"{changed} entries deactivated.")

    @admin.action(description="Reactivate selected entries (disputes the live hashes they cover)",
                  permissions=["manage_benignentry"])
    def reactivate(self, request, queryset):
        changed = benign_entries_set_active(entry_ids=queryset.values_list("pk", flat=True), active=True,
                                            actor=request.user)
        self.message_user(request, f"{changed} entries reactivated.")
