"""Under /taxii2/. Trailing slashes are optional, so no request is redirected (a redirect would not
be a TAXII answer); any other path is a TAXII 404."""

from django.urls import re_path

from . import apis

COLLECTION = r"api/collections/(?P<collection_id>[^/]+)"
OBJECT = COLLECTION + r"/objects/(?P<object_id>[^/]+)"

urlpatterns = [
    re_path(r"^$", apis.DiscoveryApi.as_view(), name="taxii-discovery"),
    re_path(r"^api/?$", apis.ApiRootApi.as_view(), name="taxii-api-root"),
    re_path(r"^api/collections/?$", apis.CollectionsApi.as_view(), name="taxii-collections"),
    re_path(rf"^{COLLECTION}/?$", apis.CollectionApi.as_view(), name="taxii-collection"),
    re_path(rf"^{COLLECTION}/objects/?$", apis.ObjectsApi.as_view(), name="taxii-objects"),
    re_path(rf"^{COLLECTION}/manifest/?$", apis.ManifestApi.as_view(), name="taxii-manifest"),
    re_path(rf"^{OBJECT}/?$", apis.ObjectApi.as_view(), name="taxii-object"),
    re_path(rf"^{OBJECT}/versions/?$", apis.ObjectVersionsApi.as_view(), name="taxii-object-versions"),
    re_path(r"", apis.not_found),
]
