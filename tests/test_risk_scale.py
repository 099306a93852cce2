"""Training at scale: the bounded, seeded customer sample and the per-item settlement states.

* ``training_sample`` keeps whole customers in a seeded hash order until ``max_rows`` is full;
  None when everything fits (small ledgers train exactly as before).
* ``train(max_training_rows=N)`` on a ledger with more points than N trains each model on at most
  N rows, and the same seed gives the same model (same rows, same probabilities).
* The sample reaches the SQL (``customer_ids`` rendered as literals) on DuckDB, SQLite and PostgreSQL.
* ``item_states`` (running settlement totals per item) gives the same (point, item) history as the
  former per-pair aggregation of every settlement dated before the point.
"""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from analytics import db
from analytics.risk import features as F
from analytics.risk import train
from analytics.risk.scoring import invoice_sample, point_counts, snapshot_dates, training_sample
from tests.test_risk import AS_OF, _seed

D = dt.date


def test_training_sample_bound_whole_customers_and_seed():
    counts = pd.Series({f"C{i:03d}": (i % 7) + 1 for i in range(200)})
    assert training_sample(counts, int(counts.sum())) is None
    assert training_sample(counts, None) is None
    a = training_sample(counts, 100, random_state=0)
    assert a == training_sample(counts, 100, random_state=0)  # deterministic
    assert a == sorted(a) and len(set(a)) == len(a)
    assert counts[a].sum() <= 100 and counts[a].sum() >= 100 - counts.max()  # filled up to the budget
    b = training_sample(counts, 100, random_state=1)
    assert b != a  # another seed, another sample
    # Order of the input does not matter (hash order, not row order).
    assert training_sample(counts.iloc[::-1], 100, random_state=0) == a
    # A customer bigger than the budget is skipped, not split.
    assert training_sample(pd.Series({"BIG": 50, "S1": 3, "S2": 4}), 10) == ["S1", "S2"]
    with pytest.raises(ValueError):
        training_sample(counts, 0)


def test_invoice_sample_spreads_over_customers():
    counts = pd.Series({"A": 10, "B": 2, "C": 5})
    assert invoice_sample(counts, 17) is None
    assert invoice_sample(counts, 9) == {"customer_ids": None, "per_customer": 3, "offset": 0}  # 3 + 2 + 3 = 8
    assert invoice_sample(counts, 12, random_state=4) == {"customer_ids": None, "per_customer": 5, "offset": 4}
    many = pd.Series(5, index=[f"C{i}" for i in range(30)])
    s = invoice_sample(many, 10)  # fewer rows than customers: 10 customers, one invoice each
    assert s["per_customer"] == 1 and len(s["customer_ids"]) == 10


def test_sample_reaches_sql_on_every_dialect(engine):
    with engine.begin() as conn:
        _seed(conn)
    with engine.connect() as conn:
        inv = F.history_frame(conn, F.invoice_points(customer_ids=["K2", "O'Brien"]))
        assert list(inv["point_id"]) == ["J1"]
        counts = point_counts(conn, F.snapshot_points([D(2024, 2, 1), AS_OF]))
        assert counts.to_dict() == {"K1": 2, "K2": 2}
        snaps = F.snapshot_features(conn, [D(2024, 2, 1), AS_OF], customer_ids=["K1"])
        assert set(snaps["customer_id"]) == {"K1"} and len(snaps) == 2
        out = F.invoice_outcomes(conn, AS_OF, points=F.invoice_points(customer_ids=["K1"]))
        assert sorted(out.index) == ["I1", "I2", "I3"]
        # Evenly spread: K1 has I1, I2, I3 (i = 0, 1, 2); k = 2 keeps (i * 2) mod 3 < 2 -> i = 0, 2.
        spread = F.history_frame(conn, F.invoice_points(per_customer=2))
        assert sorted(spread["point_id"]) == ["I1", "I3", "J1"]
        shifted = F.history_frame(conn, F.invoice_points(per_customer=2, offset=1))  # (i + 1) * 2 mod 3 < 2
        assert sorted(shifted["point_id"]) == ["I2", "I3", "J1"]
        one = F.history_frame(conn, F.invoice_points(customer_ids=["K1"], per_customer=1))
        assert list(one["point_id"]) == ["I1"]


@pytest.fixture(scope="module")
def gen_engine(tmp_path_factory):
    from analytics.generator import generate

    url = f"duckdb:///{tmp_path_factory.mktemp('risk_scale') / 'gen.duckdb'}"
    eng = db.connect(url)
    generate(eng, customers=40, invoices=1600, seed=3, end=D(2025, 12, 31), months=18)
    yield eng
    eng.dispose()


def test_train_is_bounded_and_deterministic(gen_engine):
    as_of = D(2026, 1, 1)
    cap = 300
    m1 = train(gen_engine, as_of, max_iter=10, max_training_rows=cap)
    n = m1.n_train
    assert n["account_candidates"] > cap and n["invoice_candidates"] > cap  # the bound is active
    assert 0 < n["account_rows"] <= cap and 0 < n["invoice_rows"] <= cap
    assert n["account_sampled_customers"] < 40  # whole customers
    assert n["invoice_per_customer"] >= 1 and n["invoice_sampled_customers"] >= 35  # spread over (nearly) all
    m2 = train(gen_engine, as_of, max_iter=10, max_training_rows=cap)
    assert m2.n_train == n
    with gen_engine.connect() as conn:
        X = F.history_frame(conn, F.customer_points(as_of))
    np.testing.assert_array_equal(m1.account_proba(X[F.ACCOUNT_FEATURES]), m2.account_proba(X[F.ACCOUNT_FEATURES]))
    np.testing.assert_array_equal(m1.invoice_proba(X.assign(amount_cents=1e5, amount_ratio=1.0, inv_terms_days=30,
                                                           inv_disputed=0)[F.INVOICE_FEATURES]),
                                  m2.invoice_proba(X.assign(amount_cents=1e5, amount_ratio=1.0, inv_terms_days=30,
                                                           inv_disputed=0)[F.INVOICE_FEATURES]))
    # Unbounded: every candidate point is used.
    full = train(gen_engine, as_of, max_iter=10, max_training_rows=None)
    assert full.n_train["account_sampled_customers"] is None and full.n_train["invoice_rows"] > cap


def _reference_point_items(points):
    """The former formulation: every settlement dated before the point, aggregated per (point, item)."""
    p = points
    j = F.inv.alias("j")
    s = F.settlements()
    return (
        sa.select(
            p.c.pk, p.c.as_of, j.c.id.label("item_id"), j.c.amount_cents, j.c.invoice_date, j.c.due_date,
            sa.func.coalesce(sa.func.sum(s.c.delta_cents), 0).label("settled_cents"),
            sa.func.coalesce(sa.func.sum(sa.case((s.c.kind == "write_off", 1), else_=0)), 0).label("n_wo"),
            sa.func.coalesce(sa.func.sum(sa.case((s.c.kind == "cash", 1), else_=0)), 0).label("n_cash"),
            sa.func.max(s.c.move_date).label("last_move"),
        )
        .select_from(
            p.join(j, sa.and_(j.c.customer_id == p.c.customer_id, j.c.invoice_date < p.c.as_of,
                              j.c.doc_type != "credit_memo",
                              F.days_between(j.c.invoice_date, p.c.as_of) <= F.HISTORY_DAYS))
            .outerjoin(s, sa.and_(s.c.item_id == j.c.id, s.c.move_date < p.c.as_of))
        )
        .group_by(p.c.pk, p.c.as_of, j.c.id, j.c.amount_cents, j.c.invoice_date, j.c.due_date)
        .cte("pitems")
    )


def test_item_states_match_per_pair_aggregation(gen_engine, monkeypatch):
    dates = snapshot_dates(D(2024, 7, 1), D(2026, 1, 1), count=6)
    pts = F.snapshot_points(dates)
    points = sa.select(pts.c.customer_id.label("point_id"), pts.c.customer_id, pts.c.as_of).subquery("points")
    with gen_engine.connect() as conn:
        new = F.history_frame(conn, points)
        monkeypatch.setattr(F, "_point_items", _reference_point_items)
        old = F.history_frame(conn, points)
    assert len(new) > 100
    pd.testing.assert_frame_equal(new, old)


def test_cli_train_with_a_row_bound(small_ledger_url, tmp_path, capsys):
    """`risk train --max-training-rows N` bounds the training set; a bad value is a usage error."""
    from analytics import cli

    out = tmp_path / "risk.model"
    assert cli.main(["risk", "train", "--db", small_ledger_url, "--as-of", "2026-01-01", "--out", str(out),
                     "--max-training-rows", "500", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    n = info["n_train"]
    assert out.exists() and n["max_training_rows"] == 500
    assert n["account_rows"] <= 500 < n["account_candidates"] and n["invoice_rows"] <= 500
    # a usage error: one line on stderr and exit code 2 (returned by cli.main, not raised)
    assert cli.main(["risk", "train", "--db", small_ledger_url, "--max-training-rows", "-3"]) == 2
    assert "not a positive number of rows" in capsys.readouterr().err
