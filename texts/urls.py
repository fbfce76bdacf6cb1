from django.urls import path

from . import broadcast_views, views, views_prices

app_name = "texts"
urlpatterns = [
    path("text-messages/", views.text_message_list, name="list"),
    path("text-messages/new/", views.text_message_create, name="create"),
    path("text-messages/preview/", views.text_message_preview, name="preview"),
    path("text-messages/log/", views.outbound_list, name="outbound_list"),
    path("text-messages/<int:pk>/", views.text_message_edit, name="edit"),
    path("text-messages/<int:pk>/clone/", views.text_message_clone, name="clone"),
    path("text-messages/<int:pk>/delete/", views.text_message_delete, name="delete"),
    path("text-messages/<int:pk>/unpublish/", views.text_message_unpublish, name="unpublish"),
    path("text-messages/<int:pk>/test/", views.text_message_test_send, name="test_send"),
    path("text-messages/<int:pk>/report/", views.text_message_report, name="report"),
    path("text-messages/<int:pk>/broadcast/", broadcast_views.broadcast_panel, name="broadcast"),
    path("text-messages/<int:pk>/broadcast/send/", broadcast_views.broadcast_send_now, name="broadcast_send"),
    path(
        "text-messages/<int:pk>/broadcast/new-members/",
        broadcast_views.broadcast_new_members,
        name="broadcast_new_members",
    ),
    path("settings/sms-prices/", views_prices.price_list, name="prices"),
]
