from console.roles import desks_for, roles_of


def roles(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"user_roles": [], "user_desks": []}
    return {"user_roles": roles_of(user), "user_desks": desks_for(user)}
