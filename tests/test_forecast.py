"""Cash forecast on a small ledger worked out by hand.

Ledger (USD), as of Sunday 2024-06-30, so forecast week 1 = Mon 07-01 .. Sun 07-07:

Customer A, history (all due 120+ days before as-of, ages clipped to the 120-day follow-up):
  H1 due 01-31 1,000.00 paid 02-10 (d = 10)     H2 due 02-14 1,000.00 paid 02-24 (d = 10)
  H3 due 03-02 1,000.00 paid 03-22 (d = 20)     H4 due 03-02 1,000.00 never paid (written off 06-01)
Customer A, open at as-of:
  O1 due 06-25 (5 days past due)  2,000.00       O2 due 06-15 (15 days past due)  400.00
Customer B (no payment history), open: P1 due 07-10 (not yet due, p = -10) 1,000.00

Kaplan–Meier (prior_weight 0, no decay): at risk on day 10 = H1..H4 + O2 (aged 15 >= 10) = 4,400, paid
2,000 -> h(10) = 5/11; at risk on day 20 = H1..H4 less 2,000 paid = 2,000, paid 1,000 -> h(20) = 1/2.
f(10) = 5/11, f(20) = 6/11 · 1/2 = 3/11, never paid U = 3/11.
  O1 (p = 5):   d = 10 -> 07-05 week 1: 2,000 · (5/11) / (8/11 + 3/11) = 909.09; d = 20 -> 07-15 week 3: 545.45
  O2 (p = 15):  d = 20 -> 07-05 week 1: 400 · (3/11) / (3/11 + 3/11) = 200.00
  P1 (B): nothing at risk after day -10, so the pooled hazard (= A's): d = 10 -> 07-20 week 3: 1,000 · 5/11
      = 454.55; d = 20 -> 07-30 week 5: 272.73
Expected: week 1 = 1,109.09, week 3 = 1,000.00, week 5 = 272.73, others 0.
"""
import dataclasses
import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from analytics import schema
from analytics.cli import main as cli_main
from analytics.forecast import (BottomUpForecaster, Scenario, actual_receipts, apply_scenario, backtest,
                                backtest_summary, change_collection_rate, choose_method, delay_customer,
                                expected_by_week, forecast, load_history, shift_days)
from analytics.forecast.models import ETSForecaster, NaiveLast, SarimaxForecaster
from analytics.ledger import LedgerFilter

D = dt.date
AS_OF = D(2024, 6, 30)
USD = LedgerFilter(currencies=("USD",))


def _add_invoice(c, iid, cust, due, cents, inv_date=None):
    c.execute(schema.invoices.insert().values(id=iid, customer_id=cust, invoice_date=inv_date or due - dt.timedelta(30),
                                              due_date=due, amount_cents=cents))


def _pay(c, rid, iid, cust, day, cents, applied=None):
    c.execute(schema.receipts.insert().values(id=rid, customer_id=cust, receipt_date=day, amount_cents=cents))
    c.execute(schema.applications.insert().values(receipt_id=rid, invoice_id=iid, amount_cents=cents,
                                                  applied_date=applied or day))


def _build_hand(engine):
    with engine.begin() as c:
        c.execute(schema.customers.insert(), [{"id": "A", "name": "Alpha"}, {"id": "B", "name": "Beta"}])
        for iid, due, cents in [("H1", D(2024, 1, 31), 100_000), ("H2", D(2024, 2, 14), 100_000),
                                ("H3", D(2024, 3, 2), 100_000), ("H4", D(2024, 3, 2), 100_000),
                                ("O1", D(2024, 6, 25), 200_000), ("O2", D(2024, 6, 15), 40_000)]:
            _add_invoice(c, iid, "A", due, cents)
        _add_invoice(c, "P1", "B", D(2024, 7, 10), 100_000)
        _pay(c, "R1", "H1", "A", D(2024, 2, 10), 100_000)
        _pay(c, "R2", "H2", "A", D(2024, 2, 24), 100_000)
        _pay(c, "R3", "H3", "A", D(2024, 3, 22), 100_000)
        c.execute(schema.adjustments.insert().values(invoice_id="H4", adj_date=D(2024, 6, 1), amount_cents=-100_000,
                                                     kind="write_off"))
    return engine


@pytest.fixture
def hand(engine):
    """The hand ledger on every backend (for the SQL-dependent tests)."""
    return _build_hand(engine)


@pytest.fixture
def hand_duck(duckdb_engine):
    """The hand ledger on the embedded database only (for tests of the Python arithmetic)."""
    return _build_hand(duckdb_engine)


def _bottom_up(engine, as_of=AS_OF, **kw):
    params = dict(prior_weight=0, half_life=None, include_new_sales=False)
    params.update(kw)
    return BottomUpForecaster(**params).fit(load_history(engine, as_of, USD))


def test_bottom_up_arithmetic_by_hand(hand):
    p = _bottom_up(hand).predict(6)
    assert list(p["week_start"]) == [D(2024, 7, 1) + dt.timedelta(days=7 * i) for i in range(6)]
    expected = np.array([2000 * 5 / 11 + 200, 0, 2000 * 3 / 11 + 1000 * 5 / 11, 0, 1000 * 3 / 11, 0]) * 100
    np.testing.assert_allclose(p["expected"].to_numpy(), expected, atol=1e-6)
    # all-or-nothing variance per group: week 1 = O1 q = 5/11 and O2 q = 1/2
    _, var = expected_by_week(_bottom_up(hand).inputs_, 6)
    assert var[0] == pytest.approx(200_000 ** 2 * (5 / 11) * (6 / 11) + 40_000 ** 2 * 0.25)
    assert (p["lower"] <= p["expected"]).all() and (p["upper"] >= p["expected"]).all()


def test_unapplied_cash_comes_off_the_oldest_item(hand_duck):
    with hand_duck.begin() as c:  # 100.00 received from A on 06-28, not applied by as-of
        c.execute(schema.receipts.insert().values(id="RX", customer_id="A", receipt_date=D(2024, 6, 28),
                                                  amount_cents=10_000))
    p = _bottom_up(hand_duck).predict(3)
    assert p["expected"].iloc[0] == pytest.approx((2000 * 5 / 11 + 300 * 0.5) * 100)


def test_prior_weight_pulls_a_customer_toward_the_pool(hand_duck):
    own = _bottom_up(hand_duck).inputs_
    pooled = _bottom_up(hand_duck, prior_weight=1e9).inputs_
    # A is the only payer, so A's own hazard and the pooled one differ only through B's young invoice: equal here
    np.testing.assert_allclose(own.profiles, pooled.profiles, atol=1e-9)


def test_new_sales_add_receipts_later_in_the_horizon(hand_duck):
    without = _bottom_up(hand_duck).predict(13)["expected"].sum()
    with_sales = _bottom_up(hand_duck, include_new_sales=True).predict(13)["expected"].sum()
    assert with_sales > without


# ------------------------------------------------------------------------------------------------ levers
def test_levers_are_pure_and_do_what_they_say(hand_duck):
    inputs = _bottom_up(hand_duck).inputs_
    before = inputs.profiles.copy()
    base, _ = expected_by_week(inputs, 6)

    later, _ = expected_by_week(shift_days(inputs, 7), 6)  # everything one week later
    np.testing.assert_allclose(later[1:], base[:-1], atol=1e-6)
    assert later[0] == pytest.approx(0)

    earlier, _ = expected_by_week(shift_days(inputs, -14), 6)  # week 3 -> week 1, week 1 stays at day 1
    assert earlier[0] == pytest.approx(base[0] + base[2])

    less, _ = expected_by_week(change_collection_rate(inputs, -10), 6)
    np.testing.assert_allclose(less, base * 0.9, atol=1e-6)

    delayed, _ = expected_by_week(delay_customer(inputs, "B", 2), 6)
    b3 = 1000 * 5 / 11 * 100
    assert delayed[2] == pytest.approx(base[2] - b3) and delayed[4] == pytest.approx(b3)
    np.testing.assert_array_equal(inputs.profiles, before)  # nothing mutated

    combo, _ = expected_by_week(apply_scenario(inputs, Scenario(shift_days=7, collection_rate_pct=-10)), 6)
    np.testing.assert_allclose(combo[1:], base[:-1] * 0.9, atol=1e-6)
    with pytest.raises(Exception, match="no open invoice"):
        delay_customer(inputs, "NOPE", 2)


def test_scenario_applies_to_the_forecast_api(hand_duck):
    base = forecast(hand_duck, AS_OF, weeks=6, flt=USD, method="bottom_up")
    slow = forecast(hand_duck, AS_OF, weeks=6, flt=USD, method="bottom_up", scenario=Scenario(shift_days=7))
    assert slow["expected"].iloc[0] < base["expected"].iloc[0]
    assert set(base.columns) == {"week_start", "expected", "lower", "upper", "method"}
    assert (base["method"] == "bottom_up").all()


# ------------------------------------------------------------------------------------------------ intervals
def _series_history(n=80, seed=0):
    rng = np.random.default_rng(seed)
    y = 10_000 + np.cumsum(rng.normal(0, 300, n)) + rng.normal(0, 800, n)
    idx = pd.DatetimeIndex([pd.Timestamp(AS_OF - dt.timedelta(days=7 * (n - i) - 1)) for i in range(n)])
    from analytics.forecast.data import History

    empty = pd.DataFrame()
    return History(as_of=AS_OF, currency="USD", receipts=pd.Series(y * 100, index=idx),
                   sales=pd.Series(y * 100, index=idx), open_groups=empty, pay_days=empty, cohort=empty,
                   invoice_days=empty, unapplied=empty)


@pytest.mark.parametrize("cls", [ETSForecaster, SarimaxForecaster, NaiveLast])
def test_model_intervals_widen_with_the_horizon(cls):
    p = cls().fit(_series_history()).predict(13)
    width = (p["upper"] - p["lower"]).to_numpy()
    assert width[-1] > width[0]
    assert (np.diff(width) >= -1e-6).all()


def test_forecast_band_never_narrows(duckdb_engine):
    _grow_ledger(duckdb_engine)
    for method in ("combined", "naive_mean4"):
        fc = forecast(duckdb_engine, D(2024, 6, 30), weeks=13, method=method)
        width = (fc["upper"] - fc["lower"]).to_numpy()
        assert (np.diff(width) >= -0.011).all(), method
        assert (fc["lower"] <= fc["expected"]).all() and (fc["expected"] <= fc["upper"]).all()


# ------------------------------------------------------------------------------------------------ leakage
def _grow_ledger(engine, start=D(2023, 1, 2), end=D(2024, 9, 30), seed=3, cut=None):
    """A year and a half of weekly invoices for 4 customers, each paid ~10 days late (deterministic).
    ``cut``: leave out everything dated after it (the same ledger as it stood then)."""
    cut = cut or end
    rng = np.random.default_rng(seed)
    with engine.begin() as c:
        c.execute(schema.customers.insert(), [{"id": f"K{i}", "name": f"K{i}"} for i in range(4)])
        day, n = start, 0
        while day <= end:
            for k in range(4):
                n += 1
                cents = int(rng.integers(50_000, 150_000))
                due = day + dt.timedelta(days=30)
                paid = due + dt.timedelta(days=int(rng.integers(0, 20)) + 3 * k)
                if day <= cut:
                    _add_invoice(c, f"I{n}", f"K{k}", due, cents, inv_date=day)
                if paid <= min(end, cut) and n % 17:
                    _pay(c, f"R{n}", f"I{n}", f"K{k}", paid, cents)
            day += dt.timedelta(days=7)
    return engine


def test_no_leakage_data_after_as_of_is_never_used(duckdb_engine, tmp_path):
    from analytics import db

    _grow_ledger(duckdb_engine, end=D(2024, 9, 30))
    as_of = D(2024, 3, 31)
    short = db.connect(f"duckdb:///{tmp_path / 'short.duckdb'}")
    _grow_ledger(short, end=D(2024, 9, 30), cut=as_of)  # the same ledger without anything dated later
    for method in ("bottom_up", "ets", "naive_seasonal"):
        a = forecast(duckdb_engine, as_of, weeks=13, method=method)
        b = forecast(short, as_of, weeks=13, method=method)
        pd.testing.assert_frame_equal(a, b)
    short.dispose()


# ------------------------------------------------------------------------------------------------ backtest
def test_backtest_scores_every_method_and_picks_by_wape(duckdb_engine):
    _grow_ledger(duckdb_engine)
    calls = []
    bt = backtest(duckdb_engine, weeks=13, origins=3, step=4, min_train_weeks=26,
                  progress=lambda i, n: calls.append((i, n)))
    assert calls[-1] == (3, 3)
    assert set(bt["method"]) == {"naive_last", "naive_seasonal", "naive_mean4", "ets", "holt_winters", "sarimax",
                                 "bottom_up", "combined"}
    assert bt.groupby("method")["horizon_week"].apply(list).map(len).eq(13).all()
    assert (bt["wape"] >= 0).all() and bt["origins"].eq(3).all()
    s = backtest_summary(bt)
    assert {"wape_1_4", "wape_5_13", "bias_1_4", "bias_5_13"} <= set(s.columns)
    chosen = choose_method(s)
    assert s.set_index("method").loc[chosen, "wape_all"] == s["wape_all"].min()
    # a backtest ending at an earlier date only reads data before it
    origins = bt.attrs["origin_dates"]
    assert max(origins) <= (D.fromisoformat(bt.attrs["end"]) - dt.timedelta(days=91)).isoformat()


@pytest.mark.slow
def test_auto_uses_the_backtest_choice(duckdb_engine):
    _grow_ledger(duckdb_engine)
    fc = forecast(duckdb_engine, D(2024, 6, 30), weeks=4, backtest_origins=3)
    assert fc["method"].nunique() == 1 and "chosen by backtest" in fc.attrs["selection_note"]


def test_actual_receipts_weekly(hand):
    a = actual_receipts(hand, D(2024, 2, 5), D(2024, 2, 25), USD)
    assert list(a["week_start"]) == [D(2024, 2, 5), D(2024, 2, 12), D(2024, 2, 19)]
    assert list(a["actual"]) == [1000.0, 0.0, 1000.0] and list(a["days"]) == [7, 7, 7]


def test_currency_is_never_mixed(duckdb_engine):
    from analytics.errors import UserError

    with pytest.raises(UserError, match="one currency"):
        forecast(duckdb_engine, AS_OF, flt=LedgerFilter(currencies=("USD", "EUR")))


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_json_shapes(duckdb_engine, capsys):
    _grow_ledger(duckdb_engine)
    url = duckdb_engine.url.render_as_string(hide_password=False)
    duckdb_engine.dispose()
    assert cli_main(["forecast", "--db", url, "--as-of", "2024-06-30", "--weeks", "13", "--method", "combined",
                     "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 13 and set(rows[0]) == {"week_start", "expected", "lower", "upper", "method"}
    assert rows[0]["week_start"] == "2024-07-01" and isinstance(rows[0]["expected"], float)
    assert cli_main(["forecast", "backtest", "--db", url, "--origins", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["chosen_method"] in {r["method"] for r in out["summary"]}
    assert set(out["table"][0]) >= {"method", "horizon_week", "wape", "bias"}
    assert cli_main(["forecast", "--db", url, "--method", "nonsense"]) == 2
