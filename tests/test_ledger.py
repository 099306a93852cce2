"""As-of reconstruction on a small ledger worked out by hand.

Ledger (customer K1, all USD):
  I1 invoice  2024-01-10 due 2024-02-09   1,000.00
  I2 invoice  2024-02-15 due 2024-03-16     500.00
  CM credit   2024-02-20 due 2024-02-20    -100.00
  R1 receipt  2024-02-09   600.00 applied to I1 on 2024-02-09
  CM applied to I1 on 2024-03-05 (100.00)
  W  write-off of I1's rest (300.00) on 2024-04-30

Open at 2024-01-31: I1 1,000 (days past due -9)
Open at 2024-02-29: I1 400 (20 dpd), I2 500 (-16), CM -100 (9)
Open at 2024-03-31: I1 300 (51), I2 500 (15)            (credit memo consumed on 03-05)
Open at 2024-04-30: I2 500 (45)                          (I1 written off on the as-of date)
"""
import datetime as dt

import pytest
import sqlalchemy as sa

from analytics import schema
from analytics.ledger import LedgerFilter, open_items, open_items_over

D = dt.date


@pytest.fixture
def ledger(engine):
    with engine.begin() as c:
        c.execute(schema.collectors.insert(), [{"id": "C1", "name": "Ann"}, {"id": "C2", "name": "Bob"}])
        c.execute(schema.customers.insert(), [
            {"id": "K1", "name": "Kappa", "collector_id": "C1", "business_unit": "BU1", "region": "EMEA"},
            {"id": "K2", "name": "Lambda", "collector_id": "C2", "business_unit": "BU2", "region": "AMER"}])
        for row in [
            dict(id="I1", customer_id="K1", invoice_date=D(2024, 1, 10), due_date=D(2024, 2, 9), amount_cents=100_000),
            dict(id="I2", customer_id="K1", invoice_date=D(2024, 2, 15), due_date=D(2024, 3, 16), amount_cents=50_000),
            dict(id="CM", customer_id="K1", doc_type="credit_memo", invoice_date=D(2024, 2, 20),
                 due_date=D(2024, 2, 20), amount_cents=-10_000),
            dict(id="J1", customer_id="K2", invoice_date=D(2024, 2, 1), due_date=D(2024, 3, 2), amount_cents=7_000,
                 currency="EUR"),
        ]:
            c.execute(schema.invoices.insert().values(**row))
        c.execute(schema.receipts.insert(), [dict(id="R1", customer_id="K1", receipt_date=D(2024, 2, 9),
                                                  amount_cents=60_000)])
        c.execute(schema.applications.insert().values(receipt_id="R1", invoice_id="I1", amount_cents=60_000,
                                                      applied_date=D(2024, 2, 9)))
        c.execute(schema.applications.insert().values(credit_memo_id="CM", invoice_id="I1", amount_cents=10_000,
                                                      applied_date=D(2024, 3, 5)))
        c.execute(schema.adjustments.insert(), [dict(invoice_id="I1", adj_date=D(2024, 4, 30), amount_cents=-30_000,
                                                     kind="write_off")])
    return engine


EXPECTED = {
    D(2024, 1, 31): {"I1": (100_000, -9)},
    D(2024, 2, 29): {"I1": (40_000, 20), "I2": (50_000, -16), "CM": (-10_000, 9)},
    D(2024, 3, 31): {"I1": (30_000, 51), "I2": (50_000, 15)},
    D(2024, 4, 30): {"I2": (50_000, 45)},
}
K1 = LedgerFilter(customers=("K1",))


@pytest.mark.parametrize("as_of", sorted(EXPECTED))
def test_open_items_as_of(ledger, as_of):
    q = open_items(as_of, K1)
    with ledger.connect() as c:
        got = {r.invoice_id: (int(r.open_cents), int(r.days_past_due)) for r in c.execute(sa.select(q))}
    assert got == EXPECTED[as_of]


def test_open_items_over_matches_single_dates(ledger):
    q = open_items_over(sorted(EXPECTED), K1)
    with ledger.connect() as c:
        rows = c.execute(sa.select(q.c.as_of, q.c.invoice_id, q.c.open_cents, q.c.days_past_due)).all()
    got: dict = {}
    for r in rows:
        got.setdefault(r.as_of, {})[r.invoice_id] = (int(r.open_cents), int(r.days_past_due))
    assert got == EXPECTED


@pytest.mark.parametrize("flt, ids", [
    (LedgerFilter(), {"I1", "I2", "CM", "J1"}),
    (LedgerFilter(business_units=("BU2",)), {"J1"}),
    (LedgerFilter(regions=("EMEA",)), {"I1", "I2", "CM"}),
    (LedgerFilter(collectors=("C2",)), {"J1"}),
    (LedgerFilter(currencies=("EUR",)), {"J1"}),
    (LedgerFilter(currencies=("EUR",), collectors=("C1",)), set()),
])
def test_filters(ledger, flt, ids):
    q = open_items(D(2024, 2, 29), flt)
    with ledger.connect() as c:
        assert {r.invoice_id for r in c.execute(sa.select(q))} == ids
