from django.urls import path

from .views import conversations as views

app_name = "texts_conversations"
urlpatterns = [
    path("conversations/", views.inbox, name="inbox"),
    path("conversations/<int:contact_id>/", views.conversation, name="thread_page"),
    path("conversations/<int:contact_id>/thread/", views.conversation_thread, name="thread"),
    path("conversations/<int:contact_id>/reply/", views.conversation_send, name="reply"),
]
