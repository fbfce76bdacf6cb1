"""Campaign pages: list, create/edit, the builder (canvas and its event panel), publish, members by hand."""

from __future__ import annotations

import time
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import reports, services
from .forms import CampaignForm, EventForm, MemberAddForm
from .models import (
    EVENT_TYPE_OF_KIND,
    KIND_DESCRIPTIONS,
    Campaign,
    CampaignEvent,
    CampaignMember,
    EventKind,
    EventType,
)


def _is_htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))  # set by django-htmx's middleware


def _campaign(campaign_id: int) -> Campaign:
    # Every marketer works on every campaign (the roles are admin and marketer, no ownership).
    return get_object_or_404(Campaign, pk=campaign_id)


@require_GET
def campaign_list(request: HttpRequest) -> HttpResponse:
    campaigns = Campaign.objects.annotate(
        member_count=Count("members", filter=Q(members__manually_removed=False), distinct=True),
        event_count=Count("events", distinct=True),
    )
    return render(request, "campaigns/list.html", {"campaigns": campaigns})


@require_http_methods(["GET", "POST"])
def campaign_create(request: HttpRequest) -> HttpResponse:
    form = CampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        campaign = form.save()
        messages.success(request, "Campaign created. Add its first event.")
        return redirect("campaigns:builder", campaign_id=campaign.pk)
    return render(request, "campaigns/form.html", {"form": form, "campaign": None})


@require_http_methods(["GET", "POST"])
def campaign_edit(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = _campaign(campaign_id)
    form = CampaignForm(request.POST or None, instance=campaign)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Campaign saved.")
        return redirect("campaigns:builder", campaign_id=campaign.pk)
    return render(request, "campaigns/form.html", {"form": form, "campaign": campaign})


def _tree(campaign: Campaign) -> list[CampaignEvent]:
    """The events as a tree (children attached to each event), with their log counts."""
    events = list(campaign.events.select_related("text_message"))
    counts = services.event_counts(campaign=campaign)
    texts, names = reports.send_counts(campaign), reports.segment_names(events)
    by_parent: dict[tuple[int | None, str | None], list[CampaignEvent]] = {}
    for event in events:
        by_parent.setdefault((event.parent_id, event.path), []).append(event)
    for event in events:
        event.kids = by_parent.get((event.pk, None), [])  # type: ignore[attr-defined]
        event.kids_yes = by_parent.get((event.pk, "yes"), [])  # type: ignore[attr-defined]
        event.kids_no = by_parent.get((event.pk, "no"), [])  # type: ignore[attr-defined]
        event.counts = counts.get(event.pk, {"waiting": 0, "done": 0, "failed": 0})  # type: ignore[attr-defined]
        # A Send Text Message's "done" only queued its texts: the card counts them as the provider took them.
        event.texts = texts.get(event.pk) if event.kind == EventKind.SEND_TEXT_MESSAGE else None  # type: ignore[attr-defined]
        event.segment_names = names.get(event.pk, [])  # type: ignore[attr-defined]
    return by_parent.get((None, None), [])


@require_GET
def campaign_builder(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = _campaign(campaign_id)
    context = {
        "campaign": campaign,
        "roots": _tree(campaign),
        "segments": list(campaign.segments.all()),
        "member_count": services.campaign_member_count(campaign=campaign),
        "problems": services.campaign_problems(campaign=campaign),
    }
    return render(request, "campaigns/builder.html", context)


@require_GET
def campaign_results(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """htmx, once the builder shows: what the campaign's texts did (funnel, activity, cost)."""
    from texts.engagement import charts_context, cost_for

    campaign = _campaign(campaign_id)
    messages = reports.campaign_messages(campaign)
    context = {"campaign": campaign, "cost": cost_for(messages), **charts_context(messages, prefix="campaign")}
    return render(request, "campaigns/_results.html", context)


def _panel(request: HttpRequest, template: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    """The panel's content for htmx, or a whole page when JavaScript is off."""
    context["full_page"] = not _is_htmx(request)
    name = template if _is_htmx(request) else "campaigns/panel_page.html"
    context["panel_template"] = template
    return render(request, name, context, status=status)


def _kind_groups() -> list[tuple[str, list[tuple[str, str, str]]]]:
    groups = []
    for event_type, title in ((EventType.ACTION, "Actions"), (EventType.DECISION, "Decisions"),
                              (EventType.CONDITION, "Conditions")):  # fmt: skip
        kinds = [(k.value, k.label, KIND_DESCRIPTIONS[k]) for k in EventKind if EVENT_TYPE_OF_KIND[k] == event_type]
        groups.append((title, kinds))
    return groups


@require_http_methods(["GET", "POST"])
def event_new(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = _campaign(campaign_id)
    parent_id = request.GET.get("parent") or None
    parent = get_object_or_404(CampaignEvent, pk=parent_id, campaign=campaign) if parent_id else None
    path = request.GET.get("path") or None
    kind = request.GET.get("kind", "")
    where = _where(parent, path)
    if kind not in EVENT_TYPE_OF_KIND:
        groups = _kind_groups()
        if parent is None:  # Mautic's advice: a campaign starts with an action or a condition
            groups = [g for g in groups if g[0] != "Decisions"]
        ctx = {"campaign": campaign, "groups": groups, "parent": parent, "path": path, "where": where}
        return _panel(request, "campaigns/_kind_chooser.html", ctx)
    form = EventForm(request.POST or None, kind=kind)
    if request.method == "POST" and form.is_valid():
        try:
            event = services.campaign_event_save(
                campaign=campaign, kind=kind, data=form.event_data(), parent=parent, path=path
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"“{event.label}” added.")
            return _to_builder(request, campaign, event)
    ctx = {"campaign": campaign, "form": form, "kind": kind, "kind_label": EventKind(kind).label, "where": where,
           "action_url": request.get_full_path(), "event": None}  # fmt: skip
    return _panel(request, "campaigns/_event_form.html", ctx)


@require_http_methods(["GET", "POST"])
def event_edit(request: HttpRequest, campaign_id: int, event_id: int) -> HttpResponse:
    campaign = _campaign(campaign_id)
    event = get_object_or_404(CampaignEvent, pk=event_id, campaign=campaign)
    form = EventForm(request.POST or None, kind=event.kind, instance=event)
    if request.method == "POST" and form.is_valid():
        services.campaign_event_save(campaign=campaign, kind=event.kind, data=form.event_data(), event=event)
        messages.success(request, f"“{event.label}” saved.")
        return _to_builder(request, campaign, event)
    ctx = {"campaign": campaign, "form": form, "kind": event.kind, "kind_label": event.get_kind_display(),
           "where": _where(event.parent, event.path), "action_url": request.get_full_path(),
           "event": event}  # fmt: skip
    return _panel(request, "campaigns/_event_form.html", ctx)


@require_POST
def event_delete(request: HttpRequest, campaign_id: int, event_id: int) -> HttpResponse:
    campaign = _campaign(campaign_id)
    event = get_object_or_404(CampaignEvent, pk=event_id, campaign=campaign)
    label = event.label
    removed = services.campaign_event_delete(event=event)
    below = f" and the {removed - 1} event{'' if removed == 2 else 's'} below it" if removed > 1 else ""
    messages.success(request, f"“{label}”{below} removed.")
    return _to_builder(request, campaign, event.parent)


def _where(parent: CampaignEvent | None, path: str | None) -> str:
    if parent is None:
        return "at the start of the campaign"
    if path:
        return f"on the {path} path of “{parent.label}”"
    return f"after “{parent.label}”"


def _to_builder(request: HttpRequest, campaign: Campaign, event: CampaignEvent | None) -> HttpResponse:
    # A fresh query string: htmx's redirect to the same path with only a new #fragment would not reload the page.
    url = reverse("campaigns:builder", args=[campaign.pk]) + f"?saved={time.time_ns()}"
    url += f"#event-{event.pk}" if event else ""
    if _is_htmx(request):
        return HttpResponse(status=204, headers={"HX-Redirect": url})
    return redirect(url)


@require_POST
def campaign_publish(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = _campaign(campaign_id)
    try:
        services.campaign_publish(campaign=campaign)
    except ValidationError as exc:
        for problem in exc.messages:
            messages.error(request, problem)
    else:
        messages.success(request, "Campaign published: the engine runs it from now on.")
    return redirect("campaigns:builder", campaign_id=campaign.pk)


@require_POST
def campaign_unpublish(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = services.campaign_unpublish(campaign=_campaign(campaign_id))
    messages.success(request, "Campaign paused: nothing runs until you publish it again.")
    return redirect("campaigns:builder", campaign_id=campaign.pk)


@require_http_methods(["GET", "POST"])
def campaign_members(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = _campaign(campaign_id)
    form = MemberAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        contact = form.cleaned_data["contact"]
        services.campaign_members_add(campaign=campaign, contact_ids=[contact.pk])
        messages.success(request, f"{contact} added to the campaign.")
        return redirect("campaigns:members", campaign_id=campaign.pk)
    members = (
        CampaignMember.objects.filter(campaign=campaign, manually_removed=False)
        .select_related("contact")
        .order_by("-added_at")[:200]
    )
    return render(request, "campaigns/members.html", {"campaign": campaign, "form": form, "members": members})


@require_POST
def campaign_member_remove(request: HttpRequest, campaign_id: int, contact_id: int) -> HttpResponse:
    campaign = _campaign(campaign_id)
    services.campaign_members_remove(campaign=campaign, contact_ids=[contact_id])
    messages.success(request, "Contact removed from the campaign; the segments will not add them back.")
    return redirect("campaigns:members", campaign_id=campaign.pk)
