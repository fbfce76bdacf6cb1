"""The app's URLs plus ``/sms/bench-trivial``, the baseline view of bench/webhooks.py (never a public route:
only ``bench.webhooks_settings`` uses this URLconf)."""

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from smsapp.urls import urlpatterns as app_urlpatterns


@csrf_exempt
@require_POST
def trivial(request: HttpRequest) -> HttpResponse:
    """Reads the form like the callback does and answers the same empty TwiML: everything but the work."""
    _ = request.POST.dict()
    return HttpResponse('<?xml version="1.0" encoding="UTF-8"?><Response />', content_type="application/xml")


urlpatterns = [path("sms/bench-trivial", trivial), *app_urlpatterns]
