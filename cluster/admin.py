"""The Django admin is for auditors: everything is read-only."""

from django.contrib import admin

from cluster.models import Cluster, Event, Node, Rollout, RolloutNode, VirtualService


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["time", "level", "node_number", "message", "user", "source_address"]
    list_filter = ["level", "node_number"]
    search_fields = ["message"]


@admin.register(Node)
class NodeAdmin(ReadOnlyAdmin):
    list_display = ["number", "address", "enabled", "is_admin", "version", "last_ok_at"]


admin.site.register(Cluster, ReadOnlyAdmin)
admin.site.register(VirtualService, ReadOnlyAdmin)
admin.site.site_header = "Flotilla audit"


def _audit_admin():
    from auditlog.admin import LogEntryAdmin
    from auditlog.models import LogEntry

    class AuditAdmin(LogEntryAdmin):
        """Who changed what, when, from which address, before and after."""

        list_display = ["created", "resource_url", "action", "msg_short", "user_url", "remote_addr"]
        readonly_fields = [*LogEntryAdmin.readonly_fields, "remote_addr"]
        fieldsets = [
            (None, {"fields": ["created", "user_url", "remote_addr", "resource_url"]}),
            ("Changes (before → after)", {"fields": ["action", "msg"]}),
        ]

    admin.site.unregister(LogEntry)
    admin.site.register(LogEntry, AuditAdmin)


_audit_admin()


# Software updates and restores' reboots
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
