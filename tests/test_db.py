"""The schema, migrations and portable SQL helpers behave the same on every backend."""
import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics import db, schema
from analytics.errors import UserError


def test_migrations_create_every_table(engine):
    names = set(sa.inspect(engine).get_table_names())
    assert {t.name for t in schema.LEDGER_TABLES} <= names
    db.init_db(engine)  # idempotent: a second upgrade changes nothing
    assert set(sa.inspect(engine).get_table_names()) == names


def _seed(conn):
    conn.execute(schema.collectors.insert().values(id="C1", name="Ann"))
    conn.execute(schema.customers.insert().values(id="K1", name="Kappa", collector_id="C1"))


def test_days_between_and_serial_ids(engine):
    with engine.begin() as conn:
        _seed(conn)
        conn.execute(schema.invoices.insert().values(
            id="0001", customer_id="K1", invoice_date=dt.date(2024, 1, 1), due_date=dt.date(2024, 1, 31),
            amount_cents=10_000))
        ids = [conn.execute(schema.activities.insert().returning(schema.activities.c.id).values(
            customer_id="K1", occurred_at=dt.datetime(2024, 1, 2, 9), type="call")).scalar() for _ in range(2)]
        days = conn.execute(sa.select(db.days_between(schema.invoices.c.due_date, sa.literal(dt.date(2024, 3, 1),
                                                                                             sa.Date)))).scalar()
    assert days == 30
    assert ids[1] == ids[0] + 1


@pytest.mark.parametrize("row, why", [
    (dict(doc_type="invoice", amount_cents=-5), "amount_sign"),
    (dict(doc_type="credit_memo", amount_cents=5), "amount_sign"),
    (dict(doc_type="bogus", amount_cents=5), "doc_type"),
    (dict(doc_type="invoice", amount_cents=5, due_date=dt.date(2023, 12, 1)), "due_after_invoice"),
    (dict(doc_type="invoice", amount_cents=5, customer_id="nobody"), "foreign key"),
])
def test_database_refuses_bad_invoices(engine, row, why):
    base = dict(id="X", customer_id="K1", invoice_date=dt.date(2024, 1, 1), due_date=dt.date(2024, 1, 31))
    with engine.begin() as conn:
        _seed(conn)
    with pytest.raises(sa.exc.IntegrityError):
        with engine.begin() as conn:
            conn.execute(schema.invoices.insert().values(**{**base, **row}))
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.invoices)).scalar() == 0


def test_bulk_insert_and_ledger_version(engine):
    frame = pd.DataFrame({
        "id": ["A", "B"], "customer_id": ["K1", "K1"], "doc_type": ["invoice", "credit_memo"],
        "invoice_date": pd.to_datetime(["2024-01-01", "2024-01-05"]).date,
        "due_date": pd.to_datetime(["2024-01-31", "2024-01-05"]).date, "amount_cents": [12_345, -2_000],
    })
    with engine.begin() as conn:
        _seed(conn)
        assert db.bulk_insert(conn, schema.invoices, frame) == 2
        assert db.bump_ledger_version(conn) == 1
        db.bulk_insert(conn, schema.activities, pd.DataFrame({
            "customer_id": ["K1"], "occurred_at": [dt.datetime(2024, 1, 3, 10)], "type": ["email"]}))
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.sum(schema.invoices.c.amount_cents))).scalar()
        assert int(total) == 10_345
        assert conn.execute(sa.select(schema.invoices.c.invoice_date).where(schema.invoices.c.id == "B")).scalar() \
            == dt.date(2024, 1, 5)
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.activities)).scalar() == 1
    assert db.ledger_version(engine) == 1


def test_date_values_is_a_table(engine):
    dates = [dt.date(2024, 1, 31), dt.date(2024, 2, 29)]
    tbl = db.date_values(dates)
    with engine.connect() as conn:
        assert [r[0] for r in conn.execute(sa.select(tbl.c.as_of).order_by(tbl.c.as_of))] == dates


def test_migrations_match_schema_module(engine):
    """schema.py and the Alembic migrations describe the same tables and columns (no drift)."""
    for table in schema.LEDGER_TABLES:
        if engine.dialect.name == "duckdb":  # duckdb_engine's inspector queries pg_catalog tables DuckDB lacks
            with engine.connect() as conn:
                cols = set(conn.execute(sa.text("SELECT column_name FROM information_schema.columns "
                                                "WHERE table_name = :t"), {"t": table.name}).scalars())
        else:
            cols = {c["name"] for c in sa.inspect(engine).get_columns(table.name)}
        assert cols == set(table.c.keys()), table.name


def test_duckdb_memory_limit(monkeypatch):
    """DuckDB gets a bounded buffer pool (default 1GB, $AR_DUCKDB_MEMORY overrides); a bad size is a clear error."""
    monkeypatch.delenv(db.DUCKDB_MEMORY_ENV, raising=False)
    with db.make_engine("duckdb:///:memory:").connect() as c:
        assert c.execute(sa.text("SELECT current_setting('memory_limit')")).scalar() == "953.6 MiB"
    monkeypatch.setenv(db.DUCKDB_MEMORY_ENV, "512MB")
    with db.make_engine("duckdb:///:memory:").connect() as c:
        assert c.execute(sa.text("SELECT current_setting('memory_limit')")).scalar() == "488.2 MiB"
    monkeypatch.setenv(db.DUCKDB_MEMORY_ENV, "lots")
    with pytest.raises(UserError, match="AR_DUCKDB_MEMORY='lots' is not a DuckDB memory size"):
        db.make_engine("duckdb:///:memory:").connect()


def test_bulk_write_lifts_the_duckdb_limit_and_restores_it(tmp_path, monkeypatch):
    """A bulk write (generator, load, backup import) runs without the 1GB cap, which is back afterwards,
    after a failure too; $AR_DUCKDB_BULK_MEMORY sets the cap used during the write."""
    monkeypatch.delenv(db.DUCKDB_MEMORY_ENV, raising=False)
    engine = db.connect(f"duckdb:///{tmp_path / 'b.duckdb'}")
    setting = sa.text("SELECT current_setting('memory_limit')")
    with engine.connect() as c:
        capped = c.execute(setting).scalar()
    with db.bulk_write(engine) as conn:
        assert conn.execute(setting).scalar() != capped
    with engine.connect() as c:
        assert c.execute(setting).scalar() == capped
    monkeypatch.setenv(db.DUCKDB_BULK_MEMORY_ENV, "3GB")
    with pytest.raises(RuntimeError):
        with db.bulk_write(engine) as conn:
            assert conn.execute(setting).scalar() == "2.7 GiB"
            raise RuntimeError("boom")
    with engine.connect() as c:
        assert c.execute(setting).scalar() == capped


def test_settlement_indexes_and_statistics_after_a_bulk_load(engine):
    """PostgreSQL (migration 0009): the covering indexes the as-of settlement sums stream exist, and a bulk
    write leaves the large tables vacuumed and analysed (statistics for the planner, a visibility map for
    index-only scans). Elsewhere there is nothing to add and bulk_write stays a plain transaction."""
    with db.bulk_write(engine) as conn:
        conn.execute(schema.customers.insert().values(id="K-STATS", name="Stats Ltd"))
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as conn:
        names = set(conn.execute(sa.text("SELECT indexname FROM pg_indexes WHERE tablename IN "
                                         "('applications', 'adjustments')")).scalars())
        assert {"ix_applications_invoice_asof", "ix_adjustments_invoice_asof"} <= names
        done = conn.execute(sa.text("SELECT relname FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL "
                                    "AND last_analyze IS NOT NULL")).scalars().all()
    assert set(db.PLANNER_TABLES) <= set(done)
