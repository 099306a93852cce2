"""Collectors and SLA in a reporting currency, worked out by hand (DuckDB, SQLite, PostgreSQL).

Rates (tests/fixtures/fx/eurofxref-sample.csv, units per EUR): 2024-03-28 USD 1.0811, GBP 0.855 — the rate
of every figure at D = 2024-03-31 (and of the March leaderboard, whose period ends on D).

Ledger: collector A1 has U (USD) and G (GBP), collector A2 has E (EUR).
  U1  U 2024-03-01 due 03-31  1000.00 USD  open, dpd 0 (current)
  U2  U 2024-01-15 due 02-14   500.00 USD  RU 200.00 applied 03-15 -> open 300.00, dpd 46
  G1  G 2024-02-20 due 03-21   300.00 GBP  RG 50.00 applied 03-30 -> open 250.00, dpd 10
  E1  E 2024-03-10 due 04-09  2000.00 EUR  open, current
  a call to U on 2024-03-28

Into EUR (cents / rate, half-up, each part on its own):
  A1  AR      USD 130000 -> 120248, GBP 25000 -> 29240                 = 149488 (1,494.88)
      overdue USD 30000 -> 27750, GBP 25000 -> 29240                   =  56990
      collected USD 20000 -> 18500, GBP 5000 -> 5848                   =  24348 (243.48)
      CEI     AR(02-29) USD 50000 -> 46249 + GBP 30000 -> 35088 = 81337; March sales USD 100000 -> 92498
              (81337 + 92498 - 149488) / (81337 + 92498 - 92498) = 24347 / 81337 = 29.93 %
      accounts 2 (one per currency), activities 1, touched 1
  A2  AR 200000, overdue 0, collected 0; CEI undefined (nothing collectable: 0 + 2000 - 2000 current)
SLA at D in EUR (targets by default: DSO window 90 days, March to date):
  DSO  = AR 349488 / sales since 01-02 (USD 150000 -> 138748 + EUR 200000 + GBP 30000 -> 35088 = 373836)
         x 90 = 84.14 days -> breached (<= 45)
  CEI  = (81337 + 292498 - 349488) / (81337 + 292498 - 292498) = 29.93 % -> breached (>= 80)
  past due > 30 days contacted in 7 days: U only, called 03-28 -> 1 of 1 = 100 % -> met
  disputes, promises: none -> not defined
"""
import datetime as dt
import json
import math

import pytest

from analytics import db, fx, schema
from analytics.cli import main as cli_main
from analytics.kpis import collectors as kcol
from analytics.kpis import sla
from analytics.ledger import LedgerFilter

from tests.test_fx import AS_OF, RATES, D, inv_row, open_built


def build(engine):
    with engine.begin() as c:
        db.bulk_insert(c, schema.collectors, [dict(id="A1", name="Ann"), dict(id="A2", name="Bob")])
        db.bulk_insert(c, schema.customers, [dict(id="U", name="U Inc", currency="USD", collector_id="A1"),
                                             dict(id="G", name="G Ltd", currency="GBP", collector_id="A1"),
                                             dict(id="E", name="E GmbH", currency="EUR", collector_id="A2")])
        db.bulk_insert(c, schema.invoices, [
            inv_row("U1", "U", D(2024, 3, 1), D(2024, 3, 31), 100_000, "USD"),
            inv_row("U2", "U", D(2024, 1, 15), D(2024, 2, 14), 50_000, "USD"),
            inv_row("E1", "E", D(2024, 3, 10), D(2024, 4, 9), 200_000, "EUR"),
            inv_row("G1", "G", D(2024, 2, 20), D(2024, 3, 21), 30_000, "GBP")])
        db.bulk_insert(c, schema.receipts, [
            dict(id="RU", customer_id="U", receipt_date=D(2024, 3, 15), amount_cents=20_000, currency="USD"),
            dict(id="RG", customer_id="G", receipt_date=D(2024, 3, 30), amount_cents=5_000, currency="GBP")])
        db.bulk_insert(c, schema.applications, [
            dict(receipt_id="RU", invoice_id="U2", amount_cents=20_000, applied_date=D(2024, 3, 15)),
            dict(receipt_id="RG", invoice_id="G1", amount_cents=5_000, applied_date=D(2024, 3, 30))])
        db.bulk_insert(c, schema.activities, [dict(customer_id="U", occurred_at=dt.datetime(2024, 3, 28, 10),
                                                   collector_id="A1", type="call")])
    fx.load_rates(engine, RATES)


def test_collector_leaderboard_in_a_reporting_currency(engine):
    build(engine)
    with engine.connect() as c:
        k = fx.collector_kpis(c, D(2024, 3, 1), AS_OF, LedgerFilter(currencies=("USD",)), "EUR").set_index(
            "collector_id")
        assert k.attrs["currency"] == "EUR" and k.attrs["rate_date"] == "2024-03-28"
        assert set(k.attrs["rates"]) == {"USD", "GBP"}
        a1, a2 = k.loc["A1"], k.loc["A2"]
        assert (a1.accounts, a1.accounts_with_balance, a1.ar_cents, a1.overdue_cents, a1.collected_cents) == (
            2, 2, 149_488, 56_990, 24_348)
        assert round(a1.cei, 2) == 29.93 and (a1.activities, a1.accounts_touched) == (1, 1)
        assert (a2.accounts, a2.ar_cents, a2.overdue_cents, a2.collected_cents) == (1, 200_000, 0, 0)
        assert math.isnan(a2.cei)
        # one currency reported in itself is the transaction-currency leaderboard exactly
        own = fx.collector_kpis(c, D(2024, 3, 1), AS_OF, LedgerFilter(customers=("U",)), "USD")
        plain = kcol.collector_kpis(c, D(2024, 3, 1), AS_OF, LedgerFilter(currencies=("USD",), customers=("U",)))
        assert own.drop(columns="cei").equals(plain.drop(columns="cei"))
        assert own["cei"].round(10).tolist() == plain["cei"].round(10).tolist()


def test_sla_status_in_a_reporting_currency(engine):
    build(engine)
    with engine.connect() as c:
        st = fx.sla_status(c, AS_OF, LedgerFilter(), "EUR").set_index("metric")
        assert st.attrs["currency"] == "EUR" and st.attrs["rate_date"] == "2024-03-28"
        assert round(st.loc["dso", "actual"], 2) == 84.14 and st.loc["dso", "status"] == "breached"
        assert "AR 3,494.88 EUR / credit sales of the last 90 days 3,738.36 EUR" in st.loc["dso", "detail"]
        assert round(st.loc["cei", "actual"], 2) == 29.93 and st.loc["cei", "status"] == "breached"
        assert (st.loc["past_due_contacted", "actual"], st.loc["past_due_contacted", "status"]) == (100.0, "met")
        assert st.loc["ptp_kept", "status"] == st.loc["disputes_resolved_in_time", "status"] == "not defined"
        # one currency reported in itself is the transaction-currency status exactly
        own = fx.sla_status(c, AS_OF, LedgerFilter(customers=("U",)), "USD")
        plain = sla.sla_status(c, AS_OF, LedgerFilter(currencies=("USD",), customers=("U",)))
        assert own[["metric", "status", "detail"]].equals(plain[["metric", "status", "detail"]])
        assert own["actual"].round(10).equals(plain["actual"].round(10))


@pytest.mark.parametrize("command", ["collectors", "sla"])
def test_collectors_and_sla_commands_take_a_reporting_currency(engine, capsys, command):
    build(engine)
    url = engine.url.render_as_string(hide_password=False)
    extra = ["--from", "2024-03-01", "--to", "2024-03-31"] if command == "collectors" else ["--as-of", "2024-03-31"]
    assert cli_main([command, "--db", url, *extra, "--report-currency", "EUR", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["currency"] == "EUR" and out["rate_date"] == "2024-03-28"
    if command == "collectors":
        a1 = next(r for r in out["collectors"] if r["collector_id"] == "A1")
        assert (a1["ar"], a1["collected"]) == (1494.88, 243.48)
    else:
        assert {r["metric"]: r["status"] for r in out["status"]}["dso"] == "breached"
    assert cli_main([command, "--db", url, *extra, "--report-currency", "EUR"]) == 0
    assert "1 USD = 0.924984 EUR (rate of 2024-03-28)" in capsys.readouterr().out


def test_collectors_and_sla_pages_show_converted_figures_with_the_rate_date(duckdb_engine, monkeypatch):
    from tests.apptest_helpers import assert_clean, texts

    at = open_built(duckdb_engine, monkeypatch, "collectors", build)
    at.sidebar.date_input(key="w_as_of").set_value(AS_OF).run()
    at.selectbox(key="w_report_currency").set_value("EUR").run()
    assert_clean(at)
    shown = texts(at)
    assert "converted into EUR" in shown and "rate of 2024-03-28" in shown
    at.switch_page("../pages/sla.py").run()  # the choice is kept across pages
    assert_clean(at)
    shown = texts(at)
    assert "converted into EUR" in shown and "Currency filter's currency" in shown
    assert "84.1" in [m.value for m in at.metric]  # DSO 84.14 days over every currency in EUR


def test_worklist_in_a_reporting_currency_ranks_every_currency_together(engine):
    """Open balances at D into EUR: U 1,300.00 USD -> 1,202.48; G 250.00 GBP -> 292.40; E 2,000.00 EUR."""
    from analytics import worklist as wl

    build(engine)
    with engine.connect() as c:
        got = fx.worklist(c, AS_OF, LedgerFilter(currencies=("USD",)), "EUR")
        assert got.attrs["currency"] == "EUR" and got.attrs["rate_date"] == "2024-03-28"
        assert dict(zip(got.customer_id, got.open_cents)) == {"U": 120_248, "G": 29_240, "E": 200_000}
        assert dict(zip(got.customer_id, got.overdue_cents)) == {"U": 27_750, "G": 29_240, "E": 0}
        assert set(got.currency) == {"EUR"} and got["rank"].tolist() == [1, 2, 3]
        assert got.equals(wl.rank(got.sample(frac=1, random_state=1))[wl.COLUMNS])  # one ranking, converted units
        own = fx.worklist(c, AS_OF, LedgerFilter(customers=("U",)), "USD")
        plain = wl.worklist(c, AS_OF, LedgerFilter(currencies=("USD",), customers=("U",)))
        assert own.drop(columns="currency").equals(plain.drop(columns="currency"))


def test_worklist_page_ranks_in_the_reporting_currency(duckdb_engine, monkeypatch):
    from tests.apptest_helpers import assert_clean, texts

    at = open_built(duckdb_engine, monkeypatch, "worklist", build)
    at.sidebar.date_input(key="w_as_of").set_value(AS_OF).run()
    at.selectbox(key="w_report_currency").set_value("EUR").run()
    assert_clean(at)
    assert "converted into EUR and ranked together" in texts(at) and "rate of 2024-03-28" in texts(at)


def test_worklist_command_takes_a_reporting_currency(engine, capsys):
    build(engine)
    url = engine.url.render_as_string(hide_password=False)
    assert cli_main(["worklist", "--db", url, "--as-of", "2024-03-31", "--report-currency", "EUR", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["currency"] == "EUR" and out["rate_date"] == "2024-03-28"
    assert {a["customer_id"]: a["open_amount"] for a in out["accounts"]} == {"U": 1202.48, "G": 292.4, "E": 2000.0}
