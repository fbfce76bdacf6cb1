from django.urls import path

from .views import broadcasts, join, keywords, prices, text_messages

app_name = "texts"
urlpatterns = [
    path("text-messages/", text_messages.text_message_list, name="list"),
    path("text-messages/new/", text_messages.text_message_create, name="create"),
    path("text-messages/preview/", text_messages.text_message_preview, name="preview"),
    path(
        "text-messages/template-variables/",
        text_messages.text_message_template_variables,
        name="template_variables",
    ),
    path("text-messages/log/", text_messages.outbound_list, name="outbound_list"),
    path("text-messages/<int:pk>/", text_messages.text_message_edit, name="edit"),
    path("text-messages/<int:pk>/clone/", text_messages.text_message_clone, name="clone"),
    path("text-messages/<int:pk>/delete/", text_messages.text_message_delete, name="delete"),
    path("text-messages/<int:pk>/unpublish/", text_messages.text_message_unpublish, name="unpublish"),
    path("text-messages/<int:pk>/test/", text_messages.text_message_test_send, name="test_send"),
    path("text-messages/<int:pk>/report/", text_messages.text_message_report, name="report"),
    path("text-messages/<int:pk>/broadcast/", broadcasts.broadcast_panel, name="broadcast"),
    path("text-messages/<int:pk>/broadcast/send/", broadcasts.broadcast_send_now, name="broadcast_send"),
    path(
        "text-messages/<int:pk>/broadcast/new-members/", broadcasts.broadcast_new_members, name="broadcast_new_members"
    ),
    path("text-messages/replies/", keywords.inbound_list, name="replies"),
    path("settings/sms-keywords/", keywords.keyword_list, name="keywords"),
    path("settings/sms-keywords/<int:pk>/", keywords.keyword_edit, name="keyword_edit"),
    path("settings/sms-keywords/<int:pk>/delete/", keywords.keyword_delete, name="keyword_delete"),
    path("settings/sms-prices/", prices.price_list, name="prices"),
    path("join/", join.join, name="join"),
]
