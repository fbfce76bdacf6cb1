"""The app's URLs plus the baseline views of bench/webhooks.py (never public routes: only ``bench.webhooks_settings``
uses this URLconf).

- ``/sms/bench-trivial``: reads the form like the callback does and answers the same empty TwiML, everything but the
  work: the figure the target is a ratio of.
- ``/sms/bench-floor``: the least any status callback that stores what it was told before answering can do: check
  the signature (one HMAC with the twilio package, as the provider does) and make one Redis round trip (``RPUSH`` to
  a key of its own). It shows what the buffer's design could reach at best on this machine.
- ``/sms/bench-signature``: the least any status callback can do at all: check the signature exactly as the Twilio
  provider does (``verify_signature``, the twilio package's ``RequestValidator``) and answer. A callback must do this
  much before it may store anything, so its ratio to the trivial view bounds every design's on this machine.
"""

import functools
import os
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import RequestValidator

from smsapp.urls import urlpatterns as app_urlpatterns

TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'
FLOOR_KEY = "bench:webhooks:floor"


@csrf_exempt
@require_POST
def trivial(request: HttpRequest) -> HttpResponse:
    """Reads the form like the callback does and answers the same empty TwiML: everything but the work."""
    _ = request.POST.dict()
    return HttpResponse(TWIML, content_type="application/xml")


@functools.cache
def _redis(pid: int, url: str) -> Any:
    import redis

    return redis.Redis.from_url(url)


@csrf_exempt
@require_POST
def floor(request: HttpRequest) -> HttpResponse:
    params = request.POST.dict()
    # Signed for the callback's URL (the bench replays the status callbacks' bodies and signatures here).
    url = settings.PUBLIC_BASE_URL + "/sms/twilio/callback"
    if not RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(
        url, params, request.headers.get("X-Twilio-Signature", "")
    ):
        return HttpResponse("Invalid X-Twilio-Signature.", status=403, content_type="text/plain")
    _redis(os.getpid(), settings.REDIS_URL).rpush(FLOOR_KEY, params.get("MessageSid", ""))
    return HttpResponse(TWIML, content_type="application/xml")


@csrf_exempt
@require_POST
def signature(request: HttpRequest) -> HttpResponse:
    from providers.base import WebhookRejected
    from providers.twilio.provider import twilio_provider
    from providers.twilio.views import _signature_headers

    params = request.POST.dict()
    try:
        twilio_provider().verify_signature(
            url=settings.PUBLIC_BASE_URL + "/sms/twilio/callback", params=params, headers=_signature_headers(request)
        )
    except WebhookRejected as exc:
        return HttpResponse(exc.reason, status=exc.status, content_type="text/plain")
    return HttpResponse(TWIML, content_type="application/xml")


urlpatterns = [
    path("sms/bench-trivial", trivial),
    path("sms/bench-floor", floor),
    path("sms/bench-signature", signature),
    *app_urlpatterns,
]
