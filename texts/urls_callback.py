from django.urls import path

from . import webhooks

app_name = "texts_inbound"
urlpatterns = [
    path("sms/twilio/callback", webhooks.twilio_callback, name="twilio_callback"),
]
