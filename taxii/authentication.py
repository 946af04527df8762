"""TAXII clients authenticate with the member's API token: `Authorization: Token <token>` (what
taxii2-client sends), `Bearer <token>`, or HTTP Basic with the token as the password (what most
TAXII clients offer; the user name is not used)."""

from __future__ import annotations

import base64
import binascii

from rest_framework import authentication, exceptions

from members.authentication import ApiTokenAuthentication


class TaxiiTokenAuthentication(ApiTokenAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode("latin-1").lower() != "basic":
            return super().authenticate(request)
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("The Authorization header must be 'Basic <credentials>'.",
                                                  "invalid_token")
        try:
            _, colon, password = base64.b64decode(header[1], validate=True).decode("ascii").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise exceptions.AuthenticationFailed("The Basic credentials are not valid base64 ASCII.",
                                                  "invalid_token") from None
        if not colon or not password:
            raise exceptions.AuthenticationFailed("Give the API token as the Basic password.", "invalid_token")
        return self.authenticate_credentials(password)

    def authenticate_header(self, request) -> str:
        return 'Basic realm="consortium", Bearer realm="consortium"'
