from django.urls import path

from . import views

app_name = "contacts"
urlpatterns = [
    path("contacts/", views.contact_list, name="contact_list"),
    path("contacts/new/", views.contact_create, name="contact_create"),
    path("contacts/bulk/", views.contact_bulk, name="contact_bulk"),
    path("contacts/<int:contact_id>/", views.contact_detail, name="contact_detail"),
    path("contacts/<int:contact_id>/edit/", views.contact_update, name="contact_update"),
    path("contacts/<int:contact_id>/dnc/", views.contact_dnc_add, name="contact_dnc_add"),
    path("contacts/<int:contact_id>/dnc/lift/", views.contact_dnc_remove, name="contact_dnc_remove"),
    path("contacts/consent-log.csv", views.consent_log_csv, name="consent_log_csv"),
    path("contacts/imports/", views.import_list, name="import_list"),
    path("contacts/imports/<int:import_id>/", views.import_detail, name="import_detail"),
    path("contacts/imports/<int:import_id>/progress/", views.import_progress, name="import_progress"),
    path("segments/", views.segment_list, name="segment_list"),
    path("segments/new/", views.segment_edit, name="segment_create"),
    path("segments/rule-row/", views.segment_rule_row, name="segment_rule_row"),
    path("segments/count/", views.segment_count, name="segment_count"),
    path("segments/<int:segment_id>/", views.segment_edit, name="segment_update"),
    path("segments/<int:segment_id>/rebuild/", views.segment_rebuild_now, name="segment_rebuild"),
    path("segments/<int:segment_id>/delete/", views.segment_delete_view, name="segment_delete"),
]
