"""Dead letters get an idempotency key, so a retried commit or a restarted bridge never stores the same one twice.

The key is `<engine_id>:<seq>` when the frame's seq is known, else `<engine_id>:sha256:<hex of the raw bytes>`
(trading/bridge/writer.py computes it; the bridge inserts with ON CONFLICT DO NOTHING). Rows stored before this
migration keep a NULL key: a unique index allows any number of NULLs, and rewriting old rows could only guess.
The column is the bridge's own (plain SQL, not in the model's state): nothing else writes dead letters.
"""

from django.db import migrations

FORWARDS = """
ALTER TABLE trading_deadletter ADD COLUMN idempotency_key varchar(200) NULL;
CREATE UNIQUE INDEX trading_deadletter_idempotency_key ON trading_deadletter (idempotency_key);
"""

BACKWARDS = """
DROP INDEX trading_deadletter_idempotency_key;
ALTER TABLE trading_deadletter DROP COLUMN idempotency_key;
"""


class Migration(migrations.Migration):
    dependencies = [("trading", "0006_bar_windows")]

    operations = [migrations.RunSQL(FORWARDS, BACKWARDS)]
