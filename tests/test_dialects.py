"""The KPI queries compile for a distributed SQL engine (Trino) and for PostgreSQL.

The statements are captured, not re-built: every KPI function runs once on a small generated DuckDB
ledger while a ``before_execute`` listener records the SQLAlchemy statement objects it sends. Each
recorded statement is then compiled for the Trino dialect (``trino.sqlalchemy``) and for PostgreSQL
(psycopg), which must succeed, and wherever a statement uses :class:`analytics.db.days_between` the
Trino SQL must say ``date_diff('day', ...)`` (Trino has no ``date - date`` returning days).

Nothing here needs a Trino server: compiling is what a warehouse deployment would do first, and it
catches constructs a dialect cannot express. Also checked: ``open_items_over`` (which builds only the
(date, item) pairs that can be open) equals ``open_items`` date by date on DuckDB and SQLite.
"""
from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import visitors

from analytics import db, generator, kpis, ledger
from analytics.kpis import operations as ops
from analytics.kpis import sla

trino_sa = pytest.importorskip("trino.sqlalchemy")

AS_OF = dt.date(2026, 10, 31)
START_Q = dt.date(2026, 8, 1)


def _kpi_calls(conn) -> list[str]:
    """Run every KPI function once; returns their names (statements are captured by the listener)."""
    flt = kpis.LedgerFilter(currencies=(kpis.main_currency(conn),))
    dates = kpis.last_month_ends(AS_OF, 6)
    calls = {
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
    for fn in calls.values():
        fn()
    return list(calls)


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    url = f"duckdb:///{tmp_path_factory.mktemp('dialects') / 'ledger.duckdb'}"
    engine = db.connect(url)
    generator.generate(engine, customers=20, invoices=600, seed=5, end=AS_OF)
    statements: list = []

    def record(conn, clauseelement, multiparams, params, execution_options):
        if isinstance(clauseelement, sa.sql.ClauseElement):
            statements.append(clauseelement)

    with engine.connect() as conn:
        sa.event.listen(conn, "before_execute", record)
        names = _kpi_calls(conn)
        sa.event.remove(conn, "before_execute", record)
    engine.dispose()
    return names, statements


def _uses_days_between(stmt) -> bool:
    return any(isinstance(el, db.days_between) for el in visitors.iterate(stmt, {"column_collections": False}))


DIALECTS = {
    "trino": lambda: sa.create_engine("trino://analyst@warehouse:8080/hive/ar").dialect,
    "postgresql": lambda: postgresql.psycopg.dialect(),
}


@pytest.mark.parametrize("dialect_name", sorted(DIALECTS))
def test_every_kpi_statement_compiles(captured, dialect_name):
    names, statements = captured
    assert len(statements) >= len(names)  # every function sent at least one statement
    dialect = DIALECTS[dialect_name]()
    failures = []
    for stmt in statements:
        try:
            sql = str(stmt.compile(dialect=dialect))
        except Exception as exc:  # noqa: BLE001 - report every statement that fails
            failures.append(f"{type(exc).__name__}: {exc}\n{stmt}")
            continue
        assert sql.strip()
    assert not failures, "\n\n".join(failures[:3])


def test_days_between_renders_date_diff_for_trino(captured):
    _, statements = captured
    with_days = [s for s in statements if _uses_days_between(s)]
    assert len(with_days) >= 5  # aging, aging detail, trends, roll rates, payment days...
    trino = DIALECTS["trino"]()
    pg = DIALECTS["postgresql"]()
    for stmt in with_days:
        t_sql = str(stmt.compile(dialect=trino))
        assert "date_diff('day', " in t_sql
        assert "julianday" not in t_sql
        p_sql = str(stmt.compile(dialect=pg))
        assert "date_diff" not in p_sql and "AS DATE) - CAST(" in p_sql


def test_days_between_literal_compiles_everywhere():
    expr = db.days_between(sa.literal(dt.date(2024, 1, 1), sa.Date), sa.literal(dt.date(2024, 3, 1), sa.Date))
    stmt = sa.select(expr.label("d"))
    assert "date_diff('day', " in str(stmt.compile(dialect=DIALECTS["trino"]()))
    assert "julianday(" in str(stmt.compile(dialect=sa.create_engine("sqlite://").dialect))
    with db.make_engine("sqlite://").connect() as conn:
        assert conn.execute(stmt).scalar() == 60


@pytest.mark.parametrize("url", ["duckdb:///:memory:", "sqlite://"])
def test_open_items_over_matches_open_items_per_date(url):
    """The candidate-pair pruning in open_items_over never drops or adds an open item."""
    engine = db.connect(url)
    generator.generate(engine, customers=12, invoices=400, seed=9, end=AS_OF)
    dates = kpis.last_month_ends(AS_OF, 8) + [dt.date(2025, 6, 15)]
    with engine.connect() as conn:
        o = ledger.open_items_over(dates)
        got = sorted((str(r.as_of)[:10], r.invoice_id, int(r.open_cents), int(r.days_past_due))
                     for r in conn.execute(sa.select(o)))
        want = []
        for d in dates:
            oi = ledger.open_items(d)
            want += [(d.isoformat(), r.invoice_id, int(r.open_cents), int(r.days_past_due))
                     for r in conn.execute(sa.select(oi))]
    assert got and got == sorted(want)
