from django.urls import path

from . import views

urlpatterns = [path("sms/throwaway/callback", views.callback, name="callback")]
