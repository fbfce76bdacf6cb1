"""Settings > SMS keywords (every logged-in user sees them; admins manage them) and the latest replies.

Built-in keywords (the STOP, START and HELP families) are refused deletion and switching off for everyone: a marketer
gets 403 for any change, an admin the reason.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from providers.registry import get_config
from smsapp.core.roles import admin_required, is_admin

from ..keywords import KeywordForm
from ..models import InboundMessage, Keyword, ProtectedKeyword


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
            "can_manage": is_admin(request.user),
        },
    )


@require_http_methods(["GET", "POST"])
def keyword_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST" and not is_admin(request.user):
        raise PermissionDenied("Only admins can manage keywords.")
    form = KeywordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        keyword = form.save()
        messages.success(request, f"Keyword {keyword.word} added.")
        return redirect("texts:keywords")
    return _keyword_page(request, form)


@require_http_methods(["GET", "POST"])
@admin_required
def keyword_edit(request: HttpRequest, pk: int) -> HttpResponse:
    keyword = get_object_or_404(Keyword, pk=pk)
    form = KeywordForm(request.POST or None, instance=keyword)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Keyword {keyword.word} saved.")
        return redirect("texts:keywords")
    return _keyword_page(request, form, editing=keyword)


@require_POST
@admin_required
def keyword_delete(request: HttpRequest, pk: int) -> HttpResponse:
    keyword = get_object_or_404(Keyword, pk=pk)
    try:
        keyword.delete()
    except ProtectedKeyword:
        messages.error(
            request,
            f"{keyword.word} is a built-in {keyword.get_kind_display().lower()} word: carriers and the law expect it "
            "to work, so it cannot be deleted or switched off. Its auto-reply can be edited.",
        )
        return redirect("texts:keywords")
    messages.success(request, f"Keyword {keyword.word} deleted.")
    return redirect("texts:keywords")


@require_GET
def inbound_list(request: HttpRequest) -> HttpResponse:
    """The latest replies, for the marketer checking what came back."""
    rows = InboundMessage.objects.select_related("contact", "keyword", "in_reply_to__text_message")[:100]
    return render(request, "texts/keywords/inbound.html", {"rows": rows})
