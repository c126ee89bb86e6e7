# Audit actions of the trading, risk and compliance desks (issues 7-9), added in one place so the desks'
# migrations do not collide.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0003_audit_action_roles_changed"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(
                choices=[
                    ("auth.login", "Logged in"),
                    ("auth.logout", "Logged out"),
                    ("auth.login_failed", "Failed log-in"),
                    ("admin.user_roles_changed", "User's roles changed"),
                    ("trading.order_submitted", "Manual order submitted"),
                    ("trading.order_canceled", "Manual order cancel"),
                    ("trading.cancel_all", "Cancel-all for a scope"),
                    ("trading.strategy_started", "Strategy started"),
                    ("trading.strategy_stopped", "Strategy stopped"),
                    ("trading.strategy_params_changed", "Strategy parameters changed"),
                    ("trading.strategy_params_rolled_back", "Strategy parameters rolled back"),
                    ("risk.limit_proposed", "Limit change proposed"),
                    ("risk.limit_approved", "Limit change approved"),
                    ("risk.limit_rejected", "Limit change rejected"),
                    ("risk.limit_applied", "Limit change in force"),
                    ("risk.limit_override_expired", "Temporary limit override expired"),
                    ("risk.triggers_changed", "Automatic kill triggers changed"),
                    ("risk.kill", "Kill switch"),
                    ("risk.resume", "Trading resumed"),
                    ("risk.alert_acknowledged", "Alert acknowledged"),
                    ("compliance.export_requested", "Report export requested"),
                    ("compliance.export_downloaded", "Report export downloaded"),
                    ("compliance.reconciliation_run", "Reconciliation run"),
                    ("compliance.reconciliation_resolved", "Reconciliation break resolved"),
                    ("security.forged_message", "Forged or forbidden websocket message refused"),
                ],
                db_index=True,
                max_length=64,
            ),
        ),
    ]
