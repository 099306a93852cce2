"""Capture every SQL statement the KPI functions send (shared by test_dialects.py and test_spark.py).

Every KPI function runs once on a connection while a ``before_execute`` listener records the SQLAlchemy
statement objects it sends, tagged with the name of the call that sent them. The statements carry their
bound values, so a test can compile them for another dialect (Trino, PostgreSQL, Spark/Databricks) and,
with ``literal_binds``, run them on an engine SQLAlchemy cannot connect to (Spark via ``spark.sql``).
"""
from __future__ import annotations

import datetime as dt
from typing import Callable, NamedTuple

import sqlalchemy as sa

from analytics import kpis, ledger
from analytics.kpis import operations as ops
from analytics.kpis import sla

AS_OF = dt.date(2026, 10, 31)
START_Q = dt.date(2026, 8, 1)


class Captured(NamedTuple):
    """One statement a KPI function sent: the call's name and the SQLAlchemy statement object."""

    call: str
    statement: sa.sql.ClauseElement


def kpi_calls(conn: sa.Connection) -> dict[str, Callable[[], object]]:
    """Every KPI function (and the two ledger building blocks) as a named zero-argument call on ``conn``."""
    flt = kpis.LedgerFilter(currencies=(kpis.main_currency(conn),))
    dates = kpis.last_month_ends(AS_OF, 6)
    return {
        "main_currency": lambda: kpis.main_currency(conn),
        "snapshot": lambda: kpis.snapshot(conn, AS_OF, flt),
        "aging": lambda: kpis.aging(conn, AS_OF, flt),
        "aging_trend": lambda: kpis.aging_trend(conn, dates, flt),
        "kpi_trend": lambda: kpis.kpi_trend(conn, dates, flt),
        "aging_detail": lambda: kpis.aging_detail(conn, AS_OF, flt, bucket="31-60", limit=50),
        "cei": lambda: kpis.cei(conn, START_Q, AS_OF, flt),
        "payment_days": lambda: kpis.payment_days(conn, START_Q, AS_OF, flt),
        "write_off_ratio": lambda: kpis.write_off_ratio(conn, START_Q, AS_OF, flt),
        "roll_rates": lambda: kpis.roll_rates(conn, dates, flt),
        "provision_matrix": lambda: kpis.provision_matrix(conn, AS_OF, flt, lookback=4),
        "dispute_stats": lambda: ops.dispute_stats(conn, START_Q, AS_OF, flt),
        "disputes_by_reason": lambda: ops.disputes_by_reason(conn, START_Q, AS_OF, flt),
        "open_disputes": lambda: ops.open_disputes(conn, AS_OF, flt),
        "promise_stats": lambda: ops.promise_stats(conn, START_Q, AS_OF, flt),
        "promises_due": lambda: ops.promises_due(conn, AS_OF, flt),
        "contact_coverage": lambda: ops.contact_coverage(conn, AS_OF, flt),
        "collector_kpis": lambda: ops.collector_kpis(conn, START_Q, AS_OF, flt),
        "sla_status": lambda: sla.sla_status(conn, AS_OF, flt),
        "open_items": lambda: conn.execute(sa.select(ledger.open_items(AS_OF, flt))).all(),
        "open_items_over": lambda: conn.execute(sa.select(ledger.open_items_over(dates, flt))).all(),
        "filtered aging": lambda: kpis.aging(conn, AS_OF, kpis.LedgerFilter(
            currencies=flt.currencies, regions=("EMEA",), business_units=("BU1",), collectors=("C01",))),
    }


def capture_kpi_statements(engine: sa.Engine) -> tuple[list[str], list[Captured]]:
    """Run every KPI call once on ``engine``; return the call names and every statement they sent, in order."""
    captured: list[Captured] = []
    current = [""]

    def record(conn, clauseelement, multiparams, params, execution_options):
        if isinstance(clauseelement, sa.sql.ClauseElement):
            assert not multiparams and not params, "KPI statements carry their values (no separate parameters)"
            captured.append(Captured(current[0], clauseelement))

    with engine.connect() as conn:
        calls = kpi_calls(conn)
        sa.event.listen(conn, "before_execute", record)
        try:
            for name, fn in calls.items():
                current[0] = name
                fn()
        finally:
            sa.event.remove(conn, "before_execute", record)
    return list(calls), captured
