"""Contact effects in the generator, contact value and the policy backtest (issue 19).

A 200-customer ledger generated with ``contact_effects=True``: the ground truth is in ``ledger_meta``,
responsive segments respond more, and replaying 30 days with one contact per collector and business
day, ranking by contact value collects more than ranking by overdue amount.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from analytics import cli, db
from analytics.errors import UserError
from analytics.generator import build_frames, contact_truth, generate
from analytics.risk import save_model, train
from analytics.risk.policy import RULES, contact_values, policy_backtest, response_rates

END = dt.date(2025, 12, 31)
START = dt.date(2025, 12, 1)


@pytest.fixture(scope="module")
def effects_url(tmp_path_factory):
    url = f"duckdb:///{tmp_path_factory.mktemp('policy') / 'effects.duckdb'}"
    eng = db.connect(url)
    generate(eng, customers=200, invoices=12_000, seed=7, end=END, months=18, contact_effects=True)
    eng.dispose()
    return url


@pytest.fixture(scope="module")
def small_model(effects_url):
    eng = db.make_engine(effects_url)
    model = train(eng, START, max_iter=25)
    eng.dispose()
    return model


def test_contact_effects_are_opt_in_and_leave_other_tables_alone():
    plain = build_frames(customers=30, invoices=900, seed=5, end=END, months=12)
    again = build_frames(customers=30, invoices=900, seed=5, end=END, months=12, contact_effects=False)
    effects = build_frames(customers=30, invoices=900, seed=5, end=END, months=12, contact_effects=True)
    assert "ledger_meta" not in plain and "ledger_meta" in effects
    for name in plain:
        if not name.startswith("_"):
            pd.testing.assert_frame_equal(plain[name], again[name])
    for name in ("customers", "customer_truth", "collectors"):
        pd.testing.assert_frame_equal(plain[name], effects[name])
    issued = [f[f["doc_type"] == "invoice"].reset_index(drop=True) for f in (plain["invoices"], effects["invoices"])]
    pd.testing.assert_frame_equal(*issued)  # the same invoices are issued; only how they are paid changes
    assert not plain["receipts"].equals(effects["receipts"])  # contacts moved some payments


def test_ground_truth_round_trips_and_responsive_segments_respond(effects_url):
    eng = db.make_engine(effects_url)
    with eng.connect() as conn:
        responses, effects = contact_truth(conn)
        truth = pd.read_sql("SELECT customer_id, segment FROM customer_truth", conn)
        estimate = response_rates(conn, START)
    assert len(responses) == 200 and effects["lag_days"] == [2, 6]
    by_segment = truth.assign(r=truth["customer_id"].map(responses)).groupby("segment")["r"].mean()
    assert by_segment["chronic_late"] > 0.5 > by_segment["on_time"] and by_segment["defaulting"] < 0.05
    # the product's estimate (from the history only) ranks customers like the truth
    both = pd.DataFrame({"est": estimate, "true": pd.Series(responses)}).dropna()
    assert both.corr(method="spearman").iloc[0, 1] > 0.4


def test_backtest_refuses_a_ledger_without_ground_truth(tmp_path):
    eng = db.connect(f"duckdb:///{tmp_path / 'plain.duckdb'}")
    generate(eng, customers=10, invoices=200, seed=1, end=END, months=6)
    with pytest.raises(UserError, match="--contact-effects"):
        policy_backtest(eng)


def test_product_ranking_collects_more_than_overdue_amount(effects_url, small_model, capsys, tmp_path):
    eng = db.make_engine(effects_url)
    result = policy_backtest(eng, START, capacity=1, replays=3, model=small_model)
    rows = {r["rule"]: r for r in result["rows"]}
    assert list(rows) == list(RULES) and result["currency"] == "USD"
    assert rows["none"]["extra_cents"] == 0 and rows["none"]["contacts"] == 0
    assert len({r["contacts"] for r in result["rows"][1:]}) == 1  # same capacity used by every rule
    assert rows["contact_value"]["extra_cents"] > rows["overdue_amount"]["extra_cents"]
    assert rows["contact_value"]["extra_cents"] > rows["oldest_item"]["extra_cents"]
    assert result["product_vs_overdue"]["mean_cents"] > 0
    values = contact_values(eng, START)
    assert (values["contact_value_cents"] <= values["at_stake_cents"]).all()
    assert values["response"].between(0, 1).all()
    model_file = save_model(small_model, tmp_path / "risk.model")  # the command would otherwise train again
    code = cli.main(["risk", "policy-backtest", "--db", effects_url, "--start", START.isoformat(), "--capacity", "1",
                     "--replays", "1", "--model", str(model_file)])
    out = capsys.readouterr().out
    assert code == 0 and "contact value (the product's ranking)" in out and "largest overdue amount" in out
