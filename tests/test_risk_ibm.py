"""Model card on the real IBM sample: time split at 2013-07-01, outcome DaysLate > 0 (T = 0).

The model must beat the customer-history baseline (the customer's past late rate) on test ROC AUC,
and the days-to-pay model must beat the customer's past average days to pay on MAE.
"""
from __future__ import annotations

import datetime as dt

import pytest

from analytics import db, loaders
from analytics.risk import evaluate


@pytest.mark.slow
def test_ibm_model_beats_customer_history_baseline(ibm_csv, tmp_path):
    engine = db.connect(f"duckdb:///{tmp_path / 'ibm.duckdb'}")
    loaders.load(engine, "ibm", ibm_csv)
    card = evaluate(engine, dt.date(2013, 7, 1), late_days=0, max_iter=100)
    inv = card["invoice"]
    assert inv["n_train"] > 1500 and inv["n_test"] > 400
    assert inv["model"]["roc_auc"] > inv["baseline"]["roc_auc"]
    assert inv["model"]["brier"] < inv["baseline"]["brier"]
    assert inv["days_to_pay"]["mae_model"] < inv["days_to_pay"]["mae_baseline"]
    assert "note" in card["account"]  # no item is ever 60+ days past due in the sample
    assert card["truth"] is None
