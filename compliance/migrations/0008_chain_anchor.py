"""Chain anchors (compliance.models.ChainAnchor): the known ends of the hash chains, append-only like the trail.

The row trigger reuses migration 0002's function, so UPDATE and DELETE are refused for every role. There is
deliberately no TRUNCATE trigger: pytest-django empties tables with TRUNCATE between transactional tests, and a
production app role without TRUNCATE privilege (docs/compliance.md) is what closes that path.
"""

import django.utils.timezone
from django.db import migrations, models

CREATE = """
CREATE TRIGGER compliance_chainanchor_append_only
    BEFORE UPDATE OR DELETE ON compliance_chainanchor
    FOR EACH ROW EXECUTE FUNCTION compliance_refuse_audit_change();
"""
DROP = "DROP TRIGGER IF EXISTS compliance_chainanchor_append_only ON compliance_chainanchor;"


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0007_export_heartbeat"),
    ]

    operations = [
        migrations.CreateModel(
            name="ChainAnchor",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("recorded_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("chain", models.CharField(max_length=32)),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("head", "Last row proven by an intact verification"),
                            ("retention", "Last row removed by retention"),
                        ],
                        max_length=16,
                    ),
                ),
                ("engine_id", models.CharField(blank=True, max_length=64)),
                ("position", models.BigIntegerField()),
                ("row_hash", models.BinaryField(max_length=32)),
                ("recorded_by", models.CharField(blank=True, max_length=150)),
            ],
            options={
                "ordering": ["-recorded_at", "-id"],
                "default_permissions": (),
                "indexes": [
                    models.Index(fields=["chain", "kind", "engine_id", "position"], name="chain_anchor_lookup")
                ],
            },
        ),
        migrations.RunSQL(CREATE, DROP),
    ]
