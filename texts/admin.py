from django.contrib import admin

from .models import OutboundMessage, TextMessage


@admin.register(TextMessage)
class TextMessageAdmin(admin.ModelAdmin):
    list_display = ("name", "category", "language", "is_published", "created_at")
    list_filter = ("category", "is_published")
    search_fields = ("name", "body")
    filter_horizontal = ("segments",)


@admin.register(OutboundMessage)
class OutboundMessageAdmin(admin.ModelAdmin):
    list_display = ("id", "to_number", "status", "source", "text_message", "sender", "error_code", "queued_at")
    list_filter = ("status", "source")
    search_fields = ("to_number", "provider_sid")
    raw_id_fields = ("contact", "text_message")
    # The log is written by the pipeline; editing a status here would bypass the guarded transitions.
    readonly_fields = ("status", "provider_sid", "attempts", "provider_called_at", "claim")
