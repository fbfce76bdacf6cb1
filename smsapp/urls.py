from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from texts.views.links import short_link_follow

from . import views
from .api import api

urlpatterns = [
    # First: the providers' webhooks (their callbacks are the busiest URLs by far, 2-3 requests per message sent)
    # and plugin pages. Django tries the patterns in order; resolving a callback after the ~40 others cost more than
    # its own signature check.
    path("", include("providers.urls")),
    # Tracked links are the other public URL a broadcast makes busy (texts.services.links).
    path("l/<str:code>", short_link_follow, name="short_link"),
    path("", views.dashboard, name="dashboard"),
    path("healthz", views.healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("settings/", views.settings_index, name="settings_index"),
    path("settings/users/", views.users, name="users"),
    path("settings/users/<int:user_id>/", views.user_update, name="user_update"),
    path("settings/api-tokens/", views.api_tokens, name="api_tokens"),
    path("settings/api-tokens/<int:token_id>/revoke/", views.api_token_revoke, name="api_token_revoke"),
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
    path("", include("contacts.urls")),
    path("", include("texts.urls")),
    path("", include("texts.urls_conversations")),
    path("", include("campaigns.urls")),
    path("", include("hooks.urls")),
]
