"""A returned payment in every receipt-based figure, worked out by hand, on DuckDB, SQLite and PostgreSQL.

Ledger: Globex (collector A1) owes INV-R1, 2,000.00 USD dated 2026-01-05. A statement brings a credit of
1,000.00 on 2026-01-10 (bank reference BR-R1); 400.00 of it is applied to INV-R1 on 2026-01-12. A second
statement returns the payment on 2026-02-03 (``/RTRN/BR-R1``): the loader unapplies the 400.00 that day.

By hand:

* 2026-01-31: AR 1,600.00; unapplied cash 1,000.00 − 400.00 = 600.00; receipts of January 1,000.00;
  cash collected (applications) in January 400.00.
* 2026-02-28: AR 2,000.00 (the 400.00 is owed again); unapplied cash 0.00 (the bank took the cash
  back: before the fix the KPI said 1,000.00); receipts of Jan–Feb seen from 2026-02-28 0.00; cash
  collected in February −400.00 (in Jan–Feb 0.00).
* Roll-forward: January opening 0.00 + invoices 2,000.00 + cash applied −400.00 = closing 1,600.00,
  unapplied cash 600.00; February opening 1,600.00 + returned payments +400.00 = closing 2,000.00 =
  open items, difference 0.00, unapplied cash 0.00.
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from analytics import db, schema
from analytics.auth import User
from analytics.bank.loading import load_statement
from analytics.cash_app import posting, reports
from analytics.forecast import data as fdata
from analytics.kpis import ar
from analytics.kpis.collectors import collector_kpis
from analytics.ledger import LedgerFilter, open_items, receipt_scope, returned_receipts

FIN = User("fin", "finance")
D = dt.date

CREDIT = (":20:S1\n:25:NL91ABNA0417164300\n:28C:1/1\n:60F:C260109USD0,00\n"
          ":61:2601100110C1000,00NTRFE2E-1//BR-R1\n"
          ":86:/NAME/Globex Corporation/IBAN/DE89370400440532013000/REMI/INV-R1 part\n"
          ":62F:C260110USD1000,00\n")
RETURN = (":20:S2\n:25:NL91ABNA0417164300\n:28C:2/1\n:60F:C260202USD1000,00\n"
          ":61:2602030203D1000,00NRTINONREF//BR-R2\n:86:/RTRN/BR-R1/REMI/returned: account closed\n"
          ":62F:C260203USD0,00\n")


def _ledger(engine, via_statement: bool = True) -> str:
    with engine.begin() as c:
        db.bulk_insert(c, schema.collectors, [dict(id="A1", name="Ann")])
        db.bulk_insert(c, schema.customers, [dict(id="C1", name="Globex Corporation", currency="USD",
                                                  collector_id="A1")])
        db.bulk_insert(c, schema.invoices, [dict(id="INV-R1", customer_id="C1", invoice_date=D(2026, 1, 5),
                                                 due_date=D(2026, 2, 4), amount_cents=200000, currency="USD")])
        if not via_statement:  # an identified receipt (a statement's credit keeps no customer)
            db.bulk_insert(c, schema.receipts, [dict(
                id="R-1", customer_id="C1", receipt_date=D(2026, 1, 10), amount_cents=100000, currency="USD",
                method="wire", bank_reference="BR-R1")])
    if via_statement:
        load_statement(engine, CREDIT.encode(), file_name="jan.mt940")
    with engine.connect() as c:
        receipt_id = c.execute(sa.select(schema.receipts.c.id)).scalar_one()
    posting.apply(engine, FIN, receipt_id, {"INV-R1": 40000}, applied_date=D(2026, 1, 12))
    return receipt_id


def _ar(conn, d) -> int:
    oi = open_items(d)
    return int(conn.execute(sa.select(sa.func.sum(oi.c.open_cents))).scalar())


def _cash_collected(conn, start, end) -> int:
    k = collector_kpis(conn, start, end)
    return int(k.loc[k["collector_id"] == "A1", "collected_cents"].iloc[0])


def test_a_returned_payment_leaves_unapplied_cash_receipts_and_the_roll_forward_right(engine):
    receipt_id = _ledger(engine)
    with engine.connect() as c:  # before the return is loaded
        assert ar.unapplied_cash(c, D(2026, 1, 31)) == 60000
    report = load_statement(engine, RETURN.encode(), file_name="feb.mt940")
    assert (report.returns, report.returns_unmatched, report.unapplied) == (1, 0, 1)

    with engine.connect() as c:
        assert c.execute(returned_receipts()).scalars().all() == [receipt_id]
        assert c.execute(returned_receipts(D(2026, 2, 2))).scalars().all() == []
        # unapplied cash, KPI and cash-application reports: one answer, point in time
        assert ar.unapplied_cash(c, D(2026, 1, 31)) == 60000
        assert ar.unapplied_cash(c, D(2026, 2, 28)) == 0  # was 100000 before returns had a home
        assert int(reports.unapplied_cash(c, D(2026, 1, 31))["unapplied_cents"].sum()) == 60000
        assert reports.unapplied_cash(c, D(2026, 2, 28)).empty
        k = reports.cash_app_kpis(c, D(2026, 1, 1), D(2026, 2, 28))
        assert (k["unapplied_cents"], k["unapplied_receipts"], k["receipts"]) == (0, 0, 0)
        assert reports.cash_app_kpis(c, D(2026, 1, 1), D(2026, 1, 31))["receipts"] == 1
        # the scope itself, with a filter
        n = lambda d: c.execute(sa.select(sa.func.count()).select_from(schema.receipts).where(  # noqa: E731
            *receipt_scope(LedgerFilter(currencies=("USD",)), as_of=d))).scalar()
        assert (n(D(2026, 2, 2)), n(D(2026, 2, 3)), n(None)) == (1, 0, 1)
        # AR: the 400.00 is owed again from the return's date
        assert [ar.snapshot(c, d)["unapplied_cash"] for d in (D(2026, 1, 31), D(2026, 2, 28))] == [600.0, 0.0]
        assert [_ar(c, d) for d in (D(2026, 1, 31), D(2026, 2, 28))] == [160000, 200000]
        # cash collected (collector KPIs: applications, net of the reversal)
        assert _cash_collected(c, D(2026, 1, 1), D(2026, 1, 31)) == 40000
        assert _cash_collected(c, D(2026, 2, 1), D(2026, 2, 28)) == -40000
        assert _cash_collected(c, D(2026, 1, 1), D(2026, 2, 28)) == 0
        # forecast history: receipts as known at each date
        assert fdata.actual_receipts(c, D(2026, 1, 5), D(2026, 1, 31))["actual"].sum() == 1000.0
        assert fdata.actual_receipts(c, D(2026, 1, 5), D(2026, 2, 28))["actual"].sum() == 0.0
        # the roll-forward: the return as its own line, and it ties
        rf = reports.rollforward(c, "2026-01", "2026-02").set_index("month")
    jan, feb = rf.loc[D(2026, 1, 31)], rf.loc[D(2026, 2, 28)]
    assert (jan.opening_cents, jan.invoices_cents, jan.cash_applied_cents, jan.returned_payments_cents,
            jan.closing_cents, jan.unapplied_cash_cents) == (0, 200000, -40000, 0, 160000, 60000)
    assert (feb.opening_cents, feb.cash_applied_cents, feb.returned_payments_cents, feb.closing_cents,
            feb.open_items_cents, feb.difference_cents, feb.unapplied_cash_cents) == (
        160000, 0, 40000, 200000, 200000, 0, 0)
    assert reports.ties_out(rf)


def test_customer_360_and_the_matcher_leave_a_returned_receipt_out(engine):
    from analytics.accounts import customer_receipts
    from analytics.cash_app.matching import suspense_queue, unapplied_receipts_query

    receipt_id = _ledger(engine, via_statement=False)
    load_statement(engine, RETURN.encode(), file_name="feb.mt940")
    with engine.connect() as c:
        assert customer_receipts(c, "C1", D(2026, 1, 31))["receipt_id"].tolist() == [receipt_id]
        assert customer_receipts(c, "C1", D(2026, 2, 28)).empty
        # what is known now: a receipt already returned is never proposed, whatever the as-of date
        assert c.execute(unapplied_receipts_query(D(2026, 1, 31), every_return=True)).all() == []
        assert len(c.execute(unapplied_receipts_query(D(2026, 1, 31))).all()) == 1
        assert suspense_queue(c, D(2026, 1, 31)).empty


def test_a_returned_receipt_cannot_be_applied_again_nor_proposed_for_review(engine):
    import pytest

    from analytics.errors import UserError

    receipt_id = _ledger(engine)
    with engine.begin() as c:  # a proposal waiting for review when the return arrives
        db.bulk_insert(c, schema.match_proposals, [dict(receipt_id=receipt_id, invoice_id="INV-R1", amount_cents=60000,
                                                       confidence=0.8, rule="exact_amount", status="proposed",
                                                       created_at=dt.datetime(2026, 1, 20, 9))])
    with engine.connect() as c:
        assert len(reports.pending_proposals(c)) == 1
    load_statement(engine, RETURN.encode(), file_name="feb.mt940")
    with engine.connect() as c:
        assert reports.pending_proposals(c).empty
    with pytest.raises(UserError, match=f"receipt {receipt_id} was returned by the bank on 2026-02-03"):
        posting.apply(engine, FIN, receipt_id, {"INV-R1": 10000}, applied_date=D(2026, 2, 10))


def test_the_statement_of_account_shows_the_returned_payment(engine):
    from analytics import statements

    _ledger(engine)
    load_statement(engine, RETURN.encode(), file_name="feb.mt940")
    st = statements.statement(engine, "C1", D(2026, 1, 1), D(2026, 2, 28))
    assert [(x["date"], x["text"], x["amount_cents"]) for x in st.lines] == [
        (D(2026, 1, 5), "Invoice", 200000), (D(2026, 1, 12), "Payment applied", -40000),
        (D(2026, 2, 3), "Payment returned by the bank", 40000)]
    assert (st.brought_forward_cents, st.carried_forward_cents, st.totals["payments"]) == (0, 200000, 0)
