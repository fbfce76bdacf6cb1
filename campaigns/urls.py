from django.urls import path

from . import views

app_name = "campaigns"
urlpatterns = [
    path("campaigns/", views.campaign_list, name="list"),
    path("campaigns/new/", views.campaign_create, name="create"),
    path("campaigns/<int:campaign_id>/edit/", views.campaign_edit, name="edit"),
    path("campaigns/<int:campaign_id>/builder/", views.campaign_builder, name="builder"),
    path("campaigns/<int:campaign_id>/results/", views.campaign_results, name="results"),
    path("campaigns/<int:campaign_id>/builder/events/new/", views.event_new, name="event_new"),
    path("campaigns/<int:campaign_id>/builder/events/<int:event_id>/", views.event_edit, name="event_edit"),
    path("campaigns/<int:campaign_id>/builder/events/<int:event_id>/delete/", views.event_delete, name="event_delete"),
    path("campaigns/<int:campaign_id>/publish/", views.campaign_publish, name="publish"),
    path("campaigns/<int:campaign_id>/unpublish/", views.campaign_unpublish, name="unpublish"),
    path("campaigns/<int:campaign_id>/contacts/", views.campaign_members, name="members"),
    path(
        "campaigns/<int:campaign_id>/contacts/<int:contact_id>/remove/",
        views.campaign_member_remove,
        name="member_remove",
    ),
]
