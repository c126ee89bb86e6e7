from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from compliance.models import AuditAction
from compliance.services import record_audit_event

User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class ConsoleUserAdmin(UserAdmin):
    """The user admin for the `admin` role: roles are assigned here and every change is audited.

    Only a superuser may grant superuser, staff or individual permissions; otherwise an `admin`
    could lift itself (or anyone) past the role model.
    """

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += ("is_superuser", "is_staff", "user_permissions")
        return fields

    def save_related(self, request, form, formsets, change):
        user = form.instance
        before = sorted(user.groups.values_list("name", flat=True)) if change else []
        super().save_related(request, form, formsets, change)
        after = sorted(user.groups.values_list("name", flat=True))
        if before != after:
            record_audit_event(
                actor=request.user,
                action=AuditAction.USER_ROLES_CHANGED,
                target=f"user:{user.pk}",
                details={"username": user.get_username(), "before": before, "after": after},
                ip_address=request.META.get("REMOTE_ADDR"),
            )
