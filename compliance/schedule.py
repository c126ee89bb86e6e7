"""Celery beat entries of the compliance app, merged into CELERY_BEAT_SCHEDULE by console.settings.base.

Plain data only: settings import this module before Django is set up.
"""

from celery.schedules import crontab

BEAT: dict[str, dict] = {
    # Engine vs database vs venue every 15 minutes; a run takes seconds (one snapshot, one venue query).
    "compliance-reconcile": {
        "task": "compliance.tasks.reconcile_task",
        "schedule": crontab(minute="*/15"),
        "options": {"expires": 600},
    },
    # Reconcile as soon as the engine (re)starts: the console's engine link is checked every 5 s.
    "compliance-reconcile-on-engine-start": {
        "task": "compliance.tasks.reconcile_on_engine_start_task",
        "schedule": 5.0,
        "options": {"expires": 4},
    },
    # CAT's 50 ms tolerance is checked every minute (RTS 25 deployments set a 100 us threshold).
    "compliance-measure-clocks": {
        "task": "compliance.tasks.measure_clocks_task",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # An export whose worker died (no progress for COMPLIANCE_EXPORT_STALE_S) is queued again.
    "compliance-requeue-stale-exports": {
        "task": "compliance.tasks.requeue_stale_exports_task",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # The chain is proven intact hourly, so a tampered row is found within the hour even if nobody looks.
    "compliance-verify-audit-chain": {
        "task": "compliance.tasks.verify_chain_task",
        "schedule": crontab(minute=40),
        "options": {"expires": 3000},
    },
}
