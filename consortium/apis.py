"""The server's own endpoints outside any app."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from members.apis import JWKSetSerializer

from .server_keys import server_jwks


class ServerJWKSApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses=JWKSetSerializer, summary="The server's own public keys (webhook v1a signatures)",
                   operation_id="server_keys_read", tags=["keys"])
    def get(self, request):
        return Response(server_jwks())
