"""Software updates and restores' reboots, read-only for auditors."""

from django.contrib import admin

from cluster.admin import ReadOnlyAdmin
from firmware.models import Rollout, RolloutNode


class RolloutNodeInline(admin.TabularInline):
    model = RolloutNode
    fields = readonly_fields = ["node", "state", "sent", "size", "message"]
    can_delete = False
    extra = 0

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Rollout)
class RolloutAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "version", "state", "created_by", "message"]
    list_filter = ["kind", "state"]
    inlines = [RolloutNodeInline]
