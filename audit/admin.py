from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError

from consortium.admin_tools import AuditedAdmin, ReadOnlyAdmin

from .logins import client_ip, login_locked, login_refused_record
from .models import AuditEvent
from .services import audit_record


class LockoutAuthenticationForm(AdminAuthenticationForm):
    """Checks the lockout before the password, so that a locked-out attempt is refused whether or not
    the password is right; the message is the same whether or not the username exists."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "locked": "Too many failed sign-in attempts for this account or from this address. Try again later.",
    }

    def clean(self):
        username, ip = self.cleaned_data.get("username"), client_ip(self.request)
        if login_locked(username=username, ip=ip):
            login_refused_record(username=username, ip=ip)
            raise ValidationError(self.error_messages["locked"], code="locked")
        return super().clean()


admin.site.login_form = LockoutAuthenticationForm


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor_label", "action", "object_type", "object_id", "object_repr"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_label", "object_id", "object_repr"]
    date_hierarchy = "at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]


# Who may administer the consortium is itself a state change worth an audit record.
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class AuditedUserAdmin(AuditedAdmin, UserAdmin):
    def user_change_password(self, request, id, form_url=""):
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:
            user = User.objects.get(pk=id)
            audit_record(actor=request.user, action="user.password_change", obj=user)  # never the password
        return response


@admin.register(Group)
class AuditedGroupAdmin(AuditedAdmin, GroupAdmin):
    pass
