from django.contrib import admin

from .models import Delivery, Endpoint


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ("url", "active", "created_at")
    exclude = ("secret_encrypted",)


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "endpoint", "event_type", "status", "attempts", "response_status", "created_at")
    list_filter = ("status", "event_type")
    readonly_fields = ("payload", "event_id")
