"""API keys in the auditors' Django admin: read-only, and never the key itself (only its prefix is known)."""

from django.contrib import admin

from wui.api.keys import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "user", "read_only", "created_at", "last_used_at", "last_used_from", "revoked_at"]
    list_filter = ["read_only"]
    search_fields = ["name", "prefix", "user__username"]
    exclude = ["sha256"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
