"""The KPI queries compile for distributed SQL engines (Trino, Spark SQL) and for PostgreSQL.

The statements are captured, not re-built: every KPI function runs once on a small generated DuckDB
ledger while a ``before_execute`` listener records the SQLAlchemy statement objects it sends
(``tests/kpi_capture.py``, shared with ``tests/test_spark.py``). Each
recorded statement is then compiled for the Trino dialect (``trino.sqlalchemy``) and for PostgreSQL
(psycopg) and for Spark SQL (the Databricks dialect, ``databricks-sqlalchemy``), with bound parameters and
with values inlined, which must succeed, and wherever a statement uses :class:`analytics.db.days_between` the
Trino SQL must say ``date_diff('day', ...)`` (Trino has no ``date - date`` returning days).

Nothing here needs a Trino server: compiling is what a warehouse deployment would do first, and it
catches constructs a dialect cannot express. Also checked: ``open_items_over`` (which builds only the
(date, item) pairs that can be open) equals ``open_items`` date by date on DuckDB and SQLite.
"""
from __future__ import annotations

import datetime as dt
import importlib.util

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import visitors

from analytics import db, generator, kpis, ledger
from tests.kpi_capture import AS_OF, capture_kpi_statements

trino_sa = pytest.importorskip("trino.sqlalchemy")


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    url = f"duckdb:///{tmp_path_factory.mktemp('dialects') / 'ledger.duckdb'}"
    engine = db.connect(url)
    generator.generate(engine, customers=20, invoices=600, seed=5, end=AS_OF)
    names, captured = capture_kpi_statements(engine)
    engine.dispose()
    return names, [c.statement for c in captured]


def _uses_days_between(stmt) -> bool:
    return any(isinstance(el, db.days_between) for el in visitors.iterate(stmt, {"column_collections": False}))


HAVE_DATABRICKS = importlib.util.find_spec("databricks") is not None and \
    importlib.util.find_spec("databricks.sqlalchemy") is not None
needs_databricks = pytest.mark.skipif(
    not HAVE_DATABRICKS, reason="databricks-sqlalchemy (Spark SQL dialect, requirements.txt) is not installed: "
                                "`make setup` installs it")

DIALECTS = {
    "trino": lambda: sa.create_engine("trino://analyst@warehouse:8080/hive/ar").dialect,
    "postgresql": lambda: postgresql.psycopg.dialect(),
    # Databricks SQL is Spark SQL; tests/test_spark.py runs these statements on Spark for real.
    "spark": lambda: sa.create_engine("databricks://token:x@warehouse?http_path=/sql&catalog=main&schema=ar").dialect,
}


@pytest.mark.parametrize("dialect_name", [pytest.param(n, marks=needs_databricks) if n == "spark" else n
                                          for n in sorted(DIALECTS)])
@pytest.mark.parametrize("literal", [False, True], ids=["bound", "literal"])
def test_every_kpi_statement_compiles(captured, dialect_name, literal):
    names, statements = captured
    assert len(statements) >= len(names)  # every function sent at least one statement
    dialect = DIALECTS[dialect_name]()
    failures = []
    for stmt in statements:
        try:
            sql = str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": literal}))
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


@needs_databricks
def test_days_between_renders_datediff_for_spark(captured):
    _, statements = captured
    spark = DIALECTS["spark"]()
    for stmt in [s for s in statements if _uses_days_between(s)]:
        sql = str(stmt.compile(dialect=spark))
        assert "datediff(" in sql and "date_diff" not in sql and "julianday" not in sql and "AS DATE) - " not in sql


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
