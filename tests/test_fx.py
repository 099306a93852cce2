"""Exchange rates and converted figures, worked out by hand (DuckDB, SQLite, PostgreSQL).

Rates (tests/fixtures/fx/eurofxref-sample.csv, ECB layout, units per EUR):
  2024-03-28  USD 1.0811  GBP 0.85500      (29 Mar Good Friday, 30-31 weekend: no rate)
  2024-03-27  USD 1.0830  GBP 0.85700
  2024-02-29  USD 1.0813  GBP 0.85460

Ledger, as of D = 2024-03-31 (every figure at the rate of 2024-03-28):
  U1  U (USD) 2024-03-01 due 03-31  1000.00  open, dpd 0  -> Current
  U2  U (USD) 2024-01-15 due 02-14   500.00  RU 200.00 applied 03-15; open 300.00, dpd 46 -> 31-60
  E1  E (EUR) 2024-03-10 due 04-09  2000.00  open -> Current
  G1  G (GBP) 2024-02-20 due 03-21   300.00  open, dpd 10 -> 1-30
  RG  G (GBP) 2024-03-30 50.00 receipt, unapplied

Into EUR (cents / rate, half-up):
  USD AR 130000 / 1.0811 = 120247.90 -> 120248;  GBP 30000 / 0.855 = 35087.72 -> 35088;  EUR 200000
  AR = 355336 (3,553.36); Current = 100000/1.0811 = 92498.38 -> 92498 + 200000 = 292498
  Sales (2024-01-02..03-31): USD 150000 -> 138748; EUR 200000; GBP 35088 -> 373836
  DSO = 355336 x 90 / 373836 = 85.546 -> 85.55;  BPDSO = 292498 x 90 / 373836 = 70.418 -> 70.42;  ADD 15.13
  % current = 292498 / 355336 = 82.32
  CEI March: AR(02-29) = USD 50000 -> 46249 + GBP 35088 = 81337; sales MTD = 92498 + 200000 = 292498
     (81337 + 292498 - 355336) / (81337 + 292498 - 292498) = 18499 / 81337 = 22.74 %
  Countback: March 31 d (292498), Feb 29 d (35088) -> remaining 27750 of Jan 46249: 60 + 31 x 27750/46249 = 78.60
  Aging: Current 292498, 1-30 35088, 31-60 30000/1.0811 = 27749.51 -> 27750
  Unapplied: 5000 / 0.855 = 5847.95 -> 58.48
Cross rate GBP -> USD = 1.0811 / 0.855 = 1.264444...; 300.00 GBP = 37933.33 -> 379.33 USD.
"""
import datetime as dt
import json
from fractions import Fraction
from pathlib import Path

import pytest
import sqlalchemy as sa

from analytics import fx, kpis, schema
from analytics.cli import main as cli_main
from analytics.errors import UserError, ValidationFailed
from analytics.ledger import LedgerFilter

D = dt.date
AS_OF = D(2024, 3, 31)
RATES = Path(__file__).parent / "fixtures" / "fx" / "eurofxref-sample.csv"


def inv_row(id, cust, inv_date, due, cents, cur):
    return dict(id=id, customer_id=cust, doc_type="invoice", invoice_date=inv_date, due_date=due,
                amount_cents=cents, currency=cur)


def build(engine):
    with engine.begin() as c:
        c.execute(schema.customers.insert(), [dict(id="U", name="U Inc", currency="USD"),
                                              dict(id="E", name="E GmbH", currency="EUR"),
                                              dict(id="G", name="G Ltd", currency="GBP")])
        c.execute(schema.invoices.insert(), [
            inv_row("U1", "U", D(2024, 3, 1), D(2024, 3, 31), 100_000, "USD"),
            inv_row("U2", "U", D(2024, 1, 15), D(2024, 2, 14), 50_000, "USD"),
            inv_row("E1", "E", D(2024, 3, 10), D(2024, 4, 9), 200_000, "EUR"),
            inv_row("G1", "G", D(2024, 2, 20), D(2024, 3, 21), 30_000, "GBP")])
        c.execute(schema.receipts.insert(), [
            dict(id="RU", customer_id="U", receipt_date=D(2024, 3, 15), amount_cents=20_000, currency="USD"),
            dict(id="RG", customer_id="G", receipt_date=D(2024, 3, 30), amount_cents=5_000, currency="GBP")])
        c.execute(schema.applications.insert(), [dict(receipt_id="RU", credit_memo_id=None, invoice_id="U2",
                                                      amount_cents=20_000, applied_date=D(2024, 3, 15))])
    fx.load_rates(engine, RATES)


def test_rates_lookup_conversion_and_converted_kpis(engine):
    build(engine)
    with engine.connect() as conn:
        # latest on or before the date, rate date stated
        assert fx.rate(conn, "USD", "EUR", D(2024, 3, 31)).rate_date == D(2024, 3, 28)
        assert fx.rate(conn, "EUR", "USD", D(2024, 3, 27)).value == Fraction(10830, 10000)
        assert fx.rate(conn, "EUR", "USD", D(2024, 3, 26)).rate_date == D(2024, 2, 29)
        with pytest.raises(UserError, match="no USD exchange rate on or before 2024-02-28"):
            fx.rate(conn, "USD", "EUR", D(2024, 2, 28))
        with pytest.raises(UserError, match="34 days earlier"):
            fx.rate(conn, "USD", "EUR", D(2024, 5, 1))
        # triangulation through EUR, no intermediate rounding
        gu = fx.rate(conn, "GBP", "USD", AS_OF)
        assert gu.value == Fraction(10811, 10000) / Fraction(855, 1000)
        assert gu.convert(30_000) == 37_933 and gu.text().startswith("1 GBP = 1.264444 USD (rate of 2024-03-28)")
        assert fx.rate(conn, "USD", "USD", AS_OF).convert(12_345) == 12_345

        snap = fx.snapshot(conn, AS_OF, LedgerFilter(currencies=("USD",)), "EUR")  # currency filter ignored
        assert snap["currency"] == "EUR" and snap["rate_date"] == "2024-03-28" and snap["converted"]
        assert (snap["ar_total"], snap["current_total"], snap["overdue_total"]) == (3553.36, 2924.98, 628.38)
        assert snap["credit_sales"] == 3738.36
        assert (snap["dso_standard"], snap["bpdso"], snap["add"], snap["pct_current"]) == (85.55, 70.42, 15.13, 82.32)
        assert snap["cei_month"] == 22.74 and snap["dso_countback"] == 78.60
        assert snap["aging"] == {"Current": 2924.98, "1-30": 350.88, "31-60": 277.5, "61-90": 0.0, "91-120": 0.0,
                                 "120+": 0.0}
        assert snap["unapplied_cash"] == 58.48
        assert (snap["open_items"], snap["customers_with_balance"]) == (4, 3)
        assert set(snap["rates"]) == {"USD", "GBP"}  # EUR needs no rate
        # one currency reported in itself equals the transaction-currency KPI exactly
        own = fx.snapshot(conn, AS_OF, LedgerFilter(customers=("U",)), "USD")
        plain = kpis.snapshot(conn, AS_OF, LedgerFilter(currencies=("USD",)))
        assert all(own[k] == plain[k] for k in plain if k != "currency")

        ag = fx.aging(conn, AS_OF, LedgerFilter(), "EUR")
        assert ag.set_index("bucket")["open_cents"].to_dict() == {
            "Current": 292_498, "1-30": 35_088, "31-60": 27_750, "61-90": 0, "91-120": 0, "120+": 0}
        assert ag.attrs["currency"] == "EUR" and ag.attrs["rate_date"] == "2024-03-28"
        tr = fx.kpi_trend(conn, [D(2024, 2, 29), AS_OF], LedgerFilter(), "EUR").set_index("as_of")
        assert tr.loc[AS_OF, "ar_cents"] == 355_336
        # at 02-29 (rate of 02-29): USD 50000 / 1.0813 = 46240.63 -> 46241; GBP 30000 / 0.8546 = 35104.14 -> 35104
        assert tr.loc[D(2024, 2, 29), "ar_cents"] == 46_241 + 35_104


def test_rates_file_checks_and_repeat(engine, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("Date,USD,GBP,\n2024-03-28,1.0811,0.855,\n2024-03-27,1.08x,0,\n31 Feb 2024,1,1,\n")
    with pytest.raises(ValidationFailed) as err:
        fx.load_rates(engine, bad)
    assert [(e.row, e.column, e.value) for e in err.value.errors] == [
        (3, "USD", "1.08x"), (3, "GBP", "0"), (4, "Date", "31 Feb 2024")]
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(schema.exchange_rates)).scalar() == 0
    first = fx.load_rates(engine, RATES)
    assert (first.added, first.unchanged, first.currencies) == (9, 0, ("GBP", "JPY", "USD"))
    again = fx.load_rates(engine, RATES)
    assert (again.added, again.unchanged) == (0, 9)
    changed = tmp_path / "changed.csv"
    changed.write_text("Date,USD,\n28 March 2024,1.0900,\n")  # the ECB's one-day file layout
    with pytest.raises(ValidationFailed, match="conflicts with the loaded USD rate of 2024-03-28"):
        fx.load_rates(engine, changed)


def test_cli_converts(engine, capsys):
    build(engine)
    url = engine.url.render_as_string(hide_password=False)
    assert cli_main(["kpis", "--as-of", "2024-03-31", "--report-currency", "EUR", "--json", "--db", url]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ar_total"] == 3553.36 and out["currency"] == "EUR" and out["rate_date"] == "2024-03-28"
    assert cli_main(["aging", "--as-of", "2024-03-31", "--currency-report", "GBP", "--json", "--db", url]) == 0
    out = json.loads(capsys.readouterr().out)
    # EUR 2000.00 x 0.855 = 1710.00; USD 100000 x 0.855 / 1.0811 = 79086.12 -> 79086; + 171000 = 250086
    assert out["rows"][0]["open"] == 2500.86 and "1 USD = " in " ".join(out["rates"].values())
    assert cli_main(["fx", "rate", "gbp", "usd", "--on", "2024-03-31", "--db", url]) == 0
    assert "1 GBP = 1.264444 USD (rate of 2024-03-28)" in capsys.readouterr().out
    assert cli_main(["aging", "--as-of", "2024-03-31", "--report-currency", "EUR", "--by", "customer",
                     "--db", url]) == 2
    capsys.readouterr()
    assert cli_main(["load", "rates", str(RATES), "--db", url]) == 0
    assert "0 added, 9 already loaded" in capsys.readouterr().out
    assert cli_main(["rollforward", "--from", "2024-03", "--to", "2024-03", "--report-currency", "EUR", "--json",
                     "--db", url]) == 0
    months = {m["currency"]: m for m in json.loads(capsys.readouterr().out)["months"]}
    assert (months["GBP"]["fx_revaluation"], months["GBP"]["rate_date"], months["USD"]["difference"]) == (
        -0.16, "2024-03-28", 0.0)


def open_built(duckdb_engine, monkeypatch, page: str, build_ledger=build):
    """The page under AppTest (as a manager) over ``build_ledger``'s ledger, checked to render cleanly."""
    from tests.apptest_helpers import assert_clean, open_page

    build_ledger(duckdb_engine)
    url = duckdb_engine.url.render_as_string(hide_password=False)
    duckdb_engine.dispose()
    monkeypatch.setenv("AR_DB_URL", url)
    at = open_page(monkeypatch, url, page, role="manager")
    assert_clean(at)
    return at


def test_pages_show_converted_figures_with_the_rate_date(duckdb_engine, monkeypatch):
    from tests.apptest_helpers import assert_clean, texts

    at = open_built(duckdb_engine, monkeypatch, "overview")
    assert at.selectbox(key="w_report_currency").value is None  # transaction currency by default
    at.selectbox(key="w_report_currency").set_value("EUR").run()
    assert_clean(at)
    shown = texts(at)
    assert "converted into EUR" in shown and "rate of 2024-03-28" in shown
    assert "EUR 3,553" in [m.value for m in at.metric]  # AR 3,553.36 (cards show whole units)
    at.sidebar.date_input(key="w_as_of").set_value(D(2024, 2, 29)).run()  # no rates by 01-31: no change shown
    assert_clean(at)
    assert "EUR 813" in [m.value for m in at.metric]  # 50000 / 1.0813 -> 46241 + 30000 / 0.8546 -> 35104
    at.sidebar.date_input(key="w_as_of").set_value(D(2024, 3, 30)).run()
    at.switch_page("../pages/aging.py").run()  # the choice is kept across pages
    assert_clean(at)
    assert "converted into EUR" in texts(at)
    at.segmented_control(key="aging_basis").set_value("document").run()
    at.text_input(key="aging_edges").set_value("0, 60").run()
    assert_clean(at)
    assert [o for o in at.selectbox(key="aging_bucket").options] == ["Current", "1-60", "60+"]
    at.switch_page("../pages/cash_application.py").run()
    at.date_input(key="ca_rf_from").set_value(D(2024, 3, 1))
    at.date_input(key="ca_rf_to").set_value(D(2024, 3, 31)).run()
    assert_clean(at)
    assert "FX revaluation line" in texts(at) and "ties to the open items" in texts(at)


def test_month_end_revaluation_in_the_roll_forward(engine):
    """March 2024 into EUR. Opening at the 02-29 rates, lines and closing at the 03-28 rates:
    USD: opening U2 50000 / 1.0813 = 46240.63 -> 46241; invoice U1 100000 / 1.0811 -> 92498; cash -20000
         / 1.0811 = -18499.68 -> -18500; closing 130000 / 1.0811 -> 120248; FX = 120248 - 46241 - 92498
         + 18500 = +9 (gain 0.09).
    GBP: opening G1 30000 / 0.8546 = 35104.14 -> 35104; no lines; closing 30000 / 0.855 -> 35088; FX = -16.
    EUR: no revaluation (E1 200000 issued and open).
    """
    from analytics.cash_app import reports, ties_out

    build(engine)
    with engine.connect() as conn:
        rf = reports.revalued_rollforward(conn, "2024-03", "2024-03", "EUR").set_index("currency")
    assert rf.loc["USD", ["opening_cents", "invoices_cents", "cash_applied_cents", "fx_revaluation_cents",
                          "closing_cents"]].tolist() == [46_241, 92_498, -18_500, 9, 120_248]
    assert rf.loc["GBP", ["opening_cents", "fx_revaluation_cents", "closing_cents"]].tolist() == [35_104, -16, 35_088]
    assert rf.loc["EUR", ["opening_cents", "invoices_cents", "fx_revaluation_cents", "closing_cents"]].tolist() == [
        0, 200_000, 0, 200_000]
    assert ties_out(rf) and int(rf["closing_cents"].sum()) == 355_336  # = the converted AR of the snapshot
    assert rf.loc["USD", "rate_date"] == D(2024, 3, 28)
