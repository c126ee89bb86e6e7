from django.core.management.base import BaseCommand

from console.services.demo import seed_demo_users
from trading.services.reference import sync_reference_data


class Command(BaseCommand):
    help = (
        "Create one demo user per role (trader, risk, compliance, admin). Passwords come from "
        "DEMO_PASSWORD_<USER> or DEMO_PASSWORD; otherwise a random one is generated and printed once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--reset-passwords", action="store_true", help="set new passwords for existing users")

    def handle(self, *args, reset_passwords: bool = False, **options):
        # The console's pages and the bridge need the instruments and strategies the engine runs with.
        sync_reference_data()
        for user in seed_demo_users(reset_passwords=reset_passwords):
            if user.password is not None:
                state = "created" if user.created else "password reset"
                self.stdout.write(
                    f"demo user {user.username:<11} role {user.role.value:<19} {state}; password: {user.password}"
                )
            else:
                self.stdout.write(
                    f"demo user {user.username:<11} role {user.role.value:<19} exists; password unchanged "
                    "(manage.py seed_demo --reset-passwords to set a new one)"
                )
