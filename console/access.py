"""Role checks for views: anonymous users go to the log-in page, users without the permission get 403."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

from console.roles import Role


def role_required(view):
    """Any of the four roles; a signed-in user without one gets 403."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.groups.filter(name__in=[role.value for role in Role]).exists():
            raise PermissionDenied("requires a role")
        return view(request, *args, **kwargs)

    return wrapper


def permission_required(permission: str):
    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not request.user.has_perm(permission):
                raise PermissionDenied(f"requires {permission}")
            return view(request, *args, **kwargs)

        wrapper.required_permission = permission
        return wrapper

    return decorator
