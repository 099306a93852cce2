"""Risk features, models, explanations and model files.

Hand-made ledger (customer K1, USD, terms 30, credit limit 2,000.00, customer since 2023-01-01):
  I1 2024-01-01 due 01-31  1,000.00  paid in full 2024-02-20 (20 days late)
  I2 2024-02-01 due 03-02    500.00  200.00 paid 2024-03-10, 300.00 open; disputed 2024-03-05 (50.00)
  I3 2024-03-01 due 03-31    300.00  open
  promise 2024-03-05 -> 03-15 of 300.00; receipts in that window 200.00 -> broken
Customer K2: J1 2024-01-15 due 02-14 100.00 paid 2024-02-10 (4 days early).

Features of K1 as of 2024-04-15: 3 items, 1 paid, avg days late 20, late share 100 %, partial share 1/3
(I2), dispute rate 1/3, 1 open dispute (50.00), 1 broken promise, open 600.00, all overdue: I2 44 dpd
(31-60 bucket, 300.00 = 50 %), I3 15 dpd, credit utilisation 30 %, tenure 470 days.
"""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from analytics import cli, db, schema
from analytics.errors import UserError
from analytics.risk import (BANDS, HeuristicRiskScorer, band, load_model, save_model, score_accounts,
                            score_invoices, train)
from analytics.risk import features as F
from analytics.risk import persistence
from analytics.risk.explain import reason_text, reasons

D = dt.date
AS_OF = D(2024, 4, 15)


def _seed(conn):
    conn.execute(schema.collectors.insert(), [{"id": "C1", "name": "Ann"}])
    conn.execute(schema.customers.insert(), [
        dict(id="K1", name="Kappa", collector_id="C1", region="EMEA", credit_limit_cents=200_000,
             customer_since=D(2023, 1, 1)),
        dict(id="K2", name="Lambda", collector_id="C1", region="AMER", credit_limit_cents=None, customer_since=None)])
    conn.execute(schema.invoices.insert(), [
        dict(id="I1", customer_id="K1", invoice_date=D(2024, 1, 1), due_date=D(2024, 1, 31), amount_cents=100_000),
        dict(id="I2", customer_id="K1", invoice_date=D(2024, 2, 1), due_date=D(2024, 3, 2), amount_cents=50_000),
        dict(id="I3", customer_id="K1", invoice_date=D(2024, 3, 1), due_date=D(2024, 3, 31), amount_cents=30_000),
        dict(id="J1", customer_id="K2", invoice_date=D(2024, 1, 15), due_date=D(2024, 2, 14), amount_cents=10_000)])
    conn.execute(schema.receipts.insert(), [
        dict(id="R1", customer_id="K1", receipt_date=D(2024, 2, 20), amount_cents=100_000),
        dict(id="R2", customer_id="K1", receipt_date=D(2024, 3, 10), amount_cents=20_000),
        dict(id="R3", customer_id="K2", receipt_date=D(2024, 2, 10), amount_cents=10_000)])
    conn.execute(schema.applications.insert(), [
        dict(receipt_id="R1", invoice_id="I1", amount_cents=100_000, applied_date=D(2024, 2, 20)),
        dict(receipt_id="R2", invoice_id="I2", amount_cents=20_000, applied_date=D(2024, 3, 10)),
        dict(receipt_id="R3", invoice_id="J1", amount_cents=10_000, applied_date=D(2024, 2, 10))])
    conn.execute(schema.disputes.insert(), [dict(invoice_id="I2", customer_id="K1", opened_date=D(2024, 3, 5),
                                                 reason_code="price", amount_cents=5_000)])
    conn.execute(schema.promises.insert(), [dict(customer_id="K1", invoice_id="I2", made_on=D(2024, 3, 5),
                                                 promised_date=D(2024, 3, 15), amount_cents=30_000)])


@pytest.fixture
def ledger(engine):
    with engine.begin() as conn:
        _seed(conn)
    return engine


def _features(engine, as_of=AS_OF):
    with engine.connect() as conn:
        return F.history_frame(conn, F.customer_points(as_of)).set_index("customer_id")


def test_hand_computed_features(ledger):
    f = _features(ledger)
    k1 = f.loc["K1"]
    expected = dict(n_items=3, n_paid=1, avg_days_late=20, last3_days_late=20, late_share=1.0, severe_share=0.0,
                    partial_share=1 / 3, dispute_rate=1 / 3, open_disputes=1, open_disputed_cents=5_000,
                    broken_promises_90=1, promises_90=1, open_cents=60_000, overdue_share=1.0, share_31_60=0.5,
                    share_61_90=0.0, max_dpd=44, credit_util=0.3, terms_days=30, tenure_days=470)
    for key, value in expected.items():
        assert k1[key] == pytest.approx(value), key
    assert k1["region"] == "EMEA"
    k2 = f.loc["K2"]
    assert k2["avg_days_late"] == -4 and k2["late_share"] == 0 and np.isnan(k2["credit_util"])
    assert k2["tenure_days"] == 91  # no customer_since: days since the first invoice


def _add_future_rows(engine, start: dt.date):
    """Rows dated on/after ``start``: they must not change features as of ``start``."""
    later = start + dt.timedelta(days=3)
    with engine.begin() as conn:
        conn.execute(schema.invoices.insert(), [
            dict(id="F1", customer_id="K1", invoice_date=start, due_date=later, amount_cents=999_000),
            dict(id="F2", customer_id="K2", invoice_date=later, due_date=later, amount_cents=5_000)])
        conn.execute(schema.receipts.insert(), [dict(id="RF", customer_id="K1", receipt_date=start,
                                                     amount_cents=60_000)])
        conn.execute(schema.applications.insert(), [
            dict(receipt_id="RF", invoice_id="I2", amount_cents=30_000, applied_date=start),
            dict(receipt_id="RF", invoice_id="I3", amount_cents=30_000, applied_date=later)])
        conn.execute(schema.adjustments.insert(), [dict(invoice_id="F1", adj_date=later, amount_cents=-1_000,
                                                        kind="write_off")])
        conn.execute(schema.disputes.insert(), [dict(invoice_id="J1", customer_id="K2", opened_date=start,
                                                     reason_code="qty", amount_cents=1_000)])
        conn.execute(schema.promises.insert(), [dict(customer_id="K2", made_on=start, promised_date=start,
                                                     amount_cents=1_000)])
        db.bump_ledger_version(conn)


def test_no_leakage_future_rows_do_not_change_features(ledger):
    before = _features(ledger)
    with ledger.connect() as conn:
        pts = F.invoice_points()
        inv_before = F.history_frame(conn, pts).set_index("point_id")
    _add_future_rows(ledger, AS_OF)
    after = _features(ledger)
    pd.testing.assert_frame_equal(before, after)
    with ledger.connect() as conn:  # invoice-date points: history of each old invoice unchanged too
        inv_after = F.history_frame(conn, F.invoice_points()).set_index("point_id")
    pd.testing.assert_frame_equal(inv_before, inv_after.loc[inv_before.index])


def test_account_labels_by_hand(ledger):
    with ledger.connect() as conn:
        snaps = F.snapshot_features(conn, [D(2024, 2, 1), D(2024, 3, 1)]).set_index(["customer_id", "as_of"])
    # At 03-01 the window ends 05-30: I2 (due 03-02) is 61+ days late on 05-02 with 300.00 (60 %) open.
    assert snaps.loc[("K1", D(2024, 3, 1)), "label"] == 1
    # At 02-01 the window ends 05-01: I2 is only 60 days past due by then.
    assert snaps.loc[("K1", D(2024, 2, 1)), "label"] == 0
    assert snaps.loc[("K2", D(2024, 3, 1)), "label"] == 0


@pytest.mark.parametrize("p, expected", [(0.0, "low"), (0.0999, "low"), (0.10, "medium"), (0.2999, "medium"),
                                         (0.30, "high"), (0.5999, "high"), (0.60, "critical"), (1.0, "critical"),
                                         (float("nan"), "low")])
def test_band_thresholds(p, expected):
    assert band(p) == expected
    assert [b for _, b in BANDS] == ["low", "medium", "high", "critical"]


def test_reason_texts():
    assert reason_text("lateness", {"avg_days_late": 12, "avg_late_recent": 18, "avg_late_prev": 6}) == \
        "pays 18 days late on average, up from 6 the quarter before"
    assert reason_text("lateness", {"avg_days_late": 9.6, "late_share": 0.5}) == \
        "pays 10 days late on average (50% of invoices late)"
    assert reason_text("promises", {"broken_promises_90": 2}) == "2 broken promises in 90 days"
    assert reason_text("promises", {"broken_promises_90": 1}) == "1 broken promise in 90 days"
    assert reason_text("credit", {"credit_util": 0.62}) == "62% of credit limit used"
    assert reason_text("credit", {"credit_util": 1.3}) == "130% of credit limit used (over the limit)"
    assert reason_text("disputes", {"open_disputes": 1, "open_disputed_cents": 123_456}) == \
        "1 open dispute (1,234.56)"
    assert reason_text("aging", {"max_dpd": 75, "overdue_share": 0.4}) == \
        "oldest open item 75 days past due; 40% of the balance overdue"
    # with the table's figures (issue 17: the reason said 67 days next to a worst DPD of 341)
    assert reason_text("aging", {"max_dpd": 67, "overdue_share": 0.1, "max_days_past_due": 341,
                                 "overdue_cents": 4_500_000, "open_cents": 9_000_000, "currency": "EUR"}) == \
        "EUR 45,000.00 overdue (50% of the balance), oldest item 341 days past due"
    # drivers that explain nothing in a collector's words are not named
    assert reason_text("tenure", {"tenure_days": 900, "n_items": 145, "n_paid": 140}) is None
    assert reason_text("tenure", {"tenure_days": 120, "n_items": 4, "n_paid": 2}) == "new customer (4 months)"
    assert reason_text("region", {"region": "EMEA"}) is None
    assert reason_text("terms", {"terms_days": 30}) is None


def test_reasons_name_the_drivers_that_raise_the_score():
    X = pd.DataFrame({"max_dpd": [75.0, 0.0], "overdue_share": [0.4, 0.0], "broken_promises_90": [2.0, 0.0],
                      "late_share": [0.0, 0.0]})
    ref = {c: 0.0 for c in X.columns}
    got = reasons(HeuristicRiskScorer().fit(X, None), X, ref, list(X.columns))
    assert got[0] == "oldest open item 75 days past due; 40% of the balance overdue; 2 broken promises in 90 days"
    assert got[1] == "no strong risk signal"


def test_tiny_ledger_uses_heuristic_and_scores(ledger):
    model = train(ledger, AS_OF, max_iter=10)
    assert model.method["account"] == "heuristic" and model.method["invoice"] == "heuristic"
    scores = score_accounts(ledger, AS_OF, model=model)
    assert list(scores["customer_id"]) == ["K1"]  # K2 has no open balance
    row = scores.iloc[0]
    assert 0 <= row["probability"] <= 1
    assert row["expected_loss_cents"] == round(row["probability"] * 60_000)
    assert row["band"] == band(row["probability"])
    assert "days past due" in row["reasons"]
    inv = score_invoices(ledger, AS_OF, model=model)
    assert set(inv["invoice_id"]) == {"I2", "I3"}
    i2 = inv.set_index("invoice_id").loc["I2"]
    assert i2["probability_late"] == 1.0  # already 44 > 30 days past due
    assert i2["pay_date_low"] <= i2["pay_date"] <= i2["pay_date_high"] and i2["pay_date"] >= AS_OF


# ------------------------------------------------------------------------------------------------
# Trained models on a small generated ledger (DuckDB only, few trees)
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gen_url(tmp_path_factory):
    from analytics.generator import generate

    url = f"duckdb:///{tmp_path_factory.mktemp('risk') / 'gen.duckdb'}"
    eng = db.connect(url)
    generate(eng, customers=40, invoices=1600, seed=3, end=D(2025, 12, 31), months=18)
    eng.dispose()
    return url


@pytest.fixture(scope="module")
def gen_model(gen_url):
    eng = db.make_engine(gen_url)
    model = train(eng, D(2026, 1, 1), max_iter=25)
    eng.dispose()
    return model


def test_trained_model_scores_generated_ledger(gen_url, gen_model):
    assert gen_model.method == {"account": "model", "invoice": "model", "days": "model"}
    eng = db.make_engine(gen_url)
    scores = score_accounts(eng, D(2026, 1, 1), model=gen_model)
    assert len(scores) > 10
    assert scores["probability"].between(0, 1).all()
    assert (scores["expected_loss_cents"].diff().dropna() <= 0).all()  # ranked by expected loss
    assert scores["reasons"].str.len().gt(0).all()
    # reasons quote the row's own figures: every "N days past due" is the row's worst days past due
    import re
    for row in scores.itertuples():
        for days in re.findall(r"(\d+) days past due", row.reasons):
            assert int(days) == row.max_days_past_due, (row.reasons, row.max_days_past_due)
        assert "in the last 2 years" not in row.reasons and "region" not in row.reasons
    assert scores["reasons"].str.contains(" days past due").any()
    inv = score_invoices(eng, D(2026, 1, 1), model=gen_model)
    assert (inv["days_to_pay_low"] <= inv["days_to_pay"]).all() and (inv["days_to_pay"] <= inv["days_to_pay_high"]).all()


def test_save_load_round_trip(gen_url, gen_model, tmp_path):
    path = save_model(gen_model, tmp_path / "m" / "risk.model")
    loaded = load_model(path)
    assert loaded.trained_as_of == gen_model.trained_as_of and loaded.account_features == gen_model.account_features
    eng = db.make_engine(gen_url)
    with eng.connect() as conn:
        X = F.history_frame(conn, F.customer_points(D(2026, 1, 1)))[F.ACCOUNT_FEATURES]
    np.testing.assert_allclose(loaded.account_proba(X), gen_model.account_proba(X))
    header = persistence.read_header(path)
    assert header["schema_version"] == gen_model.schema_version and header["trained_as_of"] == "2026-01-01"


def _rewrite_header(path, **changes):
    raw = path.read_bytes()
    head, payload = raw.split(b"\n", 1)
    h = json.loads(head)
    h.update(changes)
    path.write_bytes(json.dumps(h).encode() + b"\n" + payload)


@pytest.mark.parametrize("damage, message", [
    ("schema", "schema version"), ("features", "feature list"), ("flip", "corrupted"), ("truncate", "corrupted"),
    ("garbage", "not a risk model"), ("missing", "not found")])
def test_load_refuses_bad_model_files(gen_model, tmp_path, damage, message):
    path = save_model(gen_model, tmp_path / "risk.model")
    if damage == "schema":
        _rewrite_header(path, schema_version=gen_model.schema_version + 1)
    elif damage == "features":
        _rewrite_header(path, account_features=["max_dpd"])
    elif damage == "flip":
        raw = bytearray(path.read_bytes())
        raw[-100] ^= 0xFF
        path.write_bytes(bytes(raw))
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:-500])
    elif damage == "garbage":
        path.write_bytes(b"\x80\x04not a model at all")
    else:
        path = tmp_path / "nope.model"
    with pytest.raises(UserError, match=message):
        load_model(path)


def test_cli_risk_json_shape(gen_url, gen_model, tmp_path, capsys):
    path = save_model(gen_model, tmp_path / "risk.model")
    assert cli.main(["risk", "--db", gen_url, "--as-of", "2026-01-01", "--model", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {"customer_id", "probability", "expected_loss", "band", "reasons"} <= set(rows[0])
    assert rows[0]["expected_loss"] >= rows[-1]["expected_loss"]
    assert cli.main(["risk", "--db", gen_url, "--model", str(tmp_path / "missing.model")]) == 2
    assert "not found" in capsys.readouterr().err


def _invoice_features(engine):
    with engine.connect() as conn:
        pts = F.invoice_points()
        frame = F.add_invoice_features(F.history_frame(conn, pts), F.invoice_attributes(conn, pts))
    return frame[F.INVOICE_FEATURES].sort_index()


def test_invoice_features_see_nothing_after_the_scoring_point(ledger):
    """Invoice-date points (the IBM model card's training and test rows): rows dated after each
    invoice's date change none of its features; a dispute opened ON the invoice date is part of the
    invoice's own state at the end of that day, one opened the day after is not."""
    before = _invoice_features(ledger)
    _add_future_rows(ledger, AS_OF)
    with ledger.begin() as conn:  # I3 issued 2024-03-01: disputed the day after -> invisible
        conn.execute(schema.disputes.insert(), [dict(invoice_id="I3", customer_id="K1", opened_date=D(2024, 3, 2),
                                                     reason_code="price", amount_cents=1_000)])
    after = _invoice_features(ledger)
    pd.testing.assert_frame_equal(before, after.loc[before.index])
    assert before.loc["I3", "inv_disputed"] == 0
    with ledger.begin() as conn:
        conn.execute(schema.disputes.insert(), [dict(invoice_id="I3", customer_id="K1", opened_date=D(2024, 3, 1),
                                                     reason_code="price", amount_cents=1_000)])
    assert _invoice_features(ledger).loc["I3", "inv_disputed"] == 1


def test_model_card_reports_the_early_warning_score(gen_url):
    """The account model asked only of current or early accounts (worst item <= 30 days past due)."""
    from analytics.risk import evaluate

    card = evaluate(db.make_engine(gen_url), max_iter=20)
    acc = card["account"]
    assert "model" in acc, acc
    ew = acc["early_warning"]
    assert ew["max_days_past_due"] == 30 and 0 < ew["n_test"] < acc["n_test"]
    assert ew["events"]["late"] + ew["events"]["on_time"] == ew["n_test"]
    assert ew["model"]["brier"] is not None and card["invoice"]["reliable"] in (True, False)


def test_kaplan_meier_quantiles_count_open_items_as_not_yet_paid():
    from analytics.risk.lateness import km_quantiles

    paid = np.array([True] * 10)
    assert km_quantiles(np.arange(1.0, 11.0), paid, (0.1, 0.5, 0.9)).tolist() == [1.0, 5.0, 9.0]
    # half the items still open at 3 days: the median moves later than the paid items alone say
    t = np.array([1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 8.0, 9.0])
    e = np.array([True, True, False, False, False, False, True, True])
    assert km_quantiles(t, e, (0.1, 0.5, 0.9)).tolist() == [1.0, 8.0, 9.0]  # paid items alone: 1.5, 5.5, 8.7
    # a quantile the data never reach (most items still open): 1.5 x the longest time seen
    assert km_quantiles(np.array([1.0, 2.0, 3.0]), np.array([True, False, False]), (0.5,)).tolist() == [4.5]
