"""Verify the audit trail's and the order events' hash chains; exit status 1 when either is broken."""

from django.core.management.base import BaseCommand, CommandError

from compliance.services import run_chain_verification


class Command(BaseCommand):
    help = "Verify the SHA-256 hash chains of compliance_auditevent and trading_orderevent."

    def handle(self, *args, **options):
        check = run_chain_verification(requested_by="manage.py verify_audit_chain")
        summary = f"{check.audit_rows} audit rows, {check.order_event_rows} order events"
        if check.intact:
            self.stdout.write(self.style.SUCCESS(f"chain intact: {summary}; audit head {check.audit_head_hash}"))
            return
        raise CommandError(
            f"chain broken at {check.broken_table} row {check.broken_row} ({check.broken_code}): {check.detail}"
            f" [{summary} checked]"
        )
