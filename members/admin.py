from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from consortium.admin_tools import ConsortiumAdmin, SlugFixedAdmin
from consortium.api.errors import CodedError

from .models import ApiToken, Member, SharingGroup, SigningKey
from .services import key_register, key_set_state, member_set_status, token_create, token_revoke


class IssueTokenForm(forms.Form):
    name = forms.CharField(max_length=100, required=False)
    scopes = forms.MultipleChoiceField(choices=ApiToken.Scope.choices, widget=forms.CheckboxSelectMultiple,
                                       initial=[ApiToken.Scope.SUBMIT, ApiToken.Scope.READ, ApiToken.Scope.MATCH])
    expires_at = forms.DateTimeField(required=False, help_text="Optional, e.g. 2027-01-31 00:00")


class RegisterKeyForm(forms.Form):
    """A key registered here waits, pending, for another administrator to approve it."""

    jwk = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
                          help_text='The public JWK, e.g. {"kty":"OKP","crv":"Ed25519","x":"..."}')


class RevokeKeyForm(forms.Form):
    compromised_since = forms.DateTimeField(
        required=False, help_text="Optional, e.g. 2026-11-30 18:00 (UTC): withdraw only statements received from "
                                  "then on. Empty: withdraw everything the key signed.")


# The members credentials are made for: not the server's own row (services.refuse_the_server).
ONBOARDED = Member.objects.exclude(kind=Member.Kind.SERVER)


def token_label(token: ApiToken | None) -> str:
    """Which API token made something, as administrators see it: its public prefix and name, and
    whether it is revoked; "-" when an administrator or an operator made it."""
    if token is None:
        return "-"
    name = f" {token.name}" if token.name else ""
    return f"{token.prefix}{name}{' (revoked)' if token.revoked_at else ''}"


@admin.register(Member)
class MemberAdmin(SlugFixedAdmin):
    list_display = ["slug", "name", "kind", "status", "created_at"]
    list_filter = ["kind", "status"]
    search_fields = ["slug", "name"]
    actions = ["suspend", "reactivate"]
    readonly_fields = ["created_at"]
    # Status changes go through the audited suspend/reactivate actions.
    fixed_after_creation = ("slug", "kind", "status")

    def has_delete_permission(self, request, obj=None):
        return False  # suspend instead: statements, keys and tokens keep their member for the record
    change_form_template = "admin/members/member_change_form.html"

    def get_urls(self):
        own = [
            path("<int:member_id>/issue-token/", self.admin_site.admin_view(self.issue_token_view),
                 name="members_member_issue_token"),
            path("<int:member_id>/register-key/", self.admin_site.admin_view(self.register_key_view),
                 name="members_member_register_key"),
        ]
        return own + super().get_urls()

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "kind":  # "server" is the server itself, never a member one onboards
            kwargs["choices"] = [(k, label) for k, label in Member.Kind.choices if k in Member.MEMBER_KINDS]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def has_suspend_member_permission(self, request) -> bool:
        return request.user.has_perm("members.suspend_member")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_issue_token": request.user.has_perm("members.issue_token"),
                         "can_register_key": request.user.has_perm("members.add_signingkey")}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Suspend selected members (they can do nothing until reactivated)",
                  permissions=["suspend_member"])
    def suspend(self, request, queryset):
        for member in queryset.exclude(kind=Member.Kind.SERVER):
            member_set_status(member=member, status=Member.Status.SUSPENDED, actor=request.user)

    @admin.action(description="Reactivate selected members", permissions=["suspend_member"])
    def reactivate(self, request, queryset):
        for member in queryset.exclude(kind=Member.Kind.SERVER):
            member_set_status(member=member, status=Member.Status.ACTIVE, actor=request.user)

    def issue_token_view(self, request, member_id: int):
        if not request.user.has_perm("members.issue_token"):
            raise PermissionDenied
        member = get_object_or_404(ONBOARDED, pk=member_id)
        form = IssueTokenForm(request.POST or None)
        context = {**self.admin_site.each_context(request), "member": member, "form": form,
                   "title": f"Issue an API token for {member.slug}", "opts": self.model._meta}
        if request.method == "POST" and form.is_valid():
            issued = token_create(member=member, scopes=form.cleaned_data["scopes"], name=form.cleaned_data["name"],
                                  expires_at=form.cleaned_data["expires_at"], actor=request.user)
            # Rendered in this response only: never put in a message, a session or a log.
            context["plaintext"] = issued.plaintext
            response = TemplateResponse(request, "admin/members/issue_token.html", context)
            response["Cache-Control"] = "no-store"
            return response
        return TemplateResponse(request, "admin/members/issue_token.html", context)

    def register_key_view(self, request, member_id: int):
        if not request.user.has_perm("members.add_signingkey"):
            raise PermissionDenied
        member = get_object_or_404(ONBOARDED, pk=member_id)
        form = RegisterKeyForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                key = key_register(member=member, jwk=json.loads(form.cleaned_data["jwk"]), actor=request.user)
            except json.JSONDecodeError:
                form.add_error("jwk", "This is not JSON.")
            except CodedError as exc:
                form.add_error("jwk", f"{exc.code}: {exc.message}")
            else:
                messages.success(request, f"Key {key.kid} registered ({key.state}); another administrator approves it.")
                return redirect(reverse("admin:members_member_change", args=[member.pk]))
        context = {**self.admin_site.each_context(request), "member": member, "form": form,
                   "title": f"Register a signing key for {member.slug}", "opts": self.model._meta}
        return TemplateResponse(request, "admin/members/register_key.html", context)


@admin.register(ApiToken)
class ApiTokenAdmin(ConsortiumAdmin):
    list_display = ["prefix", "member", "name", "scopes", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["member", "revoked_at"]
    search_fields = ["prefix", "member__slug", "name"]
    readonly_fields = ["member", "prefix", "scopes", "created_at", "expires_at", "revoked_at", "last_used_at", "name"]
    exclude = ["digest"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # issued from the member's page (permission issue_token), where the secret is shown once

    def has_change_permission(self, request, obj=None):
        return False  # nothing on a token is edited by hand; revoking is an action

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead, so the record of the credential stays

    def has_revoke_token_permission(self, request) -> bool:
        return request.user.has_perm("members.revoke_token")

    @admin.action(description="Revoke selected tokens (also revokes the keys they registered that are still "
                              "pending and disables the subscriptions whose URL they set)",
                  permissions=["revoke_token"])
    def revoke(self, request, queryset):
        for token in queryset:
            token_revoke(token=token, actor=request.user)


@admin.register(SigningKey)
class SigningKeyAdmin(ConsortiumAdmin):
    list_display = ["kid", "member", "state", "registered_by", "token", "created_at", "state_changed_at"]
    list_filter = ["state", "member"]
    search_fields = ["kid", "member__slug", "registered_by_token__prefix"]
    list_select_related = ["member", "registered_by", "registered_by_token"]
    readonly_fields = ["member", "kid", "thumbprint", "public_key", "state", "registered_by", "token", "created_at",
                       "state_changed_at"]
    actions = ["approve", "retire", "revoke"]

    def has_add_permission(self, request):
        return False  # registered from the member's page, the API or `manage.py member key`

    @admin.display(description="registered with token", ordering="registered_by_token__prefix")
    def token(self, obj: SigningKey) -> str:
        return token_label(obj.registered_by_token)

    def has_change_permission(self, request, obj=None):
        return False  # a key's state moves only by the actions below, each with its own permission

    def has_approve_signingkey_permission(self, request) -> bool:
        return request.user.has_perm("members.approve_signingkey")

    def has_revoke_signingkey_permission(self, request) -> bool:
        return request.user.has_perm("members.revoke_signingkey")

    def has_delete_permission(self, request, obj=None):
        return False  # statements refer to keys for ever; revoke instead

    def _transition(self, request, queryset, state: str, **fields) -> None:
        for key in queryset:
            try:
                key_set_state(key=key, state=state, actor=request.user, **fields)
            except CodedError as exc:
                self.message_user(request, f"{key.kid}: {exc.message}", level=messages.ERROR)

    @admin.action(description="Approve selected pending keys (not those you registered)",
                  permissions=["approve_signingkey"])
    def approve(self, request, queryset):
        self._transition(request, queryset, SigningKey.State.ACTIVE)

    @admin.action(description="Retire selected keys (no new statements; old ones stay valid)",
                  permissions=["revoke_signingkey"])
    def retire(self, request, queryset):
        self._transition(request, queryset, SigningKey.State.RETIRED)

    @admin.action(description="Revoke selected keys (compromised)", permissions=["revoke_signingkey"])
    def revoke(self, request, queryset):
        """Asks first, for the time the key was compromised from (empty: everything it signed)."""
        form = RevokeKeyForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            self._transition(request, queryset, SigningKey.State.REVOKED,
                             compromised_since=form.cleaned_data["compromised_since"])
            return None
        context = {**self.admin_site.each_context(request), "title": "Revoke signing keys (compromised)",
                   "form": form, "keys": queryset, "opts": self.model._meta,
                   "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME}
        return TemplateResponse(request, "admin/members/signingkey/revoke.html", context)


@admin.register(SharingGroup)
class SharingGroupAdmin(SlugFixedAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    filter_horizontal = ["members"]
    readonly_fields = ["created_at"]
