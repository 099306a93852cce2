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
from tests.apptest_helpers import assert_clean, open_page

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
