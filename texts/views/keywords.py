"""Settings > SMS keywords (every logged-in user: marketers manage keywords) and the latest replies."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from providers.registry import get_config

from ..keywords import KeywordForm
from ..models import InboundMessage, Keyword


def _keyword_page(request: HttpRequest, form: KeywordForm, *, editing: Keyword | None = None) -> HttpResponse:
    return render(
        request,
        "texts/keywords/list.html",
        {
            "keywords": Keyword.objects.all(),
            "form": form,
            "editing": editing,
            "skip_signature": settings.SMS_CALLBACK_SKIP_SIGNATURE,
            "help_text": get_config().help_text,
        },
    )


@require_http_methods(["GET", "POST"])
def keyword_list(request: HttpRequest) -> HttpResponse:
    form = KeywordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        keyword = form.save()
        messages.success(request, f"Keyword {keyword.word} added.")
        return redirect("texts:keywords")
    return _keyword_page(request, form)


@require_http_methods(["GET", "POST"])
def keyword_edit(request: HttpRequest, pk: int) -> HttpResponse:
    keyword = get_object_or_404(Keyword, pk=pk)
    form = KeywordForm(request.POST or None, instance=keyword)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Keyword {keyword.word} saved.")
        return redirect("texts:keywords")
    return _keyword_page(request, form, editing=keyword)


@require_POST
def keyword_delete(request: HttpRequest, pk: int) -> HttpResponse:
    keyword = get_object_or_404(Keyword, pk=pk)
    keyword.delete()
    messages.success(request, f"Keyword {keyword.word} deleted.")
    return redirect("texts:keywords")


@require_GET
def inbound_list(request: HttpRequest) -> HttpResponse:
    """The latest replies, for the marketer checking what came back."""
    rows = InboundMessage.objects.select_related("contact", "keyword", "in_reply_to__text_message")[:100]
    return render(request, "texts/keywords/inbound.html", {"rows": rows})
