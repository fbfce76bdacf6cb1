"""Admin registrations for support staff: search by number, see DNC history and import errors."""

from __future__ import annotations

from django.contrib import admin

from .models import Contact, ContactImport, ContactImportError, DoNotContact, Segment, SegmentMembership, TimelineEvent


class DoNotContactInline(admin.TabularInline):
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


@admin.register(DoNotContact)
class DoNotContactAdmin(admin.ModelAdmin):
    list_display = ["contact", "channel", "reason", "source", "created_at", "lifted_at"]
    list_filter = ["channel", "reason", "source"]
    raw_id_fields = ["contact"]
    search_fields = ["=contact__mobile"]


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
