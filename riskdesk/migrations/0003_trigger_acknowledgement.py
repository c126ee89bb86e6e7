"""Trigger settings go to the engine (SetTriggers) and are in force only when it acknowledges them.

Rows recorded before the engine had the command were never sent: the newest of each scope gets a command id and
stays `approved`, so the resend task puts it in force; older ones are superseded.
"""

import uuid

from django.db import migrations, models


def mark_unsent(apps, schema_editor):
    TriggerSetting = apps.get_model("riskdesk", "TriggerSetting")
    newest = {}
    for row in TriggerSetting.objects.order_by("scope_kind", "scope_name", "-version"):
        key = (row.scope_kind, row.scope_name)
        if key not in newest:
            newest[key] = row.pk
            row.status = "approved"
            row.command_id = row.command_id or uuid.uuid4().hex
        else:
            row.status = "superseded"
        row.engine_code = row.engine_reason = ""
        row.save(update_fields=["status", "command_id", "engine_code", "engine_reason"])


class Migration(migrations.Migration):
    dependencies = [("riskdesk", "0002_risk_desk")]

    operations = [
        migrations.AddField(
            model_name="triggersetting",
            name="status",
            field=models.CharField(
                choices=[
                    ("approved", "Sent, waiting for the engine"),
                    ("in_force", "In force (engine acknowledged)"),
                    ("superseded", "Superseded"),
                    ("engine_rejected", "Refused by the engine"),
                ],
                default="approved",
                max_length=24,
            ),
        ),
        migrations.AddField(
            model_name="triggersetting", name="sent_at", field=models.DateTimeField(blank=True, null=True)
        ),
        migrations.AddField(
            model_name="triggersetting",
            name="engine_event_seq",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(mark_unsent, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="triggersetting",
            constraint=models.UniqueConstraint(
                condition=models.Q(("command_id", ""), _negated=True),
                fields=("command_id",),
                name="riskdesk_triggersetting_command",
            ),
        ),
    ]
