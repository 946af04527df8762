from __future__ import annotations

from django.conf import settings
from rest_framework import exceptions, permissions

from .authentication import ApiClient


class MemberSuspended(exceptions.PermissionDenied):
    default_detail = "This member is suspended."
    default_code = "member_suspended"


class InsufficientScope(exceptions.PermissionDenied):
    default_code = "insufficient_scope"


def required_scope(view, method: str) -> str | None:
    """The scope a token needs for `method` on `view`: its `required_scope`, either one scope or a
    mapping from HTTP method to scope (HEAD needs what GET needs)."""
    scope = getattr(view, "required_scope", None)
    if isinstance(scope, dict):
        return scope.get("GET" if method.upper() == "HEAD" else method.upper())
    return scope


class IsActiveMember(permissions.BasePermission):
    """An authenticated, active member whose token carries the scope the view requires: the view's
    `required_scope`, either one scope or a mapping from HTTP method to scope."""

    def has_permission(self, request, view) -> bool:
        client = request.user
        if not isinstance(client, ApiClient):
            raise exceptions.NotAuthenticated()
        if not client.member.is_active:
            raise MemberSuspended()
        scope = required_scope(view, request.method)
        if scope and not client.has_scope(scope):
            raise InsufficientScope(f"This token lacks the {scope!r} scope.")
        return True


class ApiDocsAccess(permissions.BasePermission):
    """/api/schema/ and /api/docs/: anyone while API_DOCS_PUBLIC is true, otherwise an active member's
    API token (any scope) or a logged-in staff user of the admin."""

    def has_permission(self, request, view) -> bool:
        if settings.API_DOCS_PUBLIC:
            return True
        client = request.user
        if isinstance(client, ApiClient):
            if not client.member.is_active:
                raise MemberSuspended()
            return True
        if client is None or not client.is_authenticated:
            raise exceptions.NotAuthenticated()
        return bool(client.is_active and client.is_staff)
