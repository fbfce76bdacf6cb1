from django.urls import URLPattern, path

from . import views

urlpatterns: list[URLPattern] = [path("sms/console/callback", views.console_callback, name="callback")]
