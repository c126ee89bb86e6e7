from django.db import models


class TradingDeskAccess(models.Model):  # noqa: DJ008 - never instantiated
    """Holds the trading desk's permissions; it has no table and no rows."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_trading_desk", "Can view the trading desk"),
            ("submit_order", "Can submit and cancel manual orders"),
            ("control_strategy", "Can start, stop and re-parameterise strategies"),
        ]
