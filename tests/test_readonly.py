"""Read-only databases (AR_DB_READONLY): a warehouse role that may only SELECT, and a DuckDB file opened read_only.

The PostgreSQL tests use the suite's real server (``pg_server``): a ledger is generated as the superuser,
then roles are created that can only SELECT (all tables; all but ``users`` and ``ledger_meta``; all but
``promises``), and the product is used through them with ``AR_DB_READONLY=1``. Every number must equal
the one computed through the owner's connection, and every write must be refused with the clear
"this database is read-only" message, never a database traceback.
"""
from __future__ import annotations

import datetime as dt
import json
import time

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics import auth, db, generator, kpis, loaders, workflow
from analytics.auth import User
from analytics.errors import ReadOnlyDatabase, UserError
from analytics.kpis import operations
from analytics.ledger import LedgerFilter

READONLY_TEXT = "read-only (AR_DB_READONLY)"
ADMIN = User("admin", "admin")
GENERATED = dict(customers=40, invoices=1500, seed=11, end=dt.date(2025, 12, 31), months=18)


# ------------------------------------------------------------------------------------------------
# Fixtures: one generated PostgreSQL ledger and three SELECT-only roles, made once per module
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pg_warehouse(pg_server):
    """(owner URL, {role: URL}) of a generated ledger and SELECT-only roles on it."""
    owner_url = pg_server.create_database("ro_warehouse")
    owner = db.connect(owner_url)
    generator.generate(owner, **GENERATED)
    auth.create_demo_users(owner)
    # role -> tables it may NOT read (everything else: SELECT only)
    roles = {"ar_reader": (), "ar_lean": ("users", "ledger_meta"), "ar_partial": ("promises",)}
    with owner.begin() as conn:
        conn.execute(sa.text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        for role, hidden in roles.items():
            if not _role_exists(conn, role):
                conn.execute(sa.text(f"CREATE ROLE {role} LOGIN"))
            conn.execute(sa.text(f"GRANT CONNECT ON DATABASE ro_warehouse TO {role}"))
            conn.execute(sa.text(f"GRANT USAGE ON SCHEMA public TO {role}"))
            conn.execute(sa.text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
            for table in hidden:
                conn.execute(sa.text(f"REVOKE SELECT ON {table} FROM {role}"))
    owner.dispose()
    base = sa.engine.make_url(owner_url)
    urls = {role: base.set(username=role).render_as_string(hide_password=False) for role in roles}
    return owner_url, urls


def _role_exists(conn, role: str) -> bool:
    return conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first() is not None


@pytest.fixture
def readonly_env(monkeypatch):
    monkeypatch.setenv(db.READONLY_ENV, "1")


def _as_of(engine) -> dt.date:
    with engine.connect() as conn:
        return kpis.latest_date(conn)


# ------------------------------------------------------------------------------------------------
# PostgreSQL: a SELECT-only role
# ------------------------------------------------------------------------------------------------
@pytest.mark.postgres
def test_the_role_really_is_select_only(pg_warehouse):
    """Without the product's check the database itself refuses: the role is what a warehouse gives."""
    _, urls = pg_warehouse
    raw = db.make_engine(urls["ar_reader"])
    try:
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            with raw.begin() as conn:
                conn.execute(sa.text("INSERT INTO ledger_meta (key, value) VALUES ('x', '1')"))
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            with raw.begin() as conn:
                conn.execute(sa.text("CREATE TABLE scratch (a int)"))
    finally:
        raw.dispose()


@pytest.mark.postgres
def test_kpis_and_worklist_through_a_select_only_role(pg_warehouse, readonly_env, tmp_path):
    owner_url, urls = pg_warehouse
    with pytest.MonkeyPatch.context() as mp:  # the owner connection migrates, as usual
        mp.delenv(db.READONLY_ENV)
        owner = db.connect(owner_url)
    reader = db.connect(urls["ar_reader"])
    try:
        assert db.is_readonly(reader)
        assert db.missing_tables(reader) == ()
        assert db.ledger_version(reader) == db.ledger_version(owner) > 0
        as_of = _as_of(reader)
        dates = kpis.last_month_ends(as_of, 6) + [as_of]
        start = as_of - dt.timedelta(days=89)
        flt = LedgerFilter()
        with reader.connect() as r, owner.connect() as o:
            snap = kpis.snapshot(r, as_of)
            assert snap["ar_total"] > 0 and snap["open_items"] > 0
            assert snap == kpis.snapshot(o, as_of)
            for fn, args in ((kpis.aging, (as_of,)), (kpis.kpi_trend, (dates,)), (kpis.roll_rates, (dates,)),
                             (kpis.aging_detail, (as_of,)),
                             (operations.dispute_stats, (start, as_of)),
                             (operations.promise_stats, (start, as_of)),
                             (operations.contact_coverage, (as_of,)),
                             (operations.collector_kpis, (start, as_of))):
                got, want = fn(r, *args, flt), fn(o, *args, flt)
                if isinstance(got, pd.DataFrame):
                    assert len(got), fn.__name__
                    pd.testing.assert_frame_equal(got, want, obj=fn.__name__)
                else:
                    assert got == want, fn.__name__
            # The worklist scored through the reader with a trained model (not the heuristic). The model is
            # trained on a DuckDB ledger of the same seed: training reads the same tables, but its feature
            # queries take ~220 s on PostgreSQL against ~8 s on DuckDB (reported to the risk owner).
            from analytics import worklist
            from analytics.risk import scoring

            with pytest.MonkeyPatch.context() as mp:
                mp.delenv(db.READONLY_ENV)
                duck = db.connect(f"duckdb:///{tmp_path / 'train.duckdb'}")
                generator.generate(duck, **GENERATED)
                model = scoring.train(duck, as_of, max_iter=30)
                duck.dispose()
            assert model.method["account"] == "model", model.method
            wl = worklist.worklist(r, as_of, model=model)
            assert len(wl) and wl["rank"].iloc[0] == 1
            pd.testing.assert_frame_equal(wl, worklist.worklist(o, as_of, model=model))
    finally:
        reader.dispose()
        owner.dispose()


@pytest.mark.postgres
def test_every_write_path_says_read_only(pg_warehouse, readonly_env, tmp_path):
    _, urls = pg_warehouse
    reader = db.connect(urls["ar_reader"])
    try:
        with reader.connect() as conn:
            customer = conn.execute(sa.text("SELECT id FROM customers ORDER BY id LIMIT 1")).scalar()
            before = db.ledger_version(conn)
        manager = User("manager", "manager")
        writes = [
            lambda: workflow.log_activity(reader, manager, customer, "call", outcome="no answer"),
            lambda: workflow.record_promise(reader, manager, customer, dt.date.today() + dt.timedelta(days=3), 100),
            lambda: workflow.decide_writeoff(reader, manager, 1, True),
            lambda: auth.add_user(reader, "newbie", "a-long-password", "finance"),
            lambda: auth.create_demo_users(reader),
            lambda: generator.generate(reader, customers=2, invoices=2, seed=1),
        ]
        from analytics import cash_app

        writes.append(lambda: cash_app.run_matching(reader, User("fin", "finance")))
        csv = tmp_path / "ledger.csv"
        csv.write_text("x\n1\n")
        writes.append(lambda: loaders.load(reader, "ibm", str(csv)))
        for write in writes:
            with pytest.raises(ReadOnlyDatabase, match=r"read-only \(AR_DB_READONLY\)"):
                write()
        assert db.ledger_version(reader) == before
        # A correct password still signs in (the users table is readable), without rewriting the hash.
        assert auth.authenticate(reader, "manager", auth.demo_password("manager")) == manager
    finally:
        reader.dispose()


@pytest.mark.postgres
def test_without_ledger_meta_the_cache_key_moves_with_time(pg_warehouse, readonly_env, monkeypatch):
    """No readable ledger_meta: ledger_version is a time bucket, so cached figures expire (never forever)."""
    _, urls = pg_warehouse
    monkeypatch.setenv(db.READONLY_TTL_ENV, "60")
    lean = db.connect(urls["ar_lean"])
    try:
        assert set(db.missing_tables(lean)) >= {"users", "ledger_meta"}
        clock = [60 * 20_000.0]  # the start of a bucket
        monkeypatch.setattr(db.time, "time", lambda: clock[0])
        first = db.ledger_version(lean)
        assert first < 0  # never equal to a real version
        clock[0] += 59
        assert db.ledger_version(lean) == first
        clock[0] += 2
        assert db.ledger_version(lean) == first - 1
        with lean.connect() as conn:  # the KPIs do not need it
            assert kpis.snapshot(conn, _as_of(lean))["ar_total"] > 0
    finally:
        lean.dispose()


@pytest.mark.postgres
def test_a_missing_table_is_named(pg_warehouse, readonly_env):
    _, urls = pg_warehouse
    with pytest.raises(UserError) as info:
        db.connect(urls["ar_partial"])
    text = str(info.value)
    assert "promises (missing)" in text and "AR_DB_READONLY" in text
    assert "users" not in text.split("lacks")[1].split(". ")[0]  # optional tables are not required


def test_missing_columns_and_tables_are_named(tmp_path):
    """On any database, migrate=False checks instead of migrating and names tables and columns."""
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    db.connect(url).dispose()
    eng = db.make_engine(url)
    with eng.begin() as conn:
        conn.execute(sa.text("DROP INDEX ix_activities_customer"))
        conn.execute(sa.text("ALTER TABLE activities DROP COLUMN note"))
        conn.execute(sa.text("ALTER TABLE activities DROP COLUMN outcome"))
        conn.execute(sa.text("DROP TABLE writeoff_proposals"))
        conn.execute(sa.text("DROP TABLE match_proposals"))
        conn.execute(sa.text("DROP TABLE receipt_truth"))
        conn.execute(sa.text("DROP TABLE promises"))
    eng.dispose()
    with pytest.raises(UserError) as info:
        db.connect(url, migrate=False)
    text = str(info.value)
    assert "activities (missing columns outcome, note)" in text
    assert "promises (missing)" in text
    assert "writeoff_proposals" not in text  # optional


def test_connect_without_migrating_leaves_writes_on(tmp_path, monkeypatch):
    """migrate=False alone only skips the migration; read-only is the setting (or a read_only DuckDB URL)."""
    monkeypatch.delenv(db.READONLY_ENV, raising=False)
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    db.connect(url).dispose()
    eng = db.connect(url, migrate=False)
    assert not db.is_readonly(eng) and db.missing_tables(eng) == ()
    db.require_writable(eng)
    eng.dispose()
    for value, expected in (("1", True), ("TRUE", True), ("yes", True), ("0", False), ("", False)):
        monkeypatch.setenv(db.READONLY_ENV, value)
        assert db.readonly_env() is expected


# ------------------------------------------------------------------------------------------------
# The dashboard on the SELECT-only role
# ------------------------------------------------------------------------------------------------
@pytest.mark.postgres
def test_dashboard_pages_on_a_select_only_role(pg_warehouse, readonly_env, monkeypatch):
    from tests.apptest_helpers import assert_clean, open_page, texts

    _, urls = pg_warehouse
    url = urls["ar_reader"]
    at = open_page(monkeypatch, url, "overview", role="manager")
    assert_clean(at)
    assert any(m.label == "Total AR" for m in at.metric)

    with db.make_engine(url).connect() as conn:
        customer = conn.execute(sa.text(
            "SELECT customer_id FROM invoices GROUP BY customer_id ORDER BY count(*) DESC LIMIT 1")).scalar()
    at = open_page(monkeypatch, url, "customer_360", role="manager", query={"customer": customer})
    assert_clean(at)
    shown = texts(at)
    assert "Recording work on this account is switched off" in shown and READONLY_TEXT in shown
    assert not [b for b in at.button if "Save" in str(b.label) or "Propose" in str(b.label)]

    at = open_page(monkeypatch, url, "data", role="admin")
    assert_clean(at)
    shown = texts(at)
    assert "Loading files is switched off" in shown and "Adding users is switched off" in shown
    assert not [b for b in at.button if b.label in ("Load", "Preview", "Add user", "Generate")]

    at = open_page(monkeypatch, url, "dunning", role="manager")
    assert_clean(at)
    assert "Recording the letters as activities is switched off" in texts(at)
    assert not [b for b in at.button if str(b.label).startswith("Record")]

    at = open_page(monkeypatch, url, "cash_application", role="finance")
    assert_clean(at)
    assert all(b.disabled for b in at.button if str(b.label).startswith(("Run matching", "Accept", "Reject")))


@pytest.mark.postgres
def test_sign_in_without_a_users_table_explains_and_lets_nobody_in(pg_warehouse, readonly_env, monkeypatch):
    from tests.apptest_helpers import app_test

    _, urls = pg_warehouse
    at = app_test(monkeypatch, urls["ar_lean"], role=None).run()
    assert not at.exception
    assert any("no readable `users` table" in e.value for e in at.error)
    assert not at.text_input  # no sign-in form and no "create the first administrator" form


# ------------------------------------------------------------------------------------------------
# DuckDB file opened read_only, and the CLI
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def duckdb_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ro_duckdb") / "ledger.duckdb"
    eng = db.connect(f"duckdb:///{path}")
    generator.generate(eng, customers=20, invoices=400, seed=5, end=dt.date(2025, 6, 30), months=12)
    eng.dispose()
    return path


def test_duckdb_file_opened_read_only(duckdb_file, readonly_env):
    eng = db.connect(f"duckdb:///{duckdb_file}")
    try:
        assert eng.url.query.get("access_mode") == "read_only" and db.is_readonly(eng)
        with eng.connect() as conn:
            assert kpis.snapshot(conn, kpis.latest_date(conn))["ar_total"] > 0
        with pytest.raises(ReadOnlyDatabase):
            workflow.log_activity(eng, ADMIN, "nobody", "call")
        with pytest.raises(sa.exc.ProgrammingError, match="read-only"):  # DuckDB refuses on its own too
            with eng.begin() as conn:
                conn.execute(sa.text("DELETE FROM activities"))
    finally:
        eng.dispose()


def test_cli_read_only(duckdb_file, monkeypatch, capsys):
    from analytics.cli import main

    monkeypatch.setenv(db.READONLY_ENV, "0")  # recorded, so the "1" that --read-only sets is undone after
    url = f"duckdb:///{duckdb_file}"
    assert main(["kpis", "--db", url, "--read-only", "--json"]) == 0
    snap = json.loads(capsys.readouterr().out)
    assert snap["ar_total"] > 0
    assert db.readonly_env()  # --read-only set it for this process
    assert main(["users", "--db", url, "add", "someone", "--role", "finance", "--password", "a-long-password"]) == 2
    assert READONLY_TEXT in capsys.readouterr().err


@pytest.mark.postgres
def test_cli_kpis_on_a_select_only_role(pg_warehouse, readonly_env, capsys):
    from analytics.cli import main

    _, urls = pg_warehouse
    assert main(["kpis", "--db", urls["ar_reader"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ar_total"] > 0
