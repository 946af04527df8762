"""TAXII 2.1, read-only: discovery, one API root, collections, objects, one object, its versions, the
manifest. Thin views over taxii.selectors; authenticated, scoped (`read`) and throttled like the
rest of the API, answering in TAXII's media type and error shape (taxii.rendering)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.http import QueryDict
from django.views.decorators.csrf import csrf_exempt
from rest_framework.response import Response
from rest_framework.views import APIView

from consortium.api.errors import DomainError, NotFound
from hashes.visibility import Viewer

from . import stix
from .authentication import TaxiiTokenAuthentication
from .rendering import TaxiiNegotiation, TaxiiRenderer, error_response, taxii_exception_handler
from .selectors import (
    VERSION_KEYWORDS,
    Collection,
    ObjectFilter,
    Page,
    collection_get,
    collection_page,
    collections_for,
    object_exists,
    server_objects,
)

TITLE = "consortium"
API_ROOT_PATH = "/taxii2/api/"


class TaxiiApi(APIView):
    authentication_classes = [TaxiiTokenAuthentication]
    renderer_classes = [TaxiiRenderer]
    content_negotiation_class = TaxiiNegotiation
    required_scope = "read"
    http_method_names = ["get", "head"]
    schema = None  # TAXII is described by its own specification, not the API's OpenAPI schema

    def get_exception_handler(self):
        return taxii_exception_handler

    def viewer(self) -> Viewer:
        return Viewer.for_client(self.request.user)

    def collection(self, collection_id: str) -> tuple[Collection, Viewer]:
        """The collection and what the member sees of it."""
        return collection_get(viewer=self.viewer(), collection_id=collection_id)


def taxii_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(body, headers=headers, content_type=stix.TAXII_MEDIA_TYPE)


def collection_resource(collection: Collection) -> dict[str, Any]:
    return {
        "id": collection.id, "title": collection.title, "description": collection.description,
        "alias": collection.alias, "can_read": True, "can_write": False, "media_types": [stix.STIX_MEDIA_TYPE],
    }


@dataclass(frozen=True)
class Query:
    after: int | None
    added_after: datetime | None
    limit: int
    filters: ObjectFilter


MAX_MATCH_VALUES = 1000


def comma_list(params: QueryDict, name: str) -> frozenset[str] | None:
    """A match[...] filter's values (comma-separated, possibly repeated); None if not given."""
    values = [v.strip() for raw in params.getlist(name) for v in raw.split(",") if v.strip()]
    if len(values) > MAX_MATCH_VALUES:
        raise DomainError("too_many_values", f"{name} takes at most {MAX_MATCH_VALUES} values.",
                          {"parameter": name, "max": MAX_MATCH_VALUES})
    return frozenset(values) if params.getlist(name) else None


def read_query(params: QueryDict) -> Query:
    """limit, next, added_after and the match[...] filters; a bad value is refused with its own code."""
    limit = settings.TAXII_DEFAULT_LIMIT
    if params.get("limit") not in (None, ""):
        raw = params["limit"]
        if not raw.isdigit() or int(raw) < 1:
            raise DomainError("limit_invalid", "limit must be a positive whole number.", {"parameter": "limit"})
        limit = min(int(raw), settings.TAXII_MAX_LIMIT)
    after = None
    if params.get("next") not in (None, ""):
        raw = params["next"]
        if not raw.lstrip("-").isdigit() or len(raw) > 20 or int(raw) < -len(server_objects()) - 1:
            raise DomainError("next_invalid", "next must be a value a previous page gave.", {"parameter": "next"})
        after = int(raw)
    added_after = None
    if params.get("added_after") not in (None, ""):
        added_after = stix.parse_timestamp(params["added_after"])
        if added_after is None:
            raise DomainError("added_after_invalid", "added_after must be an RFC 3339 timestamp with a time zone.",
                              {"parameter": "added_after"})
    keywords, times = set(), set()
    for value in comma_list(params, "match[version]") or ("last",):
        if value in VERSION_KEYWORDS:
            keywords.add(value)
        elif (moment := stix.parse_timestamp(value)) is not None:
            times.add(moment)
        else:
            raise DomainError("match_version_invalid", "match[version] is first, last, all or timestamps.",
                              {"parameter": "match[version]"})
    filters = ObjectFilter(ids=comma_list(params, "match[id]"), types=comma_list(params, "match[type]"),
                           versions=frozenset(keywords), version_times=frozenset(times),
                           spec_versions=comma_list(params, "match[spec_version]"))
    return Query(after=after, added_after=added_after, limit=limit, filters=filters)


def page_headers(page: Page) -> dict[str, str]:
    if not page.entries:
        return {}
    return {"X-TAXII-Date-Added-First": stix.timestamp(page.date_added_first),
            "X-TAXII-Date-Added-Last": stix.timestamp(page.date_added_last)}


def envelope(page: Page, key: str, items: list[Any]) -> Response:
    body: dict[str, Any] = {"more": page.more}
    if page.more:
        body["next"] = page.next
    if items:  # TAXII: present only with one or more items
        body[key] = items
    return taxii_response(body, page_headers(page))


def read_page(collection: Collection, viewer: Viewer, query: Query) -> Page:
    return collection_page(collection=collection, viewer=viewer, after=query.after, added_after=query.added_after,
                           limit=query.limit, filters=query.filters)


class DiscoveryApi(TaxiiApi):
    def get(self, request):
        root = request.build_absolute_uri(API_ROOT_PATH)
        return taxii_response({
            "title": TITLE, "description": "Hashes of terrorist and violent extremist content shared by the "
                                           "consortium's members, as STIX 2.1 indicators.",
            "default": root, "api_roots": [root],
        })


class ApiRootApi(TaxiiApi):
    def get(self, request):
        return taxii_response({
            "title": TITLE, "description": "Read-only: the consortium's collection and one per sharing group.",
            "versions": [stix.TAXII_MEDIA_TYPE], "max_content_length": settings.REQUEST_MAX_BYTES,
        })


class CollectionsApi(TaxiiApi):
    def get(self, request):
        return taxii_response({"collections": [collection_resource(c) for c in collections_for(viewer=self.viewer())]})


class CollectionApi(TaxiiApi):
    def get(self, request, collection_id: str):
        return taxii_response(collection_resource(self.collection(collection_id)[0]))


class ObjectsApi(TaxiiApi):
    def get(self, request, collection_id: str):
        collection, viewer = self.collection(collection_id)
        page = read_page(collection, viewer, read_query(request.query_params))
        return envelope(page, "objects", [entry.object for entry in page.entries])


class ManifestApi(TaxiiApi):
    def get(self, request, collection_id: str):
        collection, viewer = self.collection(collection_id)
        page = read_page(collection, viewer, read_query(request.query_params))
        return envelope(page, "objects", [{
            "id": entry.id, "date_added": stix.timestamp(entry.date_added), "version": stix.timestamp(entry.version),
            "media_type": stix.STIX_MEDIA_TYPE,
        } for entry in page.entries])


class ObjectApi(TaxiiApi):
    def object_query(self, collection: Collection, viewer: Viewer, object_id: str, *, every_version: bool = False) -> Query:
        if not object_exists(collection=collection, viewer=viewer, stix_id=object_id):
            raise NotFound("No object with this id is in this collection.")
        query = read_query(self.request.query_params)
        filters = query.filters
        filters = ObjectFilter(ids=frozenset({object_id}), versions=frozenset({"all"}) if every_version else filters.versions,
                               version_times=frozenset() if every_version else filters.version_times,
                               spec_versions=filters.spec_versions)
        return Query(after=query.after, added_after=query.added_after, limit=query.limit, filters=filters)

    def get(self, request, collection_id: str, object_id: str):
        collection, viewer = self.collection(collection_id)
        page = read_page(collection, viewer, self.object_query(collection, viewer, object_id))
        return envelope(page, "objects", [entry.object for entry in page.entries])


class ObjectVersionsApi(ObjectApi):
    def get(self, request, collection_id: str, object_id: str):
        collection, viewer = self.collection(collection_id)
        page = read_page(collection, viewer, self.object_query(collection, viewer, object_id, every_version=True))
        return envelope(page, "versions", [stix.timestamp(entry.version) for entry in page.entries])


@csrf_exempt
def not_found(request, *args, **kwargs):
    """Any other path under /taxii2/."""
    return error_response(404, "not_found", "No such TAXII endpoint.")
