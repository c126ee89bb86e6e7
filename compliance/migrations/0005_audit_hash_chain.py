"""The SHA-256 hash chain on the audit trail: rows written before it are chained here, in id order.

The append-only trigger is switched off for the backfill only (inside this migration's transaction, so no
other session ever sees the table without it) and back on before the columns become NOT NULL.
"""

import json

from django.db import migrations, models

TRIGGER = "compliance_auditevent_append_only"


def chain_existing_rows(apps, schema_editor):
    from compliance.chain import GENESIS, audit_canonical, link

    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, occurred_at, actor_id, actor_username, action, target, details, reason, ip_address::text"
            " FROM compliance_auditevent ORDER BY id"
        )
        rows = cursor.fetchall()
        if not rows:
            return
        cursor.execute(f"ALTER TABLE compliance_auditevent DISABLE TRIGGER {TRIGGER}")
        prev = GENESIS
        for row_id, occurred_at, actor_id, username, action, target, raw_details, reason, ip in rows:
            details = json.loads(raw_details) if isinstance(raw_details, str) else raw_details
            row_hash = link(
                prev,
                audit_canonical(
                    id=row_id,
                    occurred_at=occurred_at,
                    actor_id=actor_id,
                    actor_username=username,
                    action=action,
                    target=target,
                    details=details,
                    reason=reason,
                    ip_address=ip,
                ),
            )
            cursor.execute(
                "UPDATE compliance_auditevent SET prev_hash = %s, row_hash = %s WHERE id = %s", [prev, row_hash, row_id]
            )
            prev = row_hash
        cursor.execute(f"ALTER TABLE compliance_auditevent ENABLE TRIGGER {TRIGGER}")


class Migration(migrations.Migration):
    dependencies = [("compliance", "0004_desk_audit_actions")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="prev_hash",
            field=models.BinaryField(editable=False, max_length=32, null=True),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="row_hash",
            field=models.BinaryField(editable=False, max_length=32, null=True),
        ),
        migrations.RunPython(chain_existing_rows, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="auditevent",
            name="prev_hash",
            field=models.BinaryField(editable=False, max_length=32),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="row_hash",
            field=models.BinaryField(editable=False, max_length=32),
        ),
    ]
