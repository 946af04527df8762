"""OpenAPI description of the member API's authentication, so /api/docs/ can send a token."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "members.authentication.ApiTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token issued by an administrator: `Authorization: Bearer cst_...` "
                           "(`Token cst_...` is accepted too).",
        }
