from django.urls import URLPattern, path

from . import views

app_name = "providers"
urlpatterns: list[URLPattern] = [
    path("settings/plugins/twilio/", views.twilio_settings, name="twilio_settings"),
    path("settings/plugins/twilio/test", views.twilio_test, name="twilio_test"),
]
