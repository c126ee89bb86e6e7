from django.db import models


class RiskDeskAccess(models.Model):  # noqa: DJ008 - never instantiated
    """Holds the risk desk's permissions; it has no table and no rows."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_risk_desk", "Can view the risk desk"),
            ("propose_limit", "Can propose a risk limit change"),
            ("approve_limit", "Can approve another officer's limit change"),
            ("trigger_kill_switch", "Can halt or reduce trading"),
            ("resume_trading", "Can resume halted or reduced trading"),
        ]
