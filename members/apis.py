from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from consortium.api.openapi import ERRORS

from .models import ApiToken, Member, SigningKey
from .selectors import published_keys
from .services import key_register


class MeApi(APIView):
    class OutputSerializer(serializers.Serializer):
        slug = serializers.CharField()
        name = serializers.CharField()
        kind = serializers.ChoiceField(Member.Kind.values)
        status = serializers.ChoiceField(Member.Status.values)
        scopes = serializers.ListField(child=serializers.ChoiceField(ApiToken.Scope.values))
        sharing_groups = serializers.ListField(child=serializers.CharField())

        class Meta:
            ref_name = "Me"

    @extend_schema(responses=OutputSerializer, summary="The calling member", operation_id="me_read", tags=["members"])
    def get(self, request):
        member = request.user.member
        return Response(self.OutputSerializer({
            "slug": member.slug, "name": member.name, "kind": member.kind, "status": member.status,
            "scopes": request.user.token.scopes,
            "sharing_groups": list(request.user.sharing_groups),
        }).data)


class JWKSerializer(serializers.Serializer):
    kty = serializers.CharField()
    crv = serializers.CharField()
    x = serializers.CharField()
    kid = serializers.CharField()
    alg = serializers.CharField(required=False)
    use = serializers.CharField(required=False)
    member = serializers.CharField(required=False, help_text="keys/ only: the member's slug.")
    state = serializers.ChoiceField(SigningKey.State.values, required=False, help_text="keys/ only.")
    compromised_since = serializers.DateTimeField(
        required=False, help_text="keys/ only, on a revoked key: statements the server received before this time "
                                  "stay valid; those from then on were withdrawn.")

    class Meta:
        ref_name = "JWK"


class JWKSetSerializer(serializers.Serializer):
    keys = JWKSerializer(many=True)

    class Meta:
        ref_name = "JWKSet"


class KeysApi(APIView):
    """GET: the JWK Set of every member's active and retired keys (and revoked ones whose statements
    from before `compromised_since` stay valid). POST: register a public key,
    which stays pending until an administrator approves it."""

    required_scope = {"GET": "read", "POST": "submit"}

    class InputSerializer(serializers.Serializer):
        kty = serializers.ChoiceField(["OKP"])
        crv = serializers.ChoiceField(["Ed25519"])
        x = serializers.CharField(help_text="The public key, base64url without padding.")
        kid = serializers.CharField(required=False, max_length=128,
                                    help_text="Your own key id; default: the key's RFC 7638 thumbprint.")

        class Meta:
            ref_name = "PublicJWKInput"

    class OutputSerializer(serializers.Serializer):
        kid = serializers.CharField()
        state = serializers.ChoiceField(SigningKey.State.values)
        jwk = JWKSerializer()

        class Meta:
            ref_name = "RegisteredKey"

    @extend_schema(responses=JWKSetSerializer, summary="Members' public signing keys (JWK Set)",
                   operation_id="keys_list", tags=["keys"])
    def get(self, request):
        return Response({"keys": published_keys()})

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer, 409: ERRORS[409]},
                   summary="Register a public signing key", operation_id="keys_register", tags=["keys"])
    def post(self, request):
        key: SigningKey = key_register(member=request.user.member, jwk=request.data, actor=request.user.member,
                                       token=request.user.token)
        body = {"kid": key.kid, "state": key.state, "jwk": key.jwk()}
        return Response(self.OutputSerializer(body).data, status=status.HTTP_201_CREATED)

