"""The verifier checks the ends of each chain, not only its links: a chain cut short, emptied, or recomputed after an
edit is found once an earlier verification proved its head; retention's dropped partitions are not breaks."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from django.db import DatabaseError, connection, transaction

from compliance.chain import GENESIS, ChainBreakCode, audit_canonical, link, verify_chains
from compliance.models import ChainAnchor, ChainAnchorKind
from compliance.services import run_chain_verification
from tests.compliance.rows import OrderEventWriter
from tests.compliance.test_chain import make_trail, superuser_sql
from trading import timeseries

pytestmark = pytest.mark.django_db


def engine_name(label: str) -> str:
    # Order events live in partitioned tables Django's flush does not empty: a fresh name keeps this test's chain
    # apart from any other test's rows.
    return f"{label}-{uuid.uuid4().hex[:8]}"


def order_events(engine_id: str, count: int, *, start_ns: int | None = None) -> OrderEventWriter:
    writer = OrderEventWriter(engine_id, **({"start_ns": start_ns} if start_ns else {}))
    for n in range(1, count + 1):
        writer.add("OrderAccepted", f"c-{n}", venue_order_id=n)
    return writer


def row_hash_of(engine_id: str, seq: int) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_hash FROM trading_orderevent WHERE engine_id = %s AND seq = %s", [engine_id, seq])
        return bytes(cursor.fetchone()[0])


def rechain_audit_trail() -> None:
    """What an attacker who edited a row would do next: recompute every hash from genesis so the links hold."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, occurred_at, actor_id, actor_username, action, target, details, reason, ip_address::text"
            " FROM compliance_auditevent ORDER BY id"
        )
        rows = cursor.fetchall()
    prev = GENESIS
    for row_id, occurred_at, actor_id, username, action, target, raw_details, reason, ip in rows:
        details = json.loads(raw_details) if isinstance(raw_details, str) else raw_details
        content = audit_canonical(
            id=row_id,
            occurred_at=occurred_at,
            actor_id=actor_id,
            actor_username=username,
            action=action,
            target=target,
            details=details,
            reason=reason,
            ip_address=ip,
        )
        row_hash = link(prev, content)
        superuser_sql(
            "UPDATE compliance_auditevent SET prev_hash = %s, row_hash = %s WHERE id = %s", [prev, row_hash, row_id]
        )
        prev = row_hash


# --- the audit trail ----------------------------------------------------------------------------------------


def test_an_intact_verification_records_the_audit_head_and_later_rows_still_verify(risk_officer):
    events = make_trail(risk_officer, 3)

    check = run_chain_verification(requested_by="cora")
    make_trail(risk_officer, 2)
    report = verify_chains()

    assert check.intact
    anchor = ChainAnchor.objects.get(chain="compliance_auditevent", kind=ChainAnchorKind.HEAD)
    assert (anchor.position, bytes(anchor.row_hash)) == (events[-1].pk, events[-1].row_hash)
    assert report.intact, report.first_break
    assert report.audit_rows == 5


def test_an_audit_trail_emptied_after_a_verification_is_reported_truncated(risk_officer):
    events = make_trail(risk_officer, 4)
    run_chain_verification(requested_by="cora")

    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("TRUNCATE compliance_auditevent")  # TRUNCATE fires no row trigger
    report = verify_chains()

    assert report.first_break.table == "compliance_auditevent"
    assert report.first_break.code == ChainBreakCode.TRUNCATED
    assert report.first_break.row == str(events[-1].pk)
    assert "the table is empty now" in report.first_break.detail


def test_an_audit_tail_chopped_off_after_a_verification_is_reported_truncated(risk_officer):
    events = make_trail(risk_officer, 5)
    run_chain_verification(requested_by="cora")

    superuser_sql("DELETE FROM compliance_auditevent WHERE id >= %s", [events[3].pk])
    report = verify_chains()

    assert report.first_break.code == ChainBreakCode.TRUNCATED
    assert report.first_break.row == str(events[4].pk)
    assert f"it now ends at row {events[2].pk}" in report.first_break.detail


def test_an_audit_row_edited_and_the_chain_recomputed_is_found_at_the_proven_head(risk_officer):
    events = make_trail(risk_officer, 4)
    run_chain_verification(requested_by="cora")

    superuser_sql("UPDATE compliance_auditevent SET reason = 'nothing to see' WHERE id = %s", [events[1].pk])
    rechain_audit_trail()
    report = verify_chains()

    assert report.first_break.code == ChainBreakCode.ANCHOR_MISMATCH
    assert report.first_break.row == str(events[-1].pk)


def test_a_broken_chain_records_no_head_anchor(risk_officer):
    events = make_trail(risk_officer, 3)
    superuser_sql("UPDATE compliance_auditevent SET target = 'x' WHERE id = %s", [events[0].pk])

    check = run_chain_verification(requested_by="cora")

    assert check.intact is False
    assert not ChainAnchor.objects.exists()


def test_chain_anchors_cannot_be_changed_or_removed(risk_officer):
    make_trail(risk_officer, 1)
    run_chain_verification(requested_by="cora")

    for statement in ("UPDATE compliance_chainanchor SET position = 1", "DELETE FROM compliance_chainanchor"):
        with pytest.raises(DatabaseError, match="AUDIT_IMMUTABLE"), transaction.atomic(), connection.cursor() as c:
            c.execute(statement)


# --- order events -------------------------------------------------------------------------------------------


def test_every_event_of_one_engine_deleted_after_a_verification_is_reported_truncated():
    kept, erased = engine_name("eng-a"), engine_name("eng-b")
    order_events(kept, 3)
    order_events(erased, 4)
    run_chain_verification(requested_by="cora")

    superuser_sql("DELETE FROM trading_orderevent WHERE engine_id = %s", [erased], table="trading_orderevent")
    report = verify_chains()

    assert report.first_break.table == "trading_orderevent"
    assert report.first_break.code == ChainBreakCode.TRUNCATED
    assert report.first_break.row == f"{erased}:4"
    assert "no event of this engine is left" in report.first_break.detail


def test_an_order_event_tail_chopped_off_after_a_verification_is_reported_truncated():
    engine = engine_name("eng-a")
    order_events(engine, 5)
    run_chain_verification(requested_by="cora")

    superuser_sql(
        "DELETE FROM trading_orderevent WHERE engine_id = %s AND seq > 3", [engine], table="trading_orderevent"
    )
    report = verify_chains()

    assert report.first_break.code == ChainBreakCode.TRUNCATED
    assert report.first_break.row == f"{engine}:5"


def test_order_events_appended_after_a_verification_move_the_engines_head():
    engine = engine_name("eng-a")
    writer = order_events(engine, 2)
    run_chain_verification(requested_by="cora")
    writer.add("OrderCanceled", "c-1", columns={"quantity": "0.002", "leaves": "0"}, canceled_quantity=2)

    check = run_chain_verification(requested_by="cora")

    assert check.intact, check.detail
    heads = ChainAnchor.objects.filter(chain="trading_orderevent", kind=ChainAnchorKind.HEAD, engine_id=engine)
    assert sorted(heads.values_list("position", flat=True)) == [2, 3]


# --- retention ----------------------------------------------------------------------------------------------


def test_retention_anchors_each_engine_so_its_chain_still_verifies_after_the_oldest_partition_is_dropped(settings):
    if timeseries.uses_hypertables():
        pytest.skip("TimescaleDB is installed: drop_chunks instead of native partitions")
    settings.ORDER_RETENTION_DAYS = 20
    settings.TIMESERIES_RETENTION_DAYS = 3650  # leave the market tables alone
    today = dt.datetime.now(dt.UTC).date()
    old_day = today - dt.timedelta(days=25)
    timeseries.create_day_partition("trading_orderevent", old_day)
    old_ns = int(dt.datetime(old_day.year, old_day.month, old_day.day, 9, tzinfo=dt.UTC).timestamp() * 1e9)
    running, retired = engine_name("eng-live"), engine_name("eng-gone")
    writer = order_events(running, 3, start_ns=old_ns)
    writer.ns = int(dt.datetime.now(dt.UTC).timestamp() * 1e9)  # then three events today
    for n in range(4, 7):
        writer.add("OrderAccepted", f"c-{n}", venue_order_id=n)
    order_events(retired, 2, start_ns=old_ns)  # an engine whose every event expires
    run_chain_verification(requested_by="cora")  # proves retired:2 as a head, which retention then removes
    last_dropped = {running: row_hash_of(running, 3), retired: row_hash_of(retired, 2)}

    dropped = timeseries.drop_expired_partitions(today=today)
    report = verify_chains()

    assert timeseries.partition_name("trading_orderevent", old_day) in dropped
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(seq) FROM trading_orderevent WHERE engine_id = %s", [running])
        assert cursor.fetchone()[0] == 4
    anchors = {
        anchor.engine_id: (anchor.position, bytes(anchor.row_hash))
        for anchor in ChainAnchor.objects.filter(kind=ChainAnchorKind.RETENTION, engine_id__in=[running, retired])
    }
    assert anchors == {running: (3, last_dropped[running]), retired: (2, last_dropped[retired])}
    assert report.intact, report.first_break


def test_an_event_removed_after_retention_still_breaks_the_chain_from_the_anchor(settings):
    if timeseries.uses_hypertables():
        pytest.skip("TimescaleDB is installed: drop_chunks instead of native partitions")
    settings.ORDER_RETENTION_DAYS = 20
    settings.TIMESERIES_RETENTION_DAYS = 3650
    today = dt.datetime.now(dt.UTC).date()
    old_day = today - dt.timedelta(days=25)
    timeseries.create_day_partition("trading_orderevent", old_day)
    engine = engine_name("eng-live")
    writer = order_events(
        engine, 2, start_ns=int(dt.datetime(old_day.year, old_day.month, old_day.day, tzinfo=dt.UTC).timestamp() * 1e9)
    )
    writer.ns = int(dt.datetime.now(dt.UTC).timestamp() * 1e9)
    for n in range(3, 6):
        writer.add("OrderAccepted", f"c-{n}", venue_order_id=n)
    timeseries.drop_expired_partitions(today=today)

    superuser_sql(
        "DELETE FROM trading_orderevent WHERE engine_id = %s AND seq = 3", [engine], table="trading_orderevent"
    )
    report = verify_chains()

    assert report.first_break.code == ChainBreakCode.LINK_BROKEN
    assert report.first_break.row == f"{engine}:4"
