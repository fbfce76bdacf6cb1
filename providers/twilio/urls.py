from django.urls import URLPattern, path

from . import views

# The callback first: the root URLconf puts the providers' URLs ahead of every other, and this is the busiest.
urlpatterns: list[URLPattern] = [
    path("sms/twilio/callback", views.twilio_callback, name="callback"),
    path("settings/plugins/twilio/", views.twilio_settings, name="settings"),
    path("settings/plugins/twilio/test", views.twilio_test, name="test"),
    path("settings/plugins/twilio/templates/sync", views.twilio_templates_sync, name="sync_templates"),
]
