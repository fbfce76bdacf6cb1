"""The public end of tracked links: ``GET /l/<code>`` redirects to the original URL and counts the click."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from ..services.links import link_follow


@login_not_required
@require_http_methods(["GET", "HEAD"])
def short_link_follow(request: HttpRequest, code: str) -> HttpResponse:
    """302 to the link's URL (previews too: an unfurled link must show the real page); 404 for a made-up code."""
    followed = link_follow(
        code=code,
        method=request.method or "GET",
        user_agent=request.headers.get("User-Agent", ""),
        headers=request.headers,
    )
    if followed is None:
        return render(request, "texts/links/not_found.html", status=404)
    response = HttpResponseRedirect(followed.url)
    # Every click must reach us: no browser or proxy may answer it from a cache.
    response["Cache-Control"] = "no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response
