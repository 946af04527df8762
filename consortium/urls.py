from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from .api.views import not_found
from .apis import ServerJWKSApi

api_v1 = [
    path("", include("members.urls")),
    path("", include("hashes.urls")),
    path("", include("media.urls")),
    path("", include("distribution.urls")),
    path("", include("transparency.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path(".well-known/jwks.json", ServerJWKSApi.as_view(), name="server-jwks"),
    path("admin/", admin.site.urls),
    re_path(r"^taxii2(?:/|$)", include("taxii.urls")),
    path("", include("transparency.public_urls")),
]

# Unknown API paths, and requests Django refuses before a view runs (a bad Host header), answer in
# the API's error shape (under /taxii2/, TAXII's), not with an HTML page.
handler400 = "consortium.api.views.bad_request"
handler404 = not_found
handler500 = 'consortium.api.views.server_error'
