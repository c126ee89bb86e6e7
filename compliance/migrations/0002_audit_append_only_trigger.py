"""The audit table refuses UPDATE and DELETE in the database itself, whoever connects.

Row-level BEFORE triggers fire for every role, including the table's owner (the application's
own role), so neither the ORM nor raw SQL can rewrite history; only a superuser who disables the
trigger explicitly can, and the hash chain (compliance issue) makes that detectable.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION compliance_refuse_audit_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'AUDIT_IMMUTABLE: % on % is not allowed; the audit trail is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER compliance_auditevent_append_only
    BEFORE UPDATE OR DELETE ON compliance_auditevent
    FOR EACH ROW EXECUTE FUNCTION compliance_refuse_audit_change();
"""

DROP = """
DROP TRIGGER IF EXISTS compliance_auditevent_append_only ON compliance_auditevent;
DROP FUNCTION IF EXISTS compliance_refuse_audit_change();
"""


class Migration(migrations.Migration):
    dependencies = [("compliance", "0001_initial")]

    operations = [migrations.RunSQL(CREATE, DROP)]
