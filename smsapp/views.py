from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import dashboard as dashboard_data
from .core.health import check_broker, check_database
from .core.roles import admin_required
from .core.tasks import HEARTBEAT_KEY
from .forms import ApiTokenForm, UserCreateForm, UserRoleForm
from .models import ApiToken

User = get_user_model()


@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    steps = dashboard_data.setup_steps()
    return render(
        request,
        "smsapp/dashboard.html",
        {
            "cards": dashboard_data.cards(),
            "steps": steps if not all(step.done for step in steps) else [],
            "activity": dashboard_data.recent_activity(),
            **dashboard_data.engagement(),
        },
    )


def login_locked_out(request: HttpRequest, response: HttpResponse | None, credentials: dict[str, Any]) -> HttpResponse:
    """django-axes' answer to a login from a locked-out username or address: 429, saying how long and how to unlock."""
    minutes = settings.AXES_COOLOFF_TIME.total_seconds() / 60
    context = {
        "username": (credentials or {}).get("username") or request.POST.get("username", ""),
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "minutes": f"{minutes:.0f}",
    }
    return render(request, "registration/locked_out.html", context, status=429)


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    db_ok, db_state = check_database()
    broker_ok, broker_state = check_broker()
    status = 200 if db_ok and broker_ok else 503
    # The worker heartbeat is informative: a stopped worker delays sending but does not make the web tier unhealthy.
    worker_seen = cache.get(HEARTBEAT_KEY) if db_ok else None
    return JsonResponse({"database": db_state, "broker": broker_state, "worker_last_seen": worker_seen}, status=status)


@admin_required
@require_http_methods(["GET", "POST"])
def users(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        User.objects.create_user(
            username=data["username"],
            email=data["email"],
            password=data["password"],
            is_staff=data["role"] == "admin",
        )
        messages.success(request, f"User {data['username']} created.")
        return redirect("users")
    return render(
        request,
        "smsapp/users.html",
        {"form": form, "users": User.objects.order_by("username")},
    )


@admin_required
@require_http_methods(["POST"])
def user_update(request: HttpRequest, user_id: int) -> HttpResponse:
    target = get_object_or_404(User, pk=user_id)
    form = UserRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a role.")
        return redirect("users")
    if target.pk == request.user.pk and (form.cleaned_data["role"] != "admin" or not form.cleaned_data["is_active"]):
        # Locking yourself out leaves nobody to undo it.
        messages.error(request, "You cannot remove your own admin role or deactivate yourself.")
        return redirect("users")
    target.is_staff = form.cleaned_data["role"] == "admin"
    target.is_active = form.cleaned_data["is_active"]
    target.save(update_fields=["is_staff", "is_active"])
    messages.success(request, f"User {target.get_username()} updated.")
    return redirect("users")


def _settings_sections() -> list[dict[str, object]]:
    """The Settings page's sections; an app adds its page here when it has one, a provider plugin by registering."""
    from django.urls import reverse

    from providers import registry

    return [
        {
            "title": "API tokens",
            "description": "Personal tokens for the REST API (/api/v1/).",
            "url": reverse("api_tokens"),
            "admin_only": False,
        },
        {
            "title": "Users",
            "description": "People who can log in, and their role.",
            "url": reverse("users"),
            "admin_only": True,
        },
        *(
            {
                "title": p.page.title,
                "description": p.page.description,
                "url": reverse(p.page.url_name),
                "admin_only": True,
            }
            for p in registry.plugins()
            if p.page is not None
        ),
        {
            "title": "SMS keywords",
            "description": "Opt-out (STOP), opt-in (START), help and custom words, and their auto-replies.",
            "url": reverse("texts:keywords"),
            "admin_only": False,
        },
        {
            "title": "Webhooks",
            "description": "Push sends, deliveries, replies, opt-outs and clicks to other systems, signed.",
            "url": reverse("hooks:list"),
            "admin_only": True,
        },
        {
            "title": "SMS prices",
            "description": "What a segment costs per country, for the estimate shown before a broadcast.",
            "url": reverse("texts:prices"),
            "admin_only": True,
        },
    ]


@require_GET
def settings_index(request: HttpRequest) -> HttpResponse:
    return render(request, "smsapp/settings_index.html", {"sections": _settings_sections()})


@require_http_methods(["GET", "POST"])
def api_tokens(request: HttpRequest) -> HttpResponse:
    """Each user's own API tokens: create (the token is shown once) and revoke."""
    assert isinstance(request.user, User)  # the login middleware let only users through
    form = ApiTokenForm(request.POST or None)
    new_token = None
    if request.method == "POST" and form.is_valid():
        _, new_token = ApiToken.issue(user=request.user, name=form.cleaned_data["name"])
        messages.success(request, "Token created. Copy it now: it is not shown again.")
    tokens = ApiToken.objects.filter(user=request.user)
    return render(
        request,
        "smsapp/api_tokens.html",
        {"form": ApiTokenForm() if new_token else form, "tokens": tokens, "new_token": new_token},
    )


@require_POST
def api_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    token.revoke()
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("api_tokens")
