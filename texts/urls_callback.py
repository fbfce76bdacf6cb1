from django.urls import path

from . import views_callback as views

app_name = "texts_inbound"
urlpatterns = [
    path("sms/twilio/callback", views.twilio_callback, name="twilio_callback"),
    path("settings/sms-keywords/", views.keyword_list, name="keywords"),
    path("settings/sms-keywords/<int:pk>/", views.keyword_edit, name="keyword_edit"),
    path("settings/sms-keywords/<int:pk>/delete/", views.keyword_delete, name="keyword_delete"),
    path("text-messages/replies/", views.inbound_list, name="replies"),
]
