"""Read-only admin pages for the risk desk's records.

Every row here is written by a desk service that audits it (limit versions, kill-switch actions, trigger settings,
alert acknowledgements) or by the engine's answer; an admin edit would bypass both the audit trail and the
engine, so the admin only reads.
"""

from django.contrib import admin

from riskdesk.models import Alert, KillSwitchAction, LimitScope, LimitVersion, TriggerSetting, VarResult


class ReadOnlyAdmin(admin.ModelAdmin):
    # Roles carry exact permission sets (console/roles.py) with no per-model view permissions: whoever may see
    # the risk desk may read its records here (staff only, as for any admin page).
    def has_module_permission(self, request):
        return request.user.has_perm("riskdesk.view_risk_desk")

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("riskdesk.view_risk_desk")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LimitScope)
class LimitScopeAdmin(ReadOnlyAdmin):
    list_display = ("kind", "name", "version", "in_force")


@admin.register(LimitVersion)
class LimitVersionAdmin(ReadOnlyAdmin):
    list_display = ("scope", "version", "status", "change", "proposed_by", "approved_by", "acknowledged_at")
    list_filter = ("status", "change")


@admin.register(KillSwitchAction)
class KillSwitchActionAdmin(ReadOnlyAdmin):
    list_display = ("requested_at", "action", "scope_kind", "scope_name", "operator", "engine_state", "engine_code")
    list_filter = ("action", "scope_kind")


@admin.register(TriggerSetting)
class TriggerSettingAdmin(ReadOnlyAdmin):
    list_display = ("scope_kind", "scope_name", "version", "status", "changed_by", "changed_at", "engine_event_seq")


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ("raised_at", "kind", "severity", "title", "occurrences", "acknowledged_by")
    list_filter = ("kind", "severity")


@admin.register(VarResult)
class VarResultAdmin(ReadOnlyAdmin):
    list_display = ("computed_at", "scope_kind", "scope_name", "method", "value", "exposure", "observations")
    list_filter = ("method", "scope_kind")
