from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Console"

    def ready(self) -> None:
        from console.roles import sync_roles_after_migrate

        # Permissions are created by Django's own post_migrate handler; the role groups are
        # synchronised after it so that every migrated database (including the test database)
        # has the four roles with exactly the permissions console.roles declares.
        post_migrate.connect(sync_roles_after_migrate, dispatch_uid="console.sync_roles")
