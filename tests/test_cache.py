"""No stale numbers: cached KPI results follow every ledger write.

The dashboard caches ``analytics`` results with :func:`dashboard.common.cached`, keyed on the function,
its arguments (dates, :class:`LedgerFilter`) and the ledger version. Every transaction that writes ledger
data bumps that version, so:

* a repeated call with the same arguments is served from the cache (no KPI query reaches the database);
* after a load (loaders) or a workflow write (an approved write-off, a promise) the version is higher and
  the same call returns the new figures, equal to a fresh uncached computation.

Also through the real page: the Overview's "Total AR" card changes after an approved write-off.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from analytics import db, generator, kpis, loaders, schema, workflow
from analytics.auth import User
from analytics.kpis import operations as ops
from dashboard import common as ui
from tests.apptest_helpers import PAGES, app_test, assert_clean, open_page

HR = Path(__file__).parent / "fixtures" / "highradius_sample.csv"
AS_OF = dt.date(2026, 10, 31)
FINANCE_MGR = User("mgr_a", "manager", None)
APPROVER = User("mgr_b", "manager", None)


@pytest.fixture
def ledger_url(tmp_path, monkeypatch):
    url = f"duckdb:///{tmp_path / 'cache.duckdb'}"
    monkeypatch.setenv("AR_DB_URL", url)
    ui.clear_caches()
    yield url
    ui.clear_caches()


class StatementCounter:
    """Counts statements the dashboard engine runs, apart from the ledger-version lookup."""

    def __init__(self, engine: sa.Engine):
        self.n = 0
        sa.event.listen(engine, "before_execute", self._count)
        self.engine = engine

    def _count(self, conn, clauseelement, *args):
        froms = getattr(clauseelement, "get_final_froms", lambda: [])()
        if not any(getattr(f, "name", None) == schema.ledger_meta.name for f in froms):
            self.n += 1

    def close(self):
        sa.event.remove(self.engine, "before_execute", self._count)


def _fresh(url, fn, *args):
    engine = db.make_engine(url)
    with engine.connect() as conn:
        return fn(conn, *args)


def _open_invoice(engine, as_of):
    """An open invoice of the main currency (the one the pages and unfiltered KPIs show)."""
    with engine.connect() as conn:
        o = kpis.aging_detail(conn, as_of, limit=50)  # no currency filter: the main currency
    row = o[(o.doc_type == "invoice") & (o.open_cents > 20_000)].iloc[0]
    return row.invoice_id, row.customer_id, int(row.open_cents)


def test_load_bumps_version_and_cached_snapshot_follows(ledger_url, tmp_path):
    engine = db.connect(ledger_url)
    lines = HR.read_text().splitlines(keepends=True)
    first, rest = tmp_path / "first.csv", tmp_path / "rest.csv"
    first.write_text("".join(lines[:16]))
    rest.write_text(lines[0] + "".join(lines[16:]))
    loaders.load(engine, "highradius", first)
    v1 = db.ledger_version(engine)
    with engine.connect() as conn:
        as_of = kpis.latest_date(conn)
    flt = kpis.LedgerFilter(currencies=("USD",))

    before = ui.cached(kpis.snapshot, as_of, flt)
    counter = StatementCounter(ui.get_engine())
    assert ui.cached(kpis.snapshot, as_of, flt) == before  # served from the cache
    assert counter.n == 0

    loaders.load(engine, "highradius", rest)  # a new import
    v2 = db.ledger_version(engine)
    assert v2 > v1
    after = ui.cached(kpis.snapshot, as_of, flt)
    counter.close()
    assert counter.n > 0  # recomputed, not served stale
    assert after == _fresh(ledger_url, kpis.snapshot, as_of, flt)
    assert after["credit_sales"] != before["credit_sales"] or after["ar_total"] != before["ar_total"]
    engine.dispose()


def test_workflow_writes_bump_version_and_cached_kpis_follow(ledger_url):
    engine = db.connect(ledger_url)
    generator.generate(engine, customers=10, invoices=300, seed=11, end=AS_OF)
    flt = kpis.LedgerFilter(currencies=(_fresh(ledger_url, kpis.main_currency),))
    invoice_id, customer_id, open_cents = _open_invoice(engine, AS_OF)

    aging_before = ui.cached(kpis.aging, AS_OF, flt)
    v0 = db.ledger_version(engine)

    # an approved write-off: proposal (one write), decision posting the adjustment (another)
    pid = workflow.propose_writeoff(engine, FINANCE_MGR, invoice_id, 10_000, "uncollectable", today=AS_OF)
    assert db.ledger_version(engine) > v0
    workflow.decide_writeoff(engine, APPROVER, pid, approve=True, decided=AS_OF)
    v2 = db.ledger_version(engine)
    aging_after = ui.cached(kpis.aging, AS_OF, flt)
    assert aging_after.open_cents.sum() == aging_before.open_cents.sum() - 10_000
    assert aging_after.equals(_fresh(ledger_url, kpis.aging, AS_OF, flt))

    # a recorded promise changes the promise KPIs of the period it falls in
    start = AS_OF.replace(day=1)
    promises_before = ui.cached(ops.promise_stats, start, AS_OF, flt)
    workflow.record_promise(engine, APPROVER, customer_id, AS_OF, 5_000, today=AS_OF)
    assert db.ledger_version(engine) > v2
    promises_after = ui.cached(ops.promise_stats, start, AS_OF, flt)
    assert not promises_after.equals(promises_before)
    assert promises_after.equals(_fresh(ledger_url, ops.promise_stats, start, AS_OF, flt))
    engine.dispose()


def test_without_a_version_bump_the_cache_would_be_stale(ledger_url):
    """Why every writer must bump the version: a write that does not is invisible to cached pages."""
    engine = db.connect(ledger_url)
    generator.generate(engine, customers=8, invoices=200, seed=4, end=AS_OF)
    flt = kpis.LedgerFilter(currencies=(_fresh(ledger_url, kpis.main_currency),))
    cur = flt.currencies[0]
    before = ui.cached(kpis.snapshot, AS_OF, flt)
    with engine.begin() as conn:
        cust = conn.execute(sa.select(schema.customers.c.id).limit(1)).scalar()
        conn.execute(schema.invoices.insert().values(
            id="CACHE-TEST-1", customer_id=cust, doc_type="invoice", invoice_date=AS_OF, due_date=AS_OF,
            amount_cents=123_456, currency=cur))
    assert ui.cached(kpis.snapshot, AS_OF, flt) == before  # stale: no bump
    with engine.begin() as conn:
        db.bump_ledger_version(conn)
    after = ui.cached(kpis.snapshot, AS_OF, flt)
    assert round((after["ar_total"] - before["ar_total"]) * 100) == 123_456
    engine.dispose()


def test_overview_page_shows_new_ar_after_a_write_off(ledger_url, monkeypatch):
    engine = db.connect(ledger_url)
    generator.generate(engine, customers=10, invoices=300, seed=11, end=AS_OF)
    at = open_page(monkeypatch, ledger_url, "overview", role="manager")
    assert_clean(at)
    card = {m.label: m.value for m in at.metric}["Total AR"]
    as_of = _fresh(ledger_url, kpis.latest_date)  # the page's default as-of date
    invoice_id, _, open_cents = _open_invoice(engine, as_of)
    pid = workflow.propose_writeoff(engine, FINANCE_MGR, invoice_id, open_cents, "test", today=as_of)
    workflow.decide_writeoff(engine, APPROVER, pid, approve=True, decided=as_of)
    at.run()
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Total AR"] != card
    engine.dispose()


# --------------------------------------------------------------------------------------------------------
# Caches keyed on what changed: work on an account (a call, a note, a promise, a dispute) leaves the money
# figures cached; an import, a cash application or an approved write-off recomputes them. On all three
# databases.
# --------------------------------------------------------------------------------------------------------
import importlib  # noqa: E402
import re  # noqa: E402

from analytics import cash_app  # noqa: E402
from analytics.kpis import ar as kpis_ar  # noqa: E402
from analytics.forecast import api as fc_api, data as fc_data  # noqa: E402
from analytics.cash_app import posting  # noqa: E402

TABLE_NAMES = sorted(t.name for t in schema.metadata.sorted_tables)


class TableSpy:
    """The tables each statement run on an engine names (read and written)."""

    def __init__(self, engine: sa.Engine):
        self.engine, self.statements = engine, []
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, *args):
        self.statements.append(statement)

    def tables(self, writes_only: bool = False) -> set[str]:
        out = set()
        for s in self.statements:
            head = s.lstrip().split(None, 1)[0].upper() if s.strip() else ""
            if writes_only and head not in ("INSERT", "UPDATE", "DELETE"):
                continue
            if writes_only:  # the table written: the first name after INSERT INTO / UPDATE / DELETE FROM
                m = re.match(r"\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)", s, re.I)
                out.add(m.group(1) if m else "?")
            else:
                out |= {t for t in TABLE_NAMES if re.search(rf"\b{t}\b", s)}
        return out

    def close(self):
        sa.event.remove(self.engine, "before_cursor_execute", self._seen)


def _money_only_calls(as_of: dt.date) -> dict:
    """One example call (arguments after the connection) of every function in db.MONEY_ONLY."""
    m1, m2 = dt.date(as_of.year, as_of.month, 1) - dt.timedelta(days=1), as_of
    return {
        kpis_ar.aging: (as_of,), kpis_ar.aging_trend: ((m1, m2),), kpis_ar.aging_detail: (as_of,),
        kpis_ar.kpi_trend: ((m1, m2),), kpis_ar.snapshot: (as_of,), kpis.main_currency: (),
        kpis_ar.cei: (m1, as_of), kpis_ar.roll_rates: ((m1 - dt.timedelta(days=31), m1, m2),),
        kpis_ar.provision_matrix: (as_of,), kpis_ar.payment_days: (m1 - dt.timedelta(days=60), as_of),
        kpis_ar.latest_date: (),
        cash_app.rollforward: (f"{m1:%Y-%m}", f"{m2:%Y-%m}"), cash_app.unapplied_aging: (as_of,),
        cash_app.ledger_integrity: (),
        fc_data.actual_receipts: (as_of - dt.timedelta(days=180), as_of), fc_data.open_by_customer: (as_of,),
        fc_api.backtest: (), fc_api.forecast: (as_of,),
    }


def test_money_only_functions_read_only_money_tables(duckdb_engine):
    """Every function cached on the money version reads nothing a work write changes (proved on its SQL)."""
    generator.generate(duckdb_engine, customers=8, invoices=250, seed=5, end=AS_OF)
    calls = _money_only_calls(AS_OF)
    listed = set()
    for name in db.MONEY_ONLY:
        module, qualname = name.split(":")
        fn = getattr(importlib.import_module(module), qualname)
        assert db.reads_money_only(fn)
        listed.add(fn)
    assert listed == set(calls)  # each listed function is exercised below, and only those
    for fn, args in calls.items():
        spy = TableSpy(duckdb_engine)
        with duckdb_engine.connect() as conn:
            fn(conn, *args)
        spy.close()
        read = spy.tables()
        assert read and read <= db.MONEY_TABLES, f"{fn.__module__}.{fn.__qualname__} reads {read - db.MONEY_TABLES}"
    assert not db.reads_money_only(ops.promise_stats) and not db.reads_money_only(ops.collector_kpis)


@pytest.fixture
def dashboard_on(engine, monkeypatch):
    """The dashboard (ui.cached) pointed at the engine fixture's database, with a small generated ledger."""
    url = engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("AR_DB_URL", url)
    ui.clear_caches()
    generator.generate(engine, customers=10, invoices=300, seed=11, end=AS_OF)
    yield engine
    ui.clear_caches()


def _counted(engine, fn, *args):
    counter = StatementCounter(ui.get_engine())
    try:
        return ui.cached(fn, *args), counter.n
    finally:
        counter.close()


def test_work_writes_keep_money_figures_cached_and_show_at_once(dashboard_on):
    engine = dashboard_on
    url = engine.url.render_as_string(hide_password=False)
    flt = kpis.LedgerFilter(currencies=(_fresh(url, kpis.main_currency),))
    invoice_id, customer_id, _ = _open_invoice(engine, AS_OF)
    start = AS_OF - dt.timedelta(days=30)
    snap = ui.cached(kpis.snapshot, AS_OF, flt)
    aging = ui.cached(kpis.aging, AS_OF, flt)
    board = ui.cached(ops.collector_kpis, start, AS_OF, flt)
    promises = ui.cached(ops.promise_stats, start, AS_OF, flt)
    v0 = db.versions(engine)

    spy = TableSpy(engine)
    workflow.log_activity(engine, APPROVER, customer_id, "call", outcome="reached", note="will pay",
                          at=dt.datetime.combine(AS_OF, dt.time(10)))
    workflow.record_promise(engine, APPROVER, customer_id, AS_OF, 5_000, today=AS_OF)
    dispute = workflow.open_dispute(engine, APPROVER, invoice_id, "pricing", 1_000, opened=AS_OF)
    workflow.resolve_dispute(engine, APPROVER, dispute, "rejected", resolved=AS_OF)
    workflow.log_activity(engine, APPROVER, customer_id, "note", note="internal")
    spy.close()
    written = spy.tables(writes_only=True) - {"ledger_meta"}
    assert written and not written & db.MONEY_TABLES, written  # the work writes touch no money table

    v1 = db.versions(engine)
    assert v1.ledger == v0.ledger + 5 and v1.money == v0.money  # five writes, no money change
    # money figures: served from the cache (no statement), and still right
    assert _counted(engine, kpis.snapshot, AS_OF, flt) == (snap, 0)
    aging_now, n = _counted(engine, kpis.aging, AS_OF, flt)
    assert n == 0 and aging_now.equals(_fresh(url, kpis.aging, AS_OF, flt))
    assert snap == _fresh(url, kpis.snapshot, AS_OF, flt)
    # work figures: recomputed at once
    board_now, n = _counted(engine, ops.collector_kpis, start, AS_OF, flt)
    assert n > 0 and not board_now.equals(board)
    assert board_now.equals(_fresh(url, ops.collector_kpis, start, AS_OF, flt))
    promises_now, n = _counted(engine, ops.promise_stats, start, AS_OF, flt)
    assert n > 0 and promises_now.equals(_fresh(url, ops.promise_stats, start, AS_OF, flt))
    assert not promises_now.equals(promises)


def test_money_writes_recompute_money_figures_at_once(dashboard_on):
    engine = dashboard_on
    url = engine.url.render_as_string(hide_password=False)
    flt = kpis.LedgerFilter(currencies=(_fresh(url, kpis.main_currency),))
    invoice_id, customer_id, open_cents = _open_invoice(engine, AS_OF)
    aging = ui.cached(kpis.aging, AS_OF, flt)
    snap = ui.cached(kpis.snapshot, AS_OF, flt)

    # a cash application: a receipt of the customer's with something unapplied, applied to the open item
    with engine.connect() as conn:
        rc = schema.receipts
        receipts = conn.execute(sa.select(rc.c.id).where(rc.c.customer_id == customer_id,
                                                          rc.c.receipt_date <= AS_OF)).scalars().all()
        receipt, left = next(((r, posting.receipt_unapplied_cents(conn, r)) for r in receipts
                              if posting.receipt_unapplied_cents(conn, r) > 0), (None, 0))
    v0 = db.versions(engine)
    if receipt is None:  # no unapplied cash on this account: post a write-off instead (also money)
        pid = workflow.propose_writeoff(engine, FINANCE_MGR, invoice_id, 1_000, "small balance", today=AS_OF)
        assert db.versions(engine).money == v0.money  # the proposal alone changes no money figure
        workflow.decide_writeoff(engine, APPROVER, pid, approve=True, decided=AS_OF)
        moved = 1_000
    else:
        moved = min(left, open_cents, 1_000)
        posting.apply(engine, FINANCE_MGR, receipt, {invoice_id: moved}, applied_date=AS_OF)
    v1 = db.versions(engine)
    assert v1.money > v0.money and v1.money == v1.ledger
    aging_now, n = _counted(engine, kpis.aging, AS_OF, flt)
    assert n > 0 and aging_now.equals(_fresh(url, kpis.aging, AS_OF, flt))
    assert aging_now.open_cents.sum() == aging.open_cents.sum() - moved
    assert ui.cached(kpis.snapshot, AS_OF, flt) == _fresh(url, kpis.snapshot, AS_OF, flt) != snap

    # an approved write-off moves the money version too (its proposal does not)
    v2 = db.versions(engine)
    pid = workflow.propose_writeoff(engine, FINANCE_MGR, invoice_id, 500, "small balance", today=AS_OF)
    assert db.versions(engine).money == v2.money
    workflow.decide_writeoff(engine, APPROVER, pid, approve=True, decided=AS_OF)
    assert db.versions(engine).money > v2.money
    assert ui.cached(kpis.aging, AS_OF, flt).open_cents.sum() == aging_now.open_cents.sum() - 500


def test_versions_without_a_money_row_fall_back_to_the_ledger_version(engine):
    """A ledger written before the money version existed (or a warehouse ETL bumping only ledger_version)."""
    with engine.begin() as conn:
        db.bump_ledger_version(conn)
        conn.execute(schema.ledger_meta.delete().where(schema.ledger_meta.c.key == "money_version"))
    v = db.versions(engine)
    assert v.money == v.ledger == db.ledger_version(engine)
    with engine.begin() as conn:
        db.bump_ledger_version(conn, money=False)
    assert db.versions(engine).money == db.versions(engine).ledger  # still follows every write: never stale
    with engine.begin() as conn:  # a restore putting back an older money version than the ledger's: clamped
        db.mark_money_changed(conn, 10_000)
    assert db.versions(engine).money == db.versions(engine).ledger


def test_cash_forecast_backtest_is_computed_once_and_shared_by_sessions(monkeypatch, small_ledger_copy):
    """Issue 17 item 9: the page's backtest is cached across sessions (keyed on the money version, the
    progress callback not part of the key); a second session opens fast; a logged call keeps it, a money
    write recomputes it."""
    import functools
    import time

    import analytics.forecast as forecast_pkg

    real, calls = fc_api.backtest, []

    @functools.wraps(real)
    def counting(*args, **kwargs):
        calls.append(kwargs.get("progress"))
        return real(*args, **kwargs)

    monkeypatch.setattr(forecast_pkg, "backtest", counting)
    ui.clear_caches()
    try:
        first = open_page(monkeypatch, small_ledger_copy, "cash_forecast", role="finance", timeout=180)
        assert_clean(first)
        assert len(calls) == 1 and calls[0] is not None  # computed once, with the progress bar
        second = app_test(monkeypatch, small_ledger_copy, role="manager", script=PAGES / "cash_forecast.py",
                          timeout=180)
        started = time.perf_counter()
        second.run()  # a new session opening the page
        took = time.perf_counter() - started
        assert_clean(second)
        assert len(calls) == 1  # another session, another user: shared
        assert [m.value for m in second.metric] == [m.value for m in first.metric]
        # 0.5 s measured on the 40k demo under load; the bound only catches a recomputation (30 s there)
        assert took < 5.0, f"second session took {took:.2f} s"

        engine = db.connect(small_ledger_copy)
        with engine.connect() as conn:
            customer = conn.execute(sa.select(schema.customers.c.id).limit(1)).scalar()
        workflow.log_activity(engine, APPROVER, customer, "call", note="called")
        open_page(monkeypatch, small_ledger_copy, "cash_forecast", role="finance", timeout=180)
        assert len(calls) == 1  # a logged call changes no money: the backtest stands
        with engine.begin() as conn:
            db.bump_ledger_version(conn)  # as an import does
        open_page(monkeypatch, small_ledger_copy, "cash_forecast", role="finance", timeout=180)
        assert len(calls) == 2
        engine.dispose()
    finally:
        ui.clear_caches()


def test_risk_model_trains_once_for_sessions_asking_at_once(duckdb_engine, monkeypatch):
    """Eight sessions opening the Worklist together after a write train one model, not eight."""
    import threading
    import time

    from analytics.risk import scoring

    trained = []

    def slow_train(conn, as_of, **kwargs):
        trained.append(as_of)
        time.sleep(0.3)
        return object()

    monkeypatch.setattr(scoring, "train", slow_train)
    cache, models = scoring.ModelCache(), []

    def session():
        with duckdb_engine.connect() as conn:
            models.append(cache.get(conn, AS_OF))

    threads = [threading.Thread(target=session) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(trained) == 1 and len({id(m) for m in models}) == 1
    with duckdb_engine.begin() as conn:
        db.bump_ledger_version(conn)
    with duckdb_engine.connect() as conn:
        cache.get(conn, AS_OF)
    assert len(trained) == 2  # a new ledger version: trained again, once


def test_restoring_a_backup_moves_the_money_version(duckdb_engine, tmp_path):
    """A restored backup carries its own money version; the restore must not let it equal one cached before."""
    from analytics import backup

    generator.generate(duckdb_engine, customers=5, invoices=80, seed=2, end=AS_OF)
    path = tmp_path / "ledger.zip"
    backup.export_ledger(duckdb_engine, path)
    before = db.versions(duckdb_engine)
    with duckdb_engine.begin() as conn:  # work after the backup: ledger version up, money version as it was
        db.bump_ledger_version(conn, money=False)
    backup.import_ledger(duckdb_engine, path, replace=True)
    after = db.versions(duckdb_engine)
    assert after.money > before.money and after.money == after.ledger
