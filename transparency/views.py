from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_safe

from .public import public_html
from .selectors import CACHE_SECONDS

# The page is self-contained: inline styles and inline SVG, nothing fetched from anywhere.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


@require_safe
def transparency_page(request):
    """The public statistics page, while TRANSPARENCY_PUBLIC is true; no login."""
    if not settings.TRANSPARENCY_PUBLIC:
        raise Http404
    response = HttpResponse(public_html(), content_type="text/html; charset=utf-8")
    response["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response
