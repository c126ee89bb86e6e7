from django.contrib import admin

from compliance.models import AuditEvent, ChainAnchor, ChainVerification, ExportJob, ReconciliationBreak


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit trail is append-only everywhere, the admin included."""

    list_display = ("occurred_at", "actor_username", "action", "target", "ip_address")
    list_filter = ("action",)
    search_fields = ("actor_username", "target", "reason")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("compliance.view_audit_trail")


class _ReadOnly(admin.ModelAdmin):
    """Compliance records are written by their services only; the admin shows them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("compliance.view_compliance_desk")


@admin.register(ExportJob)
class ExportJobAdmin(_ReadOnly):
    list_display = ("id", "kind", "format", "requested_by", "requested_at", "status", "rows_written")
    list_filter = ("kind", "format", "status")


@admin.register(ReconciliationBreak)
class ReconciliationBreakAdmin(_ReadOnly):
    list_display = ("id", "run", "kind", "severity", "client_order_id", "symbol", "resolved_at")
    list_filter = ("kind", "severity")


@admin.register(ChainVerification)
class ChainVerificationAdmin(_ReadOnly):
    list_display = ("started_at", "intact", "audit_rows", "order_event_rows", "broken_table", "broken_row")


@admin.register(ChainAnchor)
class ChainAnchorAdmin(_ReadOnly):
    list_display = ("recorded_at", "chain", "kind", "engine_id", "position", "recorded_by")
    list_filter = ("chain", "kind")
