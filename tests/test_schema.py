"""The OpenAPI schema and the browsable docs: public in embedded mode (API tokens and staff only in
production), complete (every /api/v1/ route is documented),
describing each response by its own shape, and served entirely from this server (no CDN)."""

from __future__ import annotations

import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.members.routes import api_routes, openapi_path

ROOT = Path(__file__).resolve().parents[1]


class AssetLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.fixture(autouse=True)
def docs_public(settings):
    """The embedded mode's default, whichever mode the suite runs in; the production default is tested below."""
    settings.API_DOCS_PUBLIC = True


@pytest.fixture
def schema(anonymous, db) -> dict:
    response = anonymous.get("/api/schema/?format=json")
    assert response.status_code == 200, response.content
    return response.json()


def response_schema(schema: dict, path: str, method: str, status: str) -> dict:
    content = schema["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
    if "$ref" in content:
        return schema["components"]["schemas"][content["$ref"].rsplit("/", 1)[1]]
    return content


def test_the_schema_is_public_openapi_3_in_yaml_by_default(anonymous, db):
    response = anonymous.get("/api/schema/")

    assert response.status_code == 200
    assert response.content.startswith(b"openapi: 3.")


def test_the_schema_documents_every_api_route(schema):
    expected = {openapi_path(route) for route in api_routes()}

    assert expected >= {"/api/v1/me/", "/api/v1/keys/", "/api/v1/statements/", "/api/v1/feed/"}
    assert expected <= set(schema["paths"])
    assert "/.well-known/jwks.json" in schema["paths"]


def test_each_response_is_documented_with_its_own_shape(schema):
    assert {"slug", "kind", "scopes"} <= set(response_schema(schema, "/api/v1/me/", "get", "200")["properties"])
    assert {"kid", "state"} <= set(response_schema(schema, "/api/v1/keys/", "post", "201")["properties"])
    assert {"accepted", "rejected"} <= set(response_schema(schema, "/api/v1/statements/", "post", "202")["properties"])
    assert {"events", "next_after"} <= set(response_schema(schema, "/api/v1/feed/", "get", "200")["properties"])


def test_the_schema_declares_bearer_token_authentication(schema):
    schemes = schema.get("components", {}).get("securitySchemes", {})
    bearer = [name for name, scheme in schemes.items() if scheme.get("scheme", "").lower() == "bearer"]

    assert bearer
    assert any(name in requirement for requirement in schema["paths"]["/api/v1/me/"]["get"]["security"]
               for name in bearer)


def test_the_statement_list_is_documented_as_the_paginated_page_it_returns(schema, alice):
    body = alice.api.get("/api/v1/statements/").json()
    documented = response_schema(schema, "/api/v1/statements/", "get", "200")

    assert documented.get("type") == "object"
    assert set(body) <= set(documented["properties"])


# --- docs without a CDN ----------------------------------------------------------------------------

@pytest.fixture
def docs(anonymous, db) -> str:
    response = anonymous.get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    return response.content.decode()


@pytest.fixture
def asset_urls(docs) -> list[str]:
    links = AssetLinks()
    links.feed(docs)
    assert links.urls, "the docs page links no scripts or styles"
    return links.urls


def test_the_docs_load_nothing_from_another_host(docs, asset_urls):
    assert all(url.startswith("/") and not url.startswith("//") for url in asset_urls), asset_urls
    assert "http://" not in docs and "https://" not in docs


def test_the_assets_the_docs_use_are_served_here(anonymous, asset_urls):
    assert any(url.endswith(".js") for url in asset_urls) and any(url.endswith(".css") for url in asset_urls)
    for url in asset_urls:
        response = anonymous.get(url)
        assert response.status_code == 200, url
        assert b"".join(response.streaming_content if response.streaming else [response.content]), url


def test_the_docs_read_the_local_schema(docs):
    assert '"/api/schema/"' in docs


def test_the_schema_names_the_token_scope_of_each_operation(schema):
    subscription_operations = [
        ("/api/v1/subscriptions/", "get"), ("/api/v1/subscriptions/", "post"),
        ("/api/v1/subscriptions/{subscription_id}/", "get"), ("/api/v1/subscriptions/{subscription_id}/", "patch"),
        ("/api/v1/subscriptions/{subscription_id}/", "delete"),
        ("/api/v1/subscriptions/{subscription_id}/test/", "post"),
        ("/api/v1/subscriptions/{subscription_id}/replay/", "post"),
        ("/api/v1/subscriptions/{subscription_id}/deliveries/", "get"),
    ]

    for path, method in subscription_operations:
        assert schema["paths"][path][method]["description"].endswith("Token scope: `subscribe`."), (path, method)
    assert schema["paths"]["/api/v1/statements/"]["post"]["description"].endswith("Token scope: `submit`.")
    assert schema["paths"]["/api/v1/feed/"]["get"]["description"].endswith("Token scope: `read`.")
    assert "Token scope" not in schema["paths"]["/api/v1/me/"]["get"].get("description", "")
    scheme = schema["components"]["securitySchemes"]["bearerAuth"]["description"]
    assert all(f"`{scope}`" in scheme for scope in ("submit", "read", "match", "subscribe"))


# --- production: docs for members and staff only ---------------------------------------------------

@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_in_production_the_schema_and_docs_need_an_api_token_or_a_staff_session(
    settings, anonymous, client, django_user_model, alice, path,
):
    settings.API_DOCS_PUBLIC = False

    refused = anonymous.get(path)
    assert (refused.status_code, refused["WWW-Authenticate"]) == (401, 'Bearer realm="consortium"')
    assert b"openapi" not in refused.content and b"swagger" not in refused.content.lower()
    assert alice.api.get(path).status_code == 200
    client.force_login(django_user_model.objects.create_user("viewer", password=None))
    assert client.get(path).status_code == 403  # logged in, but not staff
    client.force_login(django_user_model.objects.create_user("operator", password=None, is_staff=True))
    assert client.get(path).status_code == 200


def test_in_production_a_suspended_members_token_does_not_open_the_docs(settings, alice):
    from members.models import Member
    from members.services import member_set_status

    settings.API_DOCS_PUBLIC = False
    member_set_status(member=alice.member, status=Member.Status.SUSPENDED)

    assert alice.api.get("/api/schema/").status_code == 403


def test_the_docs_are_public_by_default_only_in_embedded_mode():
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "API_DOCS_PUBLIC")}
    script = "from django.conf import settings; print(settings.API_DOCS_PUBLIC)"
    embedded = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {script}"],
                              env={**env, "DJANGO_SETTINGS_MODULE": "consortium.settings"},
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
    production = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {script}"],
                                env={**env, "DJANGO_SETTINGS_MODULE": "consortium.settings",
                                     "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none",
                                     "DJANGO_SECRET_KEY": "docs-test"},
                                cwd=ROOT, capture_output=True, text=True, timeout=120)

    assert (embedded.stdout.strip(), production.stdout.strip()) == ("True", "False"), embedded.stderr + production.stderr


# --- precise enough for a generated client (tests/openapi generate one and drive the server) -------

def component(schema: dict, ref: dict) -> dict:
    """The component a property refers to, directly or (with a description of its own) through allOf."""
    ref = ref["allOf"][0] if "allOf" in ref else ref
    return schema["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]


def test_the_schema_is_openapi_3_1_with_stable_operation_ids(schema):
    ids = {op["operationId"] for item in schema["paths"].values() for op in item.values()}

    assert schema["openapi"].startswith("3.1.")
    assert {"statements_submit", "statements_list", "statements_read", "feed_read", "match", "media_hash",
            "hashes_read", "disputes_list", "stats_read", "subscriptions_create", "keys_register"} <= ids
    assert not [i for i in ids if i.startswith("api_v1_") or i[-1].isdigit()]
    assert all(op.get("tags") for item in schema["paths"].values() for op in item.values())


def test_every_error_answer_is_described_with_its_stable_codes(schema):
    submit = schema["paths"]["/api/v1/statements/"]["post"]["responses"]
    error = component(schema, submit["413"]["content"]["application/json"]["schema"])
    detail = component(schema, error["properties"]["error"])
    codes = component(schema, detail["properties"]["code"])["enum"]

    assert {"400", "401", "403", "413", "429"} <= set(submit)
    assert {"too_many_statements", "request_too_large"} <= set(codes)
    assert set(detail["required"]) == {"code", "message", "details"}
    assert "404" in schema["paths"]["/api/v1/hashes/{hash_id}/"]["get"]["responses"]
    assert "409" in schema["paths"]["/api/v1/keys/"]["post"]["responses"]
    four_hundred = component(schema, component(schema, schema["components"]["schemas"]["Error400"]["properties"]["error"])
                             ["properties"]["code"])["enum"]
    assert {"signal_value_invalid", "file_missing", "validation_error", "range_invalid"} <= set(four_hundred)


def test_uploads_are_binary_files(schema):
    for path in ("/api/v1/hash/", "/api/v1/match/"):
        body = schema["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert component(schema, body)["properties"]["file"] == {**component(schema, body)["properties"]["file"],
                                                                 "type": "string", "format": "binary"}


def test_the_answers_that_were_untyped_objects_are_typed(schema):
    feed = response_schema(schema, "/api/v1/feed/", "get", "200")
    event = component(schema, feed["properties"]["events"]["items"])
    view = component(schema, event["properties"]["hash"])
    detail = response_schema(schema, "/api/v1/hashes/{hash_id}/", "get", "200")
    result = component(schema, response_schema(schema, "/api/v1/match/", "post", "200")["properties"]["results"]["items"])

    assert {"seq", "id", "type", "occurred_at", "hash"} <= set(event["required"])
    assert {"feedback", "dispute", "statements", "submitters", "cluster", "labels"} <= set(view["required"])
    assert component(schema, view["properties"]["feedback"])["required"] == ["agree", "disagree", "seen"]
    assert {"type": "null"} in view["properties"]["dispute"]["oneOf"]
    assert {"corroborations", "created_at"} <= set(detail["properties"])
    assert {"query", "matches", "truncated"} <= set(result["required"])


def test_nullable_fields_of_a_statement_are_declared_nullable(schema):
    statement = response_schema(schema, "/api/v1/statements/{statement_id}/", "get", "200")["properties"]

    for name in ("incident", "share", "retracts", "verified_at", "published_at"):
        assert "null" in statement[name].get("type", []), name


def test_limits_come_from_the_settings(schema, settings):
    submission = schema["components"]["schemas"]["StatementSubmissionRequest"]["properties"]["statements"]
    signals = schema["components"]["schemas"]["MatchSignalsRequest"]["properties"]["signals"]
    limit = next(p for p in schema["paths"]["/api/v1/feed/"]["get"]["parameters"] if p["name"] == "limit")

    assert (submission["minItems"], submission["maxItems"]) == (1, settings.SUBMIT_MAX_STATEMENTS)
    assert submission["items"]["maxLength"] == settings.STATEMENT_MAX_BYTES
    assert (signals["minItems"], signals["maxItems"]) == (1, settings.MATCH_MAX_QUERIES)
    assert limit["schema"]["maximum"] == settings.FEED_MAX_LIMIT


def test_the_webhook_bodies_are_described_as_openapi_webhooks(schema):
    batch = schema["webhooks"]["hash.events"]["post"]
    body = component(schema, batch["requestBody"]["content"]["application/json"]["schema"])
    data = component(schema, body["properties"]["data"])

    assert {"type", "timestamp", "data"} <= set(body["required"])
    assert component(schema, data["properties"]["events"]["items"]) == schema["components"]["schemas"]["FeedEvent"]
    assert "webhook-signature" in batch["description"]
    assert "ping" in schema["webhooks"]
