"""Month-end roll-forward: hand-computed ledger on every backend, generated ledger, IBM sample."""
from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from analytics import cash_app, db, schema
from analytics.auth import User
from analytics.errors import UserError
from analytics.ledger import LedgerFilter

D = dt.date


def _ledger(engine):
    with engine.begin() as conn:
        conn.execute(schema.customers.insert(), [dict(id="K1", name="One", currency="USD"),
                                                 dict(id="K2", name="Two", currency="EUR")])
        docs = [("INV-A", "K1", "invoice", D(2024, 12, 10), 10_000), ("INV-B", "K1", "invoice", D(2025, 1, 5), 20_000),
                ("DM-1", "K1", "debit_memo", D(2025, 1, 7), 1_000),
                ("CM-1", "K1", "credit_memo", D(2025, 1, 10), -3_000),
                ("CM-2", "K1", "credit_memo", D(2025, 2, 27), -1_500), ("INV-C", "K1", "invoice", D(2025, 3, 2), 6_000),
                ("INV-E", "K2", "invoice", D(2025, 2, 14), 5_000)]
        conn.execute(schema.invoices.insert(), [
            dict(id=i, customer_id=c, doc_type=t, invoice_date=d, due_date=d + dt.timedelta(days=30), amount_cents=a,
                 currency="EUR" if c == "K2" else "USD") for i, c, t, d, a in docs])
        conn.execute(schema.receipts.insert(), [
            dict(id="R1", customer_id="K1", receipt_date=D(2025, 1, 20), amount_cents=10_000, currency="USD"),
            dict(id="R2", customer_id="K1", receipt_date=D(2025, 2, 1), amount_cents=10_000, currency="USD")])
        apps = [("R1", None, "INV-A", 10_000, D(2025, 1, 20)), (None, "CM-1", "INV-B", 3_000, D(2025, 1, 12)),
                ("R2", None, "INV-B", 5_000, D(2025, 2, 3)), ("R2", None, "INV-B", -5_000, D(2025, 2, 10)),
                ("R2", None, "INV-B", 2_000, D(2025, 2, 11)),
                ("R2", None, "INV-C", 4_000, D(2025, 2, 25)),   # dated before INV-C exists: counts in March
                (None, "CM-2", "INV-B", 1_500, D(2025, 3, 3))]  # CM issued in Feb, applied in March: net 0
        conn.execute(schema.applications.insert(), [
            dict(receipt_id=r, credit_memo_id=c, invoice_id=i, amount_cents=a, applied_date=d)
            for r, c, i, a, d in apps])
        conn.execute(schema.adjustments.insert(), [
            dict(invoice_id="INV-B", adj_date=D(2025, 1, 25), amount_cents=-2_000, kind="write_off"),
            dict(invoice_id="DM-1", adj_date=D(2025, 1, 26), amount_cents=-500, kind="deduction"),
            dict(invoice_id="INV-B", adj_date=D(2025, 1, 27), amount_cents=300, kind="adjustment")])


def test_rollforward_by_hand(engine):
    _ledger(engine)
    with engine.connect() as conn:
        rf = cash_app.rollforward(conn, "2025-01", "2025-03")
        usd = cash_app.rollforward(conn, "2025-01", "2025-03", LedgerFilter(currencies=("USD",)))
    assert cash_app.ties_out(rf)
    assert rf[["month", "currency"]].values.tolist() == [
        [D(2025, 1, 31), "EUR"], [D(2025, 1, 31), "USD"], [D(2025, 2, 28), "EUR"], [D(2025, 2, 28), "USD"],
        [D(2025, 3, 31), "EUR"], [D(2025, 3, 31), "USD"]]
    u = rf[rf.currency == "USD"].set_index("month")
    jan, feb, mar = (u.loc[D(2025, m, e)] for m, e in ((1, 31), (2, 28), (3, 31)))
    assert (jan.opening_cents, jan.invoices_cents, jan.debit_memos_cents, jan.credit_memos_cents) == (
        10_000, 20_000, 1_000, -3_000)
    assert (jan.cash_applied_cents, jan.credit_memos_applied_net_cents, jan.write_offs_cents, jan.deductions_cents,
            jan.other_adjustments_cents, jan.closing_cents) == (-10_000, 0, -2_000, -500, 300, 15_800)
    assert (feb.opening_cents, feb.credit_memos_cents, feb.cash_applied_cents, feb.closing_cents) == (
        15_800, -1_500, -2_000, 12_300)
    assert feb.unapplied_cash_cents == 4_000
    assert (mar.invoices_cents, mar.cash_applied_cents, mar.credit_memos_applied_net_cents, mar.closing_cents) == (
        6_000, -4_000, 0, 14_300)
    assert (u.open_items_cents == u.closing_cents).all() and (u.difference_cents == 0).all()
    e = rf[rf.currency == "EUR"]
    assert e.closing_cents.tolist() == [0, 5_000, 5_000] and e.invoices_cents.tolist() == [0, 5_000, 0]
    assert usd.currency.unique().tolist() == ["USD"] and usd.closing_cents.tolist() == [15_800, 12_300, 14_300]


def test_rollforward_bad_months(duckdb_engine):
    with duckdb_engine.connect() as conn:
        with pytest.raises(UserError, match="before"):
            cash_app.rollforward(conn, "2025-03", "2025-01")
        with pytest.raises(UserError, match="not a month"):
            cash_app.rollforward(conn, "March", "2025-01")
        assert cash_app.rollforward(conn, "2025-01", "2025-02").empty  # empty ledger: nothing to show


def test_rollforward_and_matcher_on_generated_ledger(small_ledger_url):
    eng = db.make_engine(small_ledger_url)
    try:
        with eng.connect() as conn:
            rf = cash_app.rollforward(conn, "2024-11", "2026-10")
            quality = cash_app.evaluate_matching(conn)
    finally:
        eng.dispose()
    assert len(rf) == 24 * rf.currency.nunique() and cash_app.ties_out(rf)
    assert (rf.write_offs_cents <= 0).all() and (rf.cash_applied_cents <= 0).all()
    # ground truth: every auto-applicable line right, nearly everything found
    assert quality["auto_precision"] >= 0.99 and quality["auto_lines"] >= 20
    assert quality["precision"] >= 0.9 and quality["recall"] >= 0.9


def test_matching_run_keeps_the_ledger_tied(small_ledger_copy):
    eng = db.connect(small_ledger_copy)
    try:
        summary = cash_app.run_matching(eng, User("fin", "finance"))
        assert summary["auto_applied"] > 0
        with eng.connect() as conn:
            rf = cash_app.rollforward(conn, "2026-01", "2026-11")
            n_apps = conn.execute(sa.select(sa.func.count()).select_from(schema.applications)
                                  .where(schema.applications.c.source == "auto")).scalar()
        assert cash_app.ties_out(rf) and n_apps == summary["auto_applied"]
    finally:
        eng.dispose()


def test_rollforward_ties_on_ibm(duckdb_engine, ibm_csv):
    from analytics import loaders

    loaders.load(duckdb_engine, "ibm", ibm_csv)
    with duckdb_engine.connect() as conn:
        lo, hi = conn.execute(sa.select(sa.func.min(schema.invoices.c.invoice_date),
                                        sa.func.max(schema.invoices.c.invoice_date))).one()
        rf = cash_app.rollforward(conn, lo, hi)
    assert len(rf) >= 12 and cash_app.ties_out(rf)
    assert rf.invoices_cents.sum() > 0 and rf.cash_applied_cents.sum() < 0


def test_rollforward_cli(tmp_path, capsys):
    from analytics.cli import main

    url = f"duckdb:///{tmp_path / 'rf.duckdb'}"
    eng = db.connect(url)
    _ledger(eng)
    eng.dispose()
    assert main(["rollforward", "--db", url, "--from", "2025-01", "--to", "2025-03", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ties_out"] is True and len(out["months"]) == 6
    usd_jan = out["months"][1]
    assert usd_jan["closing"] == 158.0 and usd_jan["difference"] == 0.0
    # a usage error: one line on stderr and exit code 2 (returned by cli.main, not raised)
    assert main(["rollforward", "--db", url, "--from", "2025-13", "--to", "2025-03"]) == 2
    assert "not a month (YYYY-MM)" in capsys.readouterr().err
