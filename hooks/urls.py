from django.urls import path

from . import views

app_name = "hooks"
urlpatterns = [
    path("settings/webhooks/", views.endpoint_list, name="list"),
    path("settings/webhooks/<int:pk>/", views.endpoint_detail, name="detail"),
    path("settings/webhooks/<int:pk>/log/", views.endpoint_log, name="log"),
    path("settings/webhooks/<int:pk>/test/", views.endpoint_test, name="test"),
    path("settings/webhooks/<int:pk>/secret/", views.endpoint_rotate, name="rotate"),
    path("settings/webhooks/<int:pk>/delete/", views.endpoint_delete, name="delete"),
    path("settings/webhooks/<int:pk>/deliveries/<int:delivery_id>/retry/", views.delivery_retry, name="retry"),
]
