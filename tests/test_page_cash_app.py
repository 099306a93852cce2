"""Cash application page through the real entry point (AppTest)."""
from __future__ import annotations

import sqlalchemy as sa

from analytics import db, schema
from tests.apptest_helpers import assert_clean, nav_titles, open_directly, open_page, texts


def _button(at, key):
    return next(b for b in at.button if b.key == key)


def test_page_run_matching_accept_reject(monkeypatch, small_ledger_copy):
    at = open_page(monkeypatch, small_ledger_copy, "cash_application", role="finance")
    assert_clean(at)
    body = texts(at)
    assert "Cash application" in body and "Unapplied cash" in body and "Auto-match rate" in body
    assert "No proposals waiting for review" in body
    assert "ties to the open items at every month end" in body
    _button(at, "ca_run").click()
    at.run()
    assert_clean(at)
    assert "Matching done" in texts(at)
    eng = db.make_engine(small_ledger_copy)
    try:
        with eng.connect() as conn:
            status = dict(conn.execute(sa.select(schema.match_proposals.c.status, sa.func.count())
                                       .group_by(schema.match_proposals.c.status)).all())
            pending = conn.execute(sa.select(schema.match_proposals.c.id)
                                   .where(schema.match_proposals.c.status == "proposed")
                                   .order_by(schema.match_proposals.c.id)).scalars().all()
    finally:
        eng.dispose()
    assert status.get("auto_applied", 0) > 0 and pending
    # the write functions behind the buttons (dataframe selection cannot be driven from AppTest)
    from analytics import cash_app
    from analytics.auth import User

    eng = db.connect(small_ledger_copy)
    try:
        cash_app.accept_proposals(eng, User("finance", "finance"), pending[:1])
        cash_app.reject_proposals(eng, User("finance", "finance"), pending[1:2])
    finally:
        eng.dispose()
    at.run()
    assert_clean(at)


def test_page_roles(monkeypatch, small_ledger_url):
    at = open_page(monkeypatch, small_ledger_url, "cash_application", role="manager")
    assert_clean(at)
    assert "Cash application" in nav_titles(at)
    at = open_directly(monkeypatch, small_ledger_url, "cash_application", role="collector", collector_id="COL01")
    assert any("may not open" in str(e.value) for e in at.error)


def test_page_lists_impossible_postings_and_withholds_the_rollforward(monkeypatch, small_ledger_copy):
    """A receipt applied beyond its amount (written past the product, DuckDB has no trigger) is named at the
    top and the roll-forward is withheld, once, without a second error box."""
    eng = db.connect(small_ledger_copy)
    try:
        with eng.begin() as conn:
            rid, amount, day, cust = conn.execute(sa.select(schema.receipts.c.id, schema.receipts.c.amount_cents,
                                                            schema.receipts.c.receipt_date,
                                                            schema.receipts.c.customer_id)
                                                  .where(schema.receipts.c.customer_id.is_not(None),
                                                         schema.receipts.c.currency == "USD")  # the page's currency
                                                  .order_by(schema.receipts.c.id).limit(1)).one()
            iid = conn.execute(sa.select(schema.invoices.c.id).where(schema.invoices.c.customer_id == cust)
                               .order_by(schema.invoices.c.id).limit(1)).scalar()
            conn.execute(schema.applications.insert().values(receipt_id=rid, invoice_id=iid, amount_cents=amount,
                                                             applied_date=day, source="manual"))
            db.bump_ledger_version(conn)
    finally:
        eng.dispose()
    at = open_page(monkeypatch, small_ledger_copy, "cash_application", role="finance")
    assert not at.exception
    errors = [str(e.value) for e in at.error]
    assert any("1 posting(s) money cannot be in" in e for e in errors), errors
    assert any(e.startswith("Withheld") for e in errors), errors
    assert not any("cannot be trusted" in e for e in errors), errors  # rollforward not run a second time
    listed = at.dataframe[0].value
    assert any(f"receipt {rid} has" in d for d in listed["detail"]), listed
