"""Admin registrations for support staff: search by number, see DNC history and import errors."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import (
    AddressFailure,
    Contact,
    ContactImport,
    ContactImportError,
    DoNotContact,
    Segment,
    SegmentMembership,
    Suppression,
    TimelineEvent,
)
from .services import OptOutProtected, dnc_remove


class _Record:
    """Opt-outs, suppressions and failure counts are records: never added, changed or deleted by hand here (a
    changed ``lifted_at`` would lift a STOP behind the rules' back). Lifting goes through ``dnc_remove``."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DoNotContactInline(_Record, admin.TabularInline):
    model = DoNotContact
    extra = 0
    readonly_fields = ["created_at"]


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["id", "first_name", "last_name", "mobile", "email", "country", "created_at"]
    search_fields = ["=mobile", "email", "first_name", "last_name"]
    list_filter = ["country"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [DoNotContactInline]
    show_full_result_count = False  # no COUNT(*) of a million rows per page


@admin.action(description="Lift (a bounce or a marketer's mark; never the person's own opt-out)")
def lift_do_not_contact(modeladmin: Any, request: HttpRequest, queryset: QuerySet[DoNotContact]) -> None:
    lifted, refused = 0, []
    for entry in queryset.filter(lifted_at__isnull=True, contact__isnull=False).select_related("contact"):
        assert entry.contact is not None
        try:
            lifted += dnc_remove(
                contact=entry.contact, source=DoNotContact.Source.MARKETER, channel=entry.channel, comment="admin"
            )
        except OptOutProtected as exc:
            refused.append(exc)
    if lifted:
        modeladmin.message_user(request, f"Lifted {lifted}.", messages.SUCCESS)
    if refused:
        modeladmin.message_user(request, f"{len(refused)} not lifted: {refused[0]}", messages.ERROR)


@admin.register(DoNotContact)
class DoNotContactAdmin(_Record, admin.ModelAdmin):
    list_display = ["contact", "channel", "reason", "source", "created_at", "lifted_at"]
    list_filter = ["channel", "reason", "source"]
    raw_id_fields = ["contact"]
    search_fields = ["=contact__mobile"]
    actions = [lift_do_not_contact]


@admin.register(Suppression)
class SuppressionAdmin(_Record, admin.ModelAdmin):
    list_display = ["address", "channel", "reason", "source", "created_at", "lifted_at", "lifted_by"]
    list_filter = ["channel", "reason", "source"]
    search_fields = ["=address"]


@admin.register(AddressFailure)
class AddressFailureAdmin(_Record, admin.ModelAdmin):
    list_display = ["address", "channel", "failures", "last_code", "last_failed_at"]
    search_fields = ["=address"]


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "member_count", "rebuilt_at"]
    readonly_fields = ["member_count", "rebuilt_at"]


@admin.register(SegmentMembership)
class SegmentMembershipAdmin(admin.ModelAdmin):
    list_display = ["segment", "contact", "manually_added", "manually_removed", "added_at"]
    list_filter = ["segment", "manually_added", "manually_removed"]
    raw_id_fields = ["contact"]
    show_full_result_count = False


@admin.register(TimelineEvent)
class TimelineEventAdmin(admin.ModelAdmin):
    list_display = ["contact", "kind", "title", "occurred_at"]
    list_filter = ["kind"]
    raw_id_fields = ["contact"]
    show_full_result_count = False


class ContactImportErrorInline(admin.TabularInline):
    model = ContactImportError
    extra = 0
    readonly_fields = ["row_number", "reason"]


@admin.register(ContactImport)
class ContactImportAdmin(admin.ModelAdmin):
    list_display = ["original_name", "status", "created_count", "updated_count", "error_count", "created_at"]
    list_filter = ["status"]
    inlines = [ContactImportErrorInline]
