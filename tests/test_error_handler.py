"""One exception handler answers every coded error in one shape: the API's own DomainErrors and the
member client's (JWKError, MediaError, ...) that services let pass, each with its code and status."""

import json

import pytest
from consortium_client.jws import JWSError
from consortium_client.keys import JWKError
from consortium_client.media import MediaError
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from consortium.api.errors import Conflict, DomainError, TooManyRequests


def view_raising(exc: Exception):
    class Raising(APIView):
        authentication_classes: list = []
        permission_classes: list = []

        def get(self, request):
            raise exc

    return Raising.as_view()


def answer(exc: Exception):
    response = view_raising(exc)(APIRequestFactory().get("/raising"))
    response.render()
    return response


@pytest.mark.parametrize("exc, status, body", [
    (DomainError("statements_empty", "Send at least one statement."), 400,
     {"code": "statements_empty", "message": "Send at least one statement.", "details": None}),
    (DomainError("too_many_statements", "Send at most 2.", {"max": 2}, status=413), 413,
     {"code": "too_many_statements", "message": "Send at most 2.", "details": {"max": 2}}),
    (Conflict("key_exists", "This public key is registered already."), 409,
     {"code": "key_exists", "message": "This public key is registered already.", "details": None}),
    # The member client's errors, as the services used to re-raise them by hand.
    (JWKError("jwk_private_key", "This JWK contains a private key (d)."), 400,
     {"code": "jwk_private_key", "message": "This JWK contains a private key (d).", "details": None}),
    (MediaError("media_unreadable", "The file is not an image or a video."), 400,
     {"code": "media_unreadable", "message": "The file is not an image or a video.", "details": None}),
    (MediaError("media_too_large", "The image is over 10 pixels.", {"max_pixels": 10}), 413,
     {"code": "media_too_large", "message": "The image is over 10 pixels.", "details": {"max_pixels": 10}}),
    (JWSError("jws_bad_base64", "The header is not valid base64url."), 400,
     {"code": "jws_bad_base64", "message": "The header is not valid base64url.", "details": None}),
])
def test_a_coded_error_raised_in_a_view_answers_with_its_code_and_status(exc, status, body):
    response = answer(exc)
    assert response.status_code == status
    assert json.loads(response.content) == {"error": body}
    assert "Retry-After" not in response


def test_too_many_requests_answers_429_with_retry_after():
    response = answer(TooManyRequests("quota_exceeded", "Wait.", 7, {"limit": 3}))
    assert response.status_code == 429 and response["Retry-After"] == "7"
    assert json.loads(response.content) == {"error": {"code": "quota_exceeded", "message": "Wait.",
                                         "details": {"limit": 3, "retry_after_seconds": 7}}}


def test_an_error_without_a_code_is_still_a_server_error():
    with pytest.raises(ValueError):  # DRF re-raises what the handler does not answer: a 500, not a 400
        answer(ValueError("not a coded error"))
