from django.http import HttpRequest, HttpResponse, JsonResponse

from providers import webhooks
from providers.base import InboundEvent, WebhookRejected

from .provider import PROVIDER


@webhooks.webhook_view
def callback(request: HttpRequest) -> HttpResponse:
    try:
        event = PROVIDER.parse_webhook(url=request.path, params=request.POST.dict(), headers=dict(request.headers))
        help_text = PROVIDER.config.help_text if isinstance(event, InboundEvent) else ""
        reply = webhooks.receive(event, help_text=help_text)
    except WebhookRejected as exc:
        return HttpResponse(exc.reason, status=exc.status)
    return JsonResponse({"say": reply})  # this provider's own reply format
