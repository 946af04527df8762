"""OpenAPI description of the member API's authentication, so /api/docs/ can send a token, and of
the token scope each operation needs."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from consortium.api.openapi import ErrorsAutoSchema

from .models import ApiToken, Member, SigningKey
from .permissions import required_scope


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "members.authentication.ApiTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        scopes = ", ".join(f"`{scope}`" for scope in ApiToken.Scope.values)
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token issued by an administrator: `Authorization: Bearer cst_...` "
                           f"(`Token cst_...` is accepted too). Tokens carry scopes ({scopes}); each "
                           "operation names the one it needs, and answers 403 insufficient_scope without it.",
        }


class ScopedAutoSchema(ErrorsAutoSchema):
    """Each operation's description ends with the token scope it needs; its error answers come from
    ErrorsAutoSchema."""

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        scope = required_scope(self.view, self.method)
        if operation is not None and scope:
            note = f"Token scope: `{scope}`."
            description = operation.get("description")
            operation["description"] = f"{description}\n\n{note}" if description else note
        return operation


# Choice sets named in the schema (SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]).
MEMBER_KINDS = Member.Kind.values
MEMBER_STATUSES = Member.Status.values
KEY_STATES = SigningKey.State.values
TOKEN_SCOPES = ApiToken.Scope.values
