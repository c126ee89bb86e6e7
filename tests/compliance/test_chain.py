"""The audit trail and the order events are hash-chained; the verifier finds the first row that was tampered with."""

from __future__ import annotations

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections

from compliance.chain import GENESIS, ChainBreakCode, ChainReport, verify_audit_chain, verify_chains
from compliance.models import AuditAction, AuditEvent
from compliance.services import record_audit_event, run_chain_verification
from tests.compliance.rows import OrderEventWriter


def superuser_sql(sql: str, params: list | None = None, *, table: str = "compliance_auditevent") -> None:
    """What an attacker with the superuser's password would do: switch the append-only trigger off, edit, and
    switch it back on."""
    with connection.cursor() as cursor:
        # The test's transaction still holds deferred foreign-key checks, which ALTER TABLE refuses to run past.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        cursor.execute(sql, params or [])
        cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def make_trail(actor, count: int = 5) -> list[AuditEvent]:
    return [
        record_audit_event(
            actor=actor,
            action=AuditAction.LIMIT_PROPOSED,
            target=f"limit:{n}",
            details={"max_position": "1.5", "n": n, "nested": {"b": [1, 2.5], "a": None}},
            reason=f"reason {n}",
            ip_address="10.1.2.3",
        )
        for n in range(count)
    ]


def test_each_audit_row_links_to_the_hash_of_the_row_before_it(risk_officer):
    events = make_trail(risk_officer, 3)

    rows = list(AuditEvent.objects.order_by("id").values_list("prev_hash", "row_hash"))

    assert bytes(rows[0][0]) == GENESIS
    assert bytes(rows[1][0]) == bytes(rows[0][1])
    assert bytes(rows[2][0]) == bytes(rows[1][1])
    assert len({bytes(row_hash) for _, row_hash in rows}) == 3
    assert bytes(rows[2][1]) == events[2].row_hash


def test_an_untouched_trail_verifies_intact(risk_officer):
    make_trail(risk_officer)

    report = verify_chains()

    assert report.intact
    assert report.audit_rows == 5
    assert report.audit_head_hash == bytes(AuditEvent.objects.order_by("-id").first().row_hash).hex()


def test_a_row_rewritten_in_sql_is_found_at_that_row(risk_officer):
    events = make_trail(risk_officer)
    superuser_sql("UPDATE compliance_auditevent SET reason = 'nothing to see' WHERE id = %s", [events[2].pk])

    report = verify_chains()

    assert not report.intact
    assert report.first_break.table == "compliance_auditevent"
    assert report.first_break.row == str(events[2].pk)
    assert report.first_break.code == ChainBreakCode.CONTENT_CHANGED


def test_details_rewritten_in_sql_are_found_too(risk_officer):
    events = make_trail(risk_officer)
    superuser_sql(
        "UPDATE compliance_auditevent SET details = jsonb_set(details, '{max_position}', '\"99\"') WHERE id = %s",
        [events[3].pk],
    )

    report = verify_chains()

    assert report.first_break.row == str(events[3].pk)


def test_a_row_deleted_in_sql_breaks_the_link_of_the_row_after_it(risk_officer):
    events = make_trail(risk_officer)
    superuser_sql("DELETE FROM compliance_auditevent WHERE id = %s", [events[1].pk])

    report = verify_chains()

    assert report.first_break.row == str(events[2].pk)
    assert report.first_break.code == ChainBreakCode.LINK_BROKEN


def test_the_management_command_reports_intact_or_the_first_broken_row(risk_officer, capsys):
    events = make_trail(risk_officer)
    call_command("verify_audit_chain")
    assert "chain intact: 5 audit rows" in capsys.readouterr().out

    superuser_sql("UPDATE compliance_auditevent SET actor_username = 'someone_else' WHERE id = %s", [events[4].pk])

    with pytest.raises(CommandError, match=f"compliance_auditevent row {events[4].pk} .CHAIN_CONTENT_CHANGED"):
        call_command("verify_audit_chain")


def test_a_verification_is_kept_with_its_verdict(risk_officer):
    events = make_trail(risk_officer)
    superuser_sql("UPDATE compliance_auditevent SET target = 'limit:x' WHERE id = %s", [events[0].pk])

    check = run_chain_verification(requested_by="cora")

    assert check.intact is False
    assert check.broken_row == str(events[0].pk)
    assert check.finished_at is not None


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_still_form_one_chain(django_user_model):
    actor = django_user_model.objects.create_user(username="many", password="x" * 16)
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for n in range(15):
                record_audit_event(actor=actor, action=AuditAction.KILL, target=f"w{worker}:{n}")
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    # The audit chain only: this test is about audit writers, not whatever order events the table holds.
    report = verify_audit_chain(ChainReport())
    assert report.intact, report.first_break
    assert report.audit_rows == 60


# --- order events (written by the bridge; the verifier checks their chain and their columns) ---------------------


def insert_order_events(engine_id: str, count: int) -> None:
    events = OrderEventWriter(engine_id)
    for n in range(1, count + 1):
        events.add("OrderAccepted", f"c-{n}", venue_order_id=n)


def test_order_event_chains_verify_per_engine(db):
    insert_order_events("eng-a", 4)
    insert_order_events("eng-b", 3)

    report = verify_chains()

    assert report.intact, report.first_break
    assert report.order_event_rows == 7


def test_an_order_event_whose_column_disagrees_with_its_payload_is_found(db):
    insert_order_events("eng-a", 4)
    superuser_sql(
        "UPDATE trading_orderevent SET client_order_id = 'c-forged' WHERE engine_id = 'eng-a' AND seq = 3",
        table="trading_orderevent",
    )

    report = verify_chains()

    assert report.first_break.table == "trading_orderevent"
    assert report.first_break.row == "eng-a:3"
    assert report.first_break.code == ChainBreakCode.PAYLOAD_MISMATCH


def test_an_order_event_whose_payload_was_rewritten_is_found(db):
    insert_order_events("eng-a", 4)
    superuser_sql(
        "UPDATE trading_orderevent SET payload = replace(payload::text, 'c-2', 'c-2')::bytea || '\\x20'::bytea"
        " WHERE engine_id = 'eng-a' AND seq = 2",
        table="trading_orderevent",
    )

    report = verify_chains()

    assert report.first_break.row == "eng-a:2"
    assert report.first_break.code == ChainBreakCode.CONTENT_CHANGED


def test_an_order_event_whose_price_was_edited_is_found(db):
    events = OrderEventWriter("eng-a")
    buy = {"side": "BUY", "price": "60000.0", "quantity": "0.004"}
    events.add("OrderSubmitted", "c-1", columns=buy, side=1, price=600_000, quantity=4, order_type=1)
    events.add(
        "OrderFilled",
        "c-1",
        columns={"side": "BUY", "price": "60000.0", "quantity": "0.001", "leaves": "0.003", "cum": "0.001"},
        side=1,
        last_price=600_000,
        last_quantity=1,
        leaves_quantity=3,
        cum_quantity=1,
        exec_id="x-1",
    )
    assert verify_chains().intact
    superuser_sql(
        "UPDATE trading_orderevent SET price = 59000 WHERE engine_id = 'eng-a' AND seq = 2",
        table="trading_orderevent",
    )

    report = verify_chains()

    assert report.first_break.row == "eng-a:2"
    assert report.first_break.code == ChainBreakCode.PAYLOAD_MISMATCH
    assert "price=" in report.first_break.detail
