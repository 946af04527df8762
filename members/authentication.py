from __future__ import annotations

from dataclasses import dataclass, field

from django.utils import timezone
from rest_framework import authentication, exceptions

from .models import ApiToken, Member
from .services import token_find, token_touch


@dataclass(frozen=True)
class ApiClient:
    """The authenticated caller of the member API: a member acting through one token."""

    member: Member
    token: ApiToken
    # The member's sharing groups, {slug: id} in slug order, read with the token: what the
    # request's Viewer (hashes.visibility.Viewer.for_client) sees through.
    sharing_groups: dict[str, int] = field(compare=False)
    is_authenticated: bool = True

    def has_scope(self, scope: str) -> bool:
        return scope in self.token.scopes


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>` (or `Token <token>`)."""

    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode("latin-1").lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("The Authorization header must be '<scheme> <token>'.", "invalid_token")
        try:
            plaintext = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The token is not valid.", "invalid_token") from None
        return self.authenticate_credentials(plaintext)

    def authenticate_credentials(self, plaintext: str) -> tuple[ApiClient, ApiToken]:
        """The caller a token's plaintext names, or AuthenticationFailed with the reason's code."""
        found = token_find(plaintext)
        if found is None:
            raise exceptions.AuthenticationFailed("The token is not valid.", "invalid_token")
        token = found.token
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This token has been revoked.", "token_revoked")
        if token.is_expired(timezone.now()):
            raise exceptions.AuthenticationFailed("This token has expired.", "token_expired")
        token_touch(token)
        return ApiClient(member=token.member, token=token, sharing_groups=found.sharing_groups), token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="consortium"'
