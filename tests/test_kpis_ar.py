"""Core KPIs on a small ledger worked out by hand (runs on DuckDB, SQLite and PostgreSQL).

Ledger (USD unless said; A in BU1, B in BU2):

  id   cust type         invoice     due         amount   what happens
  I1   A    invoice      2023-12-15  2024-01-14  1000.00  R1 400 applied 2024-02-10 (partial payment)
  I2   A    invoice      2024-01-01  2024-01-31  2000.00  CM1 300 applied 2024-03-01
  I3   B    invoice      2024-02-15  2024-03-16  3000.00  R2 3000 applied 2024-03-31 (paid ON the as-of date)
  I4   B    invoice      2024-03-10  2024-04-09  1500.00  open
  D1   A    debit_memo   2024-03-20  2024-03-25   500.00  open
  CM1  A    credit_memo  2024-02-20  2024-02-20  -300.00  applied to I2 2024-03-01
  CM2  A    credit_memo  2024-03-25  2024-03-25  -100.00  open (unapplied credit)
  I5   B    invoice      2023-10-01  2023-10-31   800.00  written off 2024-03-15
  I6   A    invoice      2023-11-20  2023-12-20   400.00  open
  I7   B    invoice      2024-02-10  2024-03-11  1000.00  R5 1000 applied 2024-03-05 (early)
  J1   C    invoice EUR  2024-03-01  2024-03-31    50.00  open
  Receipts: R1 400 (02-10), R2 3000 (03-31), R3 250 B (03-28, unapplied), R4 100 B (04-02), R5 1000 (03-05)

Open at D = 2024-03-31 (USD):  I1 600 (dpd 77, 61-90), I2 1700 (60, 31-60), I4 1500 (-9, Current),
  D1 500 (6, 1-30), CM2 -100 (6, 1-30), I6 400 (102, 91-120)            -> AR = 4600.00
  Aging: Current 1500, 1-30 400, 31-60 1700, 61-90 600, 91-120 400, 120+ 0; overdue 3100; over 90 = 400.
Credit sales S(D, 90) = dated in (2024-01-01, 2024-03-31] (I2 on 01-01 is excluded; credit memos are
  not netted): I3 3000 + I4 1500 + D1 500 + I7 1000 = 6000.00
"""
import datetime as dt
import json
import math
import uuid
from fractions import Fraction

import pytest
import sqlalchemy as sa

from analytics import db, kpis, schema
from analytics.cli import main as cli_main
from analytics.errors import UserError
from analytics.ledger import LedgerFilter

D = dt.date
AS_OF = D(2024, 3, 31)
USD = LedgerFilter(currencies=("USD",))


def _inv(id, cust, doc, inv_date, due, cents, cur="USD"):
    return dict(id=id, customer_id=cust, doc_type=doc, invoice_date=inv_date, due_date=due, amount_cents=cents,
                currency=cur)


@pytest.fixture(scope="module")
def _rows():
    invoices = [
        _inv("I1", "A", "invoice", D(2023, 12, 15), D(2024, 1, 14), 100_000),
        _inv("I2", "A", "invoice", D(2024, 1, 1), D(2024, 1, 31), 200_000),
        _inv("I3", "B", "invoice", D(2024, 2, 15), D(2024, 3, 16), 300_000),
        _inv("I4", "B", "invoice", D(2024, 3, 10), D(2024, 4, 9), 150_000),
        _inv("D1", "A", "debit_memo", D(2024, 3, 20), D(2024, 3, 25), 50_000),
        _inv("CM1", "A", "credit_memo", D(2024, 2, 20), D(2024, 2, 20), -30_000),
        _inv("CM2", "A", "credit_memo", D(2024, 3, 25), D(2024, 3, 25), -10_000),
        _inv("I5", "B", "invoice", D(2023, 10, 1), D(2023, 10, 31), 80_000),
        _inv("I6", "A", "invoice", D(2023, 11, 20), D(2023, 12, 20), 40_000),
        _inv("I7", "B", "invoice", D(2024, 2, 10), D(2024, 3, 11), 100_000),
        _inv("J1", "C", "invoice", D(2024, 3, 1), D(2024, 3, 31), 5_000, "EUR"),
    ]
    receipts = [
        dict(id="R1", customer_id="A", receipt_date=D(2024, 2, 10), amount_cents=40_000, currency="USD"),
        dict(id="R2", customer_id="B", receipt_date=D(2024, 3, 31), amount_cents=300_000, currency="USD"),
        dict(id="R3", customer_id="B", receipt_date=D(2024, 3, 28), amount_cents=25_000, currency="USD"),
        dict(id="R4", customer_id="B", receipt_date=D(2024, 4, 2), amount_cents=10_000, currency="USD"),
        dict(id="R5", customer_id="B", receipt_date=D(2024, 3, 5), amount_cents=100_000, currency="USD"),
    ]
    applications = [
        dict(receipt_id="R1", credit_memo_id=None, invoice_id="I1", amount_cents=40_000, applied_date=D(2024, 2, 10)),
        dict(receipt_id="R2", credit_memo_id=None, invoice_id="I3", amount_cents=300_000, applied_date=D(2024, 3, 31)),
        dict(receipt_id="R5", credit_memo_id=None, invoice_id="I7", amount_cents=100_000, applied_date=D(2024, 3, 5)),
        dict(receipt_id=None, credit_memo_id="CM1", invoice_id="I2", amount_cents=30_000, applied_date=D(2024, 3, 1)),
    ]
    adjustments = [dict(invoice_id="I5", adj_date=D(2024, 3, 15), amount_cents=-80_000, kind="write_off")]
    return invoices, receipts, applications, adjustments


def _load(engine, rows):
    invoices, receipts, applications, adjustments = rows
    with engine.begin() as c:
        c.execute(schema.collectors.insert(), [{"id": "C1", "name": "Ann"}, {"id": "C2", "name": "Bob"}])
        c.execute(schema.customers.insert(), [
            dict(id="A", name="Alpha", collector_id="C1", business_unit="BU1", region="EMEA", currency="USD"),
            dict(id="B", name="Beta", collector_id="C2", business_unit="BU2", region="AMER", currency="USD"),
            dict(id="C", name="Gamma", collector_id="C2", business_unit="BU2", region="EMEA", currency="EUR")])
        c.execute(schema.invoices.insert(), invoices)
        c.execute(schema.receipts.insert(), receipts)
        c.execute(schema.applications.insert(), applications)
        c.execute(schema.adjustments.insert(), adjustments)
    return engine


BACKEND_PARAMS = ["duckdb", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def module_engine(request, tmp_path_factory, name: str):
    """A migrated empty ledger on ``request.param``, shared by the tests of a module (read-only use)."""
    backend = request.param
    if backend == "duckdb":
        url = f"duckdb:///{tmp_path_factory.mktemp(name) / 'ledger.duckdb'}"
    elif backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp(name) / 'ledger.sqlite'}"
    else:
        url = request.getfixturevalue("pg_server").create_database(f"{name}_{uuid.uuid4().hex[:8]}")
    return db.connect(url)


@pytest.fixture(scope="module", params=BACKEND_PARAMS)
def ledger(request, tmp_path_factory, _rows):
    eng = _load(module_engine(request, tmp_path_factory, "kpis_ar"), _rows)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module", params=BACKEND_PARAMS)
def empty(request, tmp_path_factory):
    eng = module_engine(request, tmp_path_factory, "kpis_empty")
    yield eng
    eng.dispose()


@pytest.fixture
def conn(ledger):
    with ledger.connect() as c:
        yield c


def test_snapshot_by_hand(conn):
    """AR 4600, current 1500, overdue 3100, over-90 400 (I6), S = 6000.
    DSO = 4600/6000*90 = 69.00; BPDSO = 1500/6000*90 = 22.50; ADD = 46.50; % current = 1500/4600 = 32.6087 -> 32.61.
    Countback: March sales (I4 1500 + D1 500 = 2000) consumed whole -> 31 days, 2600 left; February sales
    (I3 3000 + I7 1000 = 4000) -> 29 * 2600/4000 = 18.85; total 49.85.
    CEI March: AR(02-29) = I1 600 + I2 2000 + I3 3000 + CM1 -300 + I5 800 + I6 400 + I7 1000 = 7500;
    March sales 2000 (I4, D1); (7500 + 2000 - 4600) / (7500 + 2000 - 1500) = 4900/8000 = 61.25 %.
    Open items 6; customers with a balance: A (3100) and B (1500) = 2. Unapplied cash: R3 250 only
    (R1, R5 fully applied; R2 applied on the as-of date; R4 after the as-of date)."""
    snap = kpis.snapshot(conn, AS_OF)
    assert snap == {
        "as_of": "2024-03-31", "currency": "USD", "window": 90,
        "ar_total": 4600.0, "current_total": 1500.0, "overdue_total": 3100.0, "over_90_total": 400.0,
        "pct_current": 32.61, "credit_sales": 6000.0,
        "dso_standard": 69.0, "dso_countback": 49.85, "bpdso": 22.5, "add": 46.5, "cei_month": 61.25,
        "aging": {"Current": 1500.0, "1-30": 400.0, "31-60": 1700.0, "61-90": 600.0, "91-120": 400.0, "120+": 0.0},
        "open_items": 6, "customers_with_balance": 2, "unapplied_cash": 250.0,
    }
    json.dumps(snap)  # JSON-ready


def test_aging_columns_and_counts(conn):
    """Counts per bucket at 03-31: Current I4 (B); 1-30 D1 + CM2 (A, one customer); 31-60 I2; 61-90 I1; 91-120 I6."""
    ag = kpis.aging(conn, AS_OF)
    assert list(ag.columns) == ["bucket", "bucket_order", "open_cents", "items", "customers"]
    assert ag.attrs["currency"] == "USD"
    assert ag.open_cents.tolist() == [150_000, 40_000, 170_000, 60_000, 40_000, 0]
    assert ag["items"].tolist() == [1, 2, 1, 1, 1, 0]
    assert ag.customers.tolist() == [1, 1, 1, 1, 1, 0]
    assert str(ag.open_cents.dtype) == "int64"


def test_aging_custom_edges(conn):
    """Edges (0, 60): Current 1500; 1-60 = D1 500 - CM2 100 + I2 1700 = 2100; 60+ = I1 600 + I6 400 = 1000."""
    ag = kpis.aging(conn, AS_OF, buckets=(0, 60))
    assert ag.bucket.tolist() == ["Current", "1-60", "60+"]
    assert ag.open_cents.tolist() == [150_000, 210_000, 100_000]


def test_aging_detail(conn):
    """Sorted by days past due desc, then amount desc, then id: I6 102, I1 77, I2 60, D1 6 (500), CM2 6 (-100), I4 -9."""
    det = kpis.aging_detail(conn, AS_OF)
    assert det.invoice_id.tolist() == ["I6", "I1", "I2", "D1", "CM2", "I4"]
    assert det.days_past_due.tolist() == [102, 77, 60, 6, 6, -9]
    assert det.bucket.tolist() == ["91-120", "61-90", "31-60", "1-30", "1-30", "Current"]
    assert det.customer_name.tolist()[0] == "Alpha"
    for col in ["customer_id", "customer_name", "invoice_id", "doc_type", "invoice_date", "due_date", "open_cents",
                "days_past_due", "bucket"]:
        assert col in det.columns
    one = kpis.aging_detail(conn, AS_OF, bucket="1-30")
    assert one.invoice_id.tolist() == ["D1", "CM2"] and one.open_cents.sum() == 40_000
    assert kpis.aging_detail(conn, AS_OF, limit=2).invoice_id.tolist() == ["I6", "I1"]
    with pytest.raises(UserError):
        kpis.aging_detail(conn, AS_OF, bucket="999")


def test_trends_match_by_hand(conn):
    """Month ends Jan 31, Feb 29, Mar 31.
    Jan 31: open I1 1000 (dpd 17), I2 2000 (0, current), I5 800 (92), I6 400 (42) -> AR 4200, current 2000;
      S = (Nov 2, Jan 31]: I6 400 + I1 1000 + I2 2000 = 3400; DSO = 4200/3400*90 = 111.1765.
    Feb 29: I1 600, I2 2000, I3 3000 (current), CM1 -300 (dpd 9), I5 800, I6 400, I7 1000 (current)
      -> AR 7500, current 4000; S = (Dec 1, Feb 29]: I1 1000 + I2 2000 + I3 3000 + I7 1000 = 7000;
      DSO = 7500/7000*90 = 96.43.
    Aging Jan 31: Current 2000, 1-30 1000, 31-60 400, 61-90 0, 91-120 800, 120+ 0.
    Feb 29: Current 4000, 1-30 I2 2000 + CM1 -300 = 1700, 31-60 I1 600, 61-90 I6 400, 91-120 0, 120+ I5 800."""
    dates = kpis.month_ends(D(2024, 1, 1), AS_OF)
    tr = kpis.kpi_trend(conn, dates)
    for col in ["as_of", "ar_cents", "current_cents", "overdue_cents", "sales_cents", "dso_standard", "bpdso",
                "add", "pct_current"]:
        assert col in tr.columns
    assert tr.as_of.tolist() == dates
    assert tr.ar_cents.tolist() == [420_000, 750_000, 460_000]
    assert tr.current_cents.tolist() == [200_000, 400_000, 150_000]
    assert tr.sales_cents.tolist() == [340_000, 700_000, 600_000]
    assert tr.dso_standard.tolist() == pytest.approx([4200 / 3400 * 90, 7500 / 7000 * 90, 69.0])
    # every trend point equals the single-date snapshot
    for d, row in zip(dates, tr.itertuples()):
        snap = kpis.snapshot(conn, d)
        assert kpis.round_half_up(Fraction(row.dso_standard)) == snap["dso_standard"]
        assert kpis.round_half_up(Fraction(row.dso_countback)) == snap["dso_countback"]
        assert kpis.round_half_up(Fraction(row.cei_month)) == snap["cei_month"]
        assert row.ar_cents == round(snap["ar_total"] * 100)
    at = kpis.aging_trend(conn, dates)
    assert list(at.columns) == ["as_of", "bucket", "bucket_order", "open_cents"]
    piv = at.pivot(index="as_of", columns="bucket_order", values="open_cents")
    assert piv.loc[D(2024, 1, 31)].tolist() == [200_000, 100_000, 40_000, 0, 80_000, 0]
    assert piv.loc[D(2024, 2, 29)].tolist() == [400_000, 170_000, 60_000, 40_000, 0, 80_000]
    assert piv.loc[AS_OF].tolist() == [150_000, 40_000, 170_000, 60_000, 40_000, 0]


def test_no_sales_in_window_is_none(conn):
    """As of 2023-12-31 with a 10-day window: no invoice dated in (12-21, 12-31] -> DSO, BPDSO, ADD None.
    AR = I1 1000 + I5 800 + I6 400 = 2200 is still reported; countback walks back: Dec sales I1 1000
    (31 days), Nov I6 400 (30 days), Oct I5 800 -> 31 * 800/800: 92 days."""
    snap = kpis.snapshot(conn, D(2023, 12, 31), window=10)
    assert snap["ar_total"] == 2200.0 and snap["credit_sales"] == 0.0
    assert snap["dso_standard"] is None and snap["bpdso"] is None and snap["add"] is None
    assert snap["dso_countback"] == 92.0


def test_empty_ledger_all_none(empty):
    """No documents: main currency falls back to USD, amounts 0, every ratio None."""
    with empty.connect() as c:
        snap = kpis.snapshot(c, AS_OF)
        assert kpis.main_currency(c) == "USD"
        tr = kpis.kpi_trend(c, [D(2024, 2, 29), AS_OF])
        pm = kpis.provision_matrix(c, AS_OF)
        assert kpis.cei(c, D(2024, 3, 1), AS_OF) is None
        assert kpis.payment_days(c, D(2024, 3, 1), AS_OF)["avg_days_to_pay"] is None
        assert kpis.write_off_ratio(c, D(2024, 3, 1), AS_OF) is None
    assert snap["ar_total"] == 0.0 and snap["currency"] == "USD"
    for key in ["pct_current", "dso_standard", "dso_countback", "bpdso", "add", "cei_month"]:
        assert snap[key] is None, key
    assert tr.dso_standard.isna().all() and not (tr[["dso_standard", "pct_current"]] == math.inf).any().any()
    assert pm.provision_cents.isna().all() and pm.attrs["provision_cents"] == 0


def test_cei_and_ratios(conn):
    """CEI Q1 [01-01, 03-31]: AR(12-31) = I1 1000 + I5 800 + I6 400 = 2200; Q1 sales I2 2000 + I3 3000 + I7 1000
    + I4 1500 + D1 500 = 8000; (2200 + 8000 - 4600) / (2200 + 8000 - 1500) = 5600/8700 = 64.3678 %.
    Write-off ratio: March 800/2000 = 40 %; Q1 800/8000 = 10 %; February: no write-off -> 0 %."""
    assert kpis.cei(conn, D(2024, 3, 1), AS_OF) == pytest.approx(61.25)
    assert kpis.cei(conn, D(2024, 1, 1), AS_OF) == pytest.approx(5600 / 8700 * 100)
    assert kpis.write_off_ratio(conn, D(2024, 3, 1), AS_OF) == pytest.approx(40.0)
    assert kpis.write_off_ratio(conn, D(2024, 1, 1), AS_OF) == pytest.approx(10.0)
    assert kpis.bad_debt_ratio(conn, D(2024, 2, 1), D(2024, 2, 29)) == 0.0
    assert kpis.credit_sales(conn, D(2024, 1, 1), AS_OF) == 800_000


def test_payment_days(conn):
    """Paid in March: I3 (3000, invoice 02-15, due 03-16, paid 03-31: 45 days to pay, 15 late) and
    I7 (1000, invoice 02-10, due 03-11, paid 03-05: 24 days, 0 late). I5 (written off) and CM1 (credit memo) don't count.
    Count-weighted: (45+24)/2 = 34.5 and (15+0)/2 = 7.5; amount-weighted: (3000*45 + 1000*24)/4000 = 39.75 and
    3000*15/4000 = 11.25. In February nothing was fully paid (I1 only partially) -> None."""
    got = kpis.payment_days(conn, D(2024, 3, 1), AS_OF)
    assert got == {"invoices": 2, "avg_days_to_pay": 34.5, "avg_days_to_pay_weighted": 39.75,
                   "avg_days_late": 7.5, "avg_days_late_weighted": 11.25}
    assert kpis.payment_days(conn, D(2024, 2, 1), D(2024, 2, 29))["avg_days_to_pay"] is None


def test_unapplied_cash_dates(conn):
    """03-30: R1, R5 applied; R3 250 unapplied; R2 (03-31) not yet received -> 250. 04-30: + R4 100 -> 350.
    BU1 (customer A): R1 only, applied -> 0."""
    assert kpis.unapplied_cash(conn, D(2024, 3, 30)) == 25_000
    assert kpis.unapplied_cash(conn, D(2024, 4, 30)) == 35_000
    assert kpis.unapplied_cash(conn, AS_OF, LedgerFilter(business_units=("BU1",))) == 0


def test_payment_on_as_of_date_counts(conn):
    """R2 pays I3 on 03-31: I3 is open at 03-30 (3000, current) and closed at 03-31."""
    assert kpis.snapshot(conn, D(2024, 3, 30))["ar_total"] == 7600.0
    assert kpis.snapshot(conn, AS_OF)["ar_total"] == 4600.0


def test_currency_rules(conn):
    """USD volume dwarfs EUR -> main currency USD. EUR snapshot: J1 50.00 current (due 03-31, dpd 0).
    Several currencies at once are refused (never added)."""
    assert kpis.main_currency(conn) == "USD"
    assert kpis.main_currency(conn, LedgerFilter(customers=("C",))) == "EUR"
    eur = kpis.snapshot(conn, AS_OF, LedgerFilter(currencies=("EUR",)))
    assert eur["currency"] == "EUR" and eur["ar_total"] == 50.0 and eur["current_total"] == 50.0
    assert eur["dso_standard"] == 90.0  # 50 / 50 * 90
    with pytest.raises(UserError):
        kpis.snapshot(conn, AS_OF, LedgerFilter(currencies=("EUR", "USD")))
    # a BU2 filter (customers B and C) resolves to USD and leaves out J1
    bu2 = kpis.snapshot(conn, AS_OF, LedgerFilter(business_units=("BU2",)))
    assert bu2["currency"] == "USD" and bu2["ar_total"] == 1500.0


def test_roll_rates(conn):
    """Per invoice, receivables only. Jan 31 -> Feb 29: Current I2 2000 -> 1-30 (2000): 100 %; 1-30 I1 1000 -> 31-60
    (600 after partial payment): 60 %; 31-60 I6 400 -> 61-90: 100 %; 91-120 I5 800 -> 120+: 100 %.
    Feb 29 -> Mar 31: Current I3 3000 + I7 1000 both paid: 0 %; 1-30 I2 2000 -> 31-60 1700: 85 %; 31-60 I1 600 -> 61-90:
    100 %; 61-90 I6 400 -> 91-120: 100 %; 120+ I5 800 written off 03-15: 100 % to write-off."""
    rr = kpis.roll_rates(conn, kpis.month_ends(D(2024, 1, 1), AS_OF))
    assert len(rr) == 12
    feb = rr[rr.as_of == D(2024, 1, 31)].set_index("from_bucket")
    assert feb.balance_cents.tolist() == [200_000, 100_000, 40_000, 0, 80_000, 0]
    assert feb.rolled_cents.tolist() == [200_000, 60_000, 40_000, 0, 80_000, 0]
    assert feb.loc["1-30", "roll_rate"] == pytest.approx(0.6) and math.isnan(feb.loc["61-90", "roll_rate"])
    mar = rr[rr.as_of == D(2024, 2, 29)].set_index("from_bucket")
    assert mar.balance_cents.tolist() == [400_000, 200_000, 60_000, 40_000, 0, 80_000]
    assert mar.rolled_cents.tolist() == [0, 170_000, 60_000, 40_000, 0, 80_000]
    assert mar.loc["120+", "to_bucket"] == "Write-off" and mar.loc["120+", "written_off_cents"] == 80_000



def test_roll_rates_same_in_chunks(small_ledger_url, monkeypatch):
    """On a large ledger roll rates take a few month ends per query to bound the database's memory; any
    chunk size gives the same frame as one query over all 14 month ends (every adjacent pair is in one)."""
    from analytics import ledger

    assert ledger.date_chunks([1, 2, 3, 4, 5], 3, overlap=True) == [[1, 2, 3], [3, 4, 5]]
    assert ledger.date_chunks([2, 1], 7, overlap=True) == [[1, 2]]
    assert ledger.date_chunks([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    engine = db.connect(small_ledger_url)
    with engine.connect() as c:
        end = kpis.latest_date(c)
        dates = kpis.last_month_ends(end, 14)
        n = c.execute(sa.select(sa.func.count()).select_from(schema.invoices)).scalar()
        assert ledger.dates_per_query(c) >= 14  # a small ledger: one query
        whole = kpis.roll_rates(c, dates)
        for size in (2, 3, 7):
            monkeypatch.setattr(ledger, "OPEN_ITEM_DATES_PER_QUERY", n * size)
            assert ledger.dates_per_query(c) == size
            assert kpis.roll_rates(c, dates).equals(whole), size
    assert len(whole) == 13 * 6 and whole.balance_cents.sum() > 0

def test_provision_matrix(conn):
    """Lookback 2 months (pairs Jan->Feb, Feb->Mar), pooled roll rates: Current (2000+0)/(2000+4000) = 1/3;
    1-30 (600+1700)/(1000+2000) = 23/30; 31-60, 61-90, 91-120 = 1; 120+: w = 800/800 = 1, s = 0 -> L = 1.
    Loss rates: 120+ .. 31-60 = 1; 1-30 = 23/30; Current = 1/3 * 23/30 = 23/90.
    Receivables at 03-31 (CM2 not provisioned): Current 1500, 1-30 500, 31-60 1700, 61-90 600, 91-120 400.
    Provision: 1500*23/90 = 383.333 -> 383.33; 500*23/30 = 383.33; 1700; 600; 400; total 3466.66."""
    pm = kpis.provision_matrix(conn, AS_OF, lookback=2)
    assert list(pm.columns)[:2] == ["bucket", "bucket_order"]
    assert pm.open_cents.tolist() == [150_000, 50_000, 170_000, 60_000, 40_000, 0]
    assert pm.loss_rate.tolist() == pytest.approx([23 / 90, 23 / 30, 1, 1, 1, 1])
    assert pm.provision_cents.tolist() == [38_333, 38_333, 170_000, 60_000, 40_000, 0]
    assert pm.attrs["provision_cents"] == 346_666


def test_countback_unit():
    """Countback mechanics without a database: AR 150 at 03-15; March-to-date sales 100 (15 days) consumed,
    Feb 100 -> 29 * 50/100 = 14.5: 29.5. AR above all sales on record -> None; negative AR -> None; AR 0 -> 0."""
    monthly = {(2024, 2): 100, (2024, 3): 100}
    assert kpis.countback_dso(150, D(2024, 3, 15), 100, monthly) == Fraction(59, 2)
    assert kpis.countback_dso(1000, D(2024, 3, 15), 100, monthly) is None
    assert kpis.countback_dso(-5, D(2024, 3, 15), 100, monthly) is None
    assert kpis.countback_dso(0, D(2024, 3, 15), 100, monthly) == 0
    assert kpis.countback_dso(10, D(2024, 3, 15), 0, {}) is None


def test_rounding_half_up():
    assert kpis.round_half_up(Fraction(2345, 1000)) == 2.35
    assert kpis.round_half_up(Fraction(-2345, 1000)) == -2.35
    assert kpis.to_units(-1) == -0.01 and kpis.to_units(123456) == 1234.56
    assert kpis.month_ends(D(2024, 1, 31), D(2024, 2, 28)) == [D(2024, 1, 31)]
    assert kpis.last_month_ends(D(2024, 3, 31), 3) == [D(2024, 1, 31), D(2024, 2, 29), D(2024, 3, 31)]


def test_cli_json_and_table(duckdb_engine, _rows, capsys):
    """CLI on the hand ledger: JSON equals the snapshot; default as-of = latest invoice/receipt date (R4, 04-02)."""
    _load(duckdb_engine, _rows)
    url = str(duckdb_engine.url)
    duckdb_engine.dispose()
    assert cli_main(["kpis", "--db", url, "--as-of", "2024-03-31", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dso_standard"] == 69.0 and out["aging"]["31-60"] == 1700.0 and out["currency"] == "USD"
    assert cli_main(["kpis", "--db", url, "--json", "--business-unit", "BU2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["as_of"] == "2024-04-02" and out["ar_total"] == 1500.0
    assert cli_main(["kpis", "--db", url, "--as-of", "2024-03-31", "--currency", "EUR"]) == 0
    text = capsys.readouterr().out
    assert "DSO (standard)" in text and "EUR" in text
    # a usage error: one line on stderr and exit code 2 (returned by cli_main, not raised)
    assert cli_main(["kpis", "--db", url, "--as-of", "31/03/2024"]) == 2
    assert "not a date (YYYY-MM-DD)" in capsys.readouterr().err
