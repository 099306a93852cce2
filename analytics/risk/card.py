"""Model card figures: time-split evaluation of the risk models against a naive baseline.

"model" is what production uses: :class:`~analytics.risk.models.DelinquencyClassifier` with
``kind="auto"`` (HistGradientBoosting when its Brier score on the latest 20 % of the training rows is
at least 1 % lower than the logistic regression's, else the logistic regression); both candidates are
reported too.

Everything is evaluated on a **time-based split**: models are trained on what was known before the
split date and tested on later rows.

* **Invoice model** (P(paid more than T days late or not at all)): trained on invoices dated before
  the split whose outcome was already known at the split date; tested on invoices dated on/after the
  split whose outcome is known at the end of the data. Baseline = the customer's own past rate of
  the same outcome (outcomes known before the invoice date; overall training rate when the customer
  has none).
* **Days to pay**: quantile boosting (median and 10–90 % interval) vs the customer's past average
  days to pay. MAE in days, and the share of test invoices inside the interval.
* **Account model** (P(balance 60+ days past due within 90 days)): snapshots every 30 days; trained on
  snapshots whose 90-day window ended before the split, tested on snapshots on/after it whose window
  ends within the data. Baseline = the customer's past rate of the label. ``early_warning`` reports the
  same on the test snapshots whose worst open item is at most :data:`EARLY_DPD` days past due (current
  or early accounts: the chance to become seriously late, which the aging cannot show).
* **Ground truth** (generated ledgers only, table ``customer_truth``): rank all customers by the
  account probability at the end of the data (model trained on the history) and report the
  precision at the top 10 % for the bad segments (defaulting, deteriorating, chronic_late).

Metrics: ROC AUC, Brier score, calibration curve (10 quantile bins: mean predicted vs observed).
"""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, roc_auc_score

from analytics import schema
from analytics.risk import features as F
from analytics.risk.models import DaysToPayRegressor, DelinquencyClassifier
from analytics.db import connection
from analytics.risk.scoring import (MAX_TRAINING_ROWS, fit_classifier, invoice_sample, invoice_training_frame,
                                    point_counts, train, training_sample)

BAD_SEGMENTS = ("defaulting", "deteriorating", "chronic_late")

MIN_EVENTS = 30
"""A test set needs at least this many rows of EACH class (late and on time) for ROC AUC and Brier to
mean anything; below it the section carries ``reliable: False`` and a ``warning`` (the CLI prints it
first and last, and exits 3)."""

EARLY_DPD = 30
"""Early warning: account snapshots whose worst open item is at most this many days past due."""

LATE_DAYS_CANDIDATES = (30, 15, 7, 0)
"""Thresholds T ("paid more than T days late or not at all") that ``evaluate`` tries, in order, when
none is given: the first (largest) whose test set has at least :data:`MIN_EVENTS` late AND
:data:`MIN_EVENTS` on-time invoices. 30 days is what a collector calls seriously late; a ledger whose
customers are rarely that late (the IBM sample: 2 of 536 test invoices) falls back to 15, 7, then 0
(any lateness)."""


def _r(x, nd=4):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), nd)


def _cls_metrics(y, p) -> dict:
    y = np.asarray(y).astype(int)
    p = np.clip(np.asarray(p, dtype=float), 0, 1)
    out = {"roc_auc": None, "brier": _r(brier_score_loss(y, p)) if len(y) else None}
    if len(np.unique(y)) == 2:
        out["roc_auc"] = _r(roc_auc_score(y, p))
    return out


def _calibration(y, p, bins=10) -> list[dict]:
    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        return []
    obs, pred = calibration_curve(y, np.clip(p, 0, 1), n_bins=bins, strategy="quantile")
    return [{"predicted": _r(a), "observed": _r(b)} for a, b in zip(pred, obs)]


def past_mean(events: pd.DataFrame, queries: pd.DataFrame, fallback: float) -> np.ndarray:
    """For each query (key, date): mean of the key's event values dated strictly before the date.

    Parameters
    ----------
    events : DataFrame with ``key, date, value``
    queries : DataFrame with ``key, date``
    fallback : float
        Used when the key has no earlier event.

    Returns
    -------
    numpy.ndarray aligned with ``queries``.
    """
    q = queries[["key", "date"]].copy()
    q["_i"] = np.arange(len(q))
    q["date"] = pd.to_datetime(q["date"]).astype("datetime64[ns]")
    if events.empty:
        return np.full(len(q), fallback)
    e = events[["key", "date", "value"]].copy()
    e["date"] = pd.to_datetime(e["date"]).astype("datetime64[ns]")
    e = e.sort_values(["key", "date"], kind="stable")
    e["csum"] = e.groupby("key")["value"].cumsum()
    e["ccount"] = e.groupby("key").cumcount() + 1
    e = e.groupby(["key", "date"], as_index=False).last()  # several events on one day: keep the running total
    m = pd.merge_asof(q.sort_values("date"), e.sort_values("date")[["key", "date", "csum", "ccount"]], on="date",
                      by="key", allow_exact_matches=False)
    m = m.sort_values("_i")
    vals = (m["csum"] / m["ccount"]).to_numpy(dtype=float)
    return np.where(np.isnan(vals), fallback, vals)


def _data_end(conn) -> dt.date | None:
    s = F.settlements()
    last = [conn.execute(sa.select(sa.func.max(F.inv.c.invoice_date))).scalar(),
            conn.execute(sa.select(sa.func.max(s.c.move_date))).scalar(),
            conn.execute(sa.select(sa.func.max(schema.receipts.c.receipt_date))).scalar()]
    last = [pd.Timestamp(x).date() for x in last if x is not None]
    return max(last) if last else None


def event_counts(conn, split: dt.date, end: dt.date, late_days: int) -> tuple[int, int]:
    """Late and on-time invoices among the test invoices (dated on/after ``split``) whose outcome at
    threshold ``late_days`` is known by the end of the data.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    split, end : datetime.date
    late_days : int

    Returns
    -------
    (late, on_time) : tuple of int

    Example
    -------
    >>> event_counts(conn, dt.date(2013, 7, 1), dt.date(2014, 1, 9), 0)       # doctest: +SKIP
    (151, 385)
    """
    pts = F.invoice_points(split, end + dt.timedelta(days=1))
    outcomes = F.invoice_outcomes(conn, end + dt.timedelta(days=1), points=pts)
    label, known = F.late_label(outcomes, late_days)
    late = int((label & known).sum())
    return late, int(known.sum()) - late


def choose_late_days(conn, split: dt.date, end: dt.date) -> tuple[int, dict]:
    """The default threshold T of ``risk evaluate``: the first of :data:`LATE_DAYS_CANDIDATES` whose
    test set holds at least :data:`MIN_EVENTS` invoices of each class (else the one with the most
    invoices in its smaller class).

    Returns
    -------
    (late_days, counts) : int, dict
        ``counts`` maps each candidate tried to its ``[late, on_time]`` test counts.

    Example
    -------
    >>> choose_late_days(conn, dt.date(2013, 7, 1), dt.date(2014, 1, 9))[0]  # IBM sample  # doctest: +SKIP
    0
    """
    counts = {}
    for t in LATE_DAYS_CANDIDATES:
        counts[t] = list(event_counts(conn, split, end, t))
        if min(counts[t]) >= MIN_EVENTS:
            return t, counts
    return max(counts, key=lambda t: (min(counts[t]), t)), counts


def _invoice_section(conn, split: dt.date, end: dt.date, late_days: int, max_iter: int,
                     max_training_rows: int | None = None) -> dict:
    cutoff = end + dt.timedelta(days=1)
    sample = invoice_sample(point_counts(conn, F.invoice_points(None, split)), max_training_rows)
    train_f = invoice_training_frame(conn, None, split, split, late_days, **(sample or {}))
    train_f = train_f[train_f["known"]]
    test_f = invoice_training_frame(conn, split, cutoff, cutoff, late_days)
    test_f = test_f[test_f["known"]]
    out = {"split_date": split.isoformat(), "late_days": late_days, "n_train": int(len(train_f)),
           "n_test": int(len(test_f))}
    if len(train_f) < 20 or len(test_f) < 20 or train_f["label"].nunique() < 2:
        out["note"] = "not enough labelled invoices on both sides of the split"
        return out
    Xtr, ytr = train_f[F.INVOICE_FEATURES], train_f["label"].to_numpy()
    Xte, yte = test_f[F.INVOICE_FEATURES], test_f["label"].to_numpy()
    out["test_positive_rate"] = _r(yte.mean())
    out["test_events"] = {"late": int(yte.sum()), "on_time": int(len(yte) - yte.sum())}
    out["reliable"] = min(out["test_events"].values()) >= MIN_EVENTS
    if not out["reliable"]:
        out["warning"] = (f"UNRELIABLE: the test set has {out['test_events']['late']} invoices paid more than "
                          f"{late_days} days late and {out['test_events']['on_time']} on time; ROC AUC and Brier "
                          f"need at least {MIN_EVENTS} of each. Choose another --late-days or --split-date.")
    chosen = DelinquencyClassifier(features=F.INVOICE_FEATURES, max_iter=max_iter).fit(Xtr, ytr)
    hgb = DelinquencyClassifier(features=F.INVOICE_FEATURES, kind="hgb", max_iter=max_iter).fit(Xtr, ytr)
    logit = DelinquencyClassifier(features=F.INVOICE_FEATURES, kind="logistic").fit(Xtr, ytr)
    p_model = chosen.predict_proba(Xte)[:, 1]
    p_hgb, p_log = hgb.predict_proba(Xte)[:, 1], logit.predict_proba(Xte)[:, 1]
    # Baseline: the customer's own past rate of the outcome (known before the invoice date).
    outcomes = F.invoice_outcomes(conn, cutoff)
    from analytics.risk.features import late_label
    lab, known = late_label(outcomes, late_days)
    ev = outcomes[known].copy()
    ev["label"] = lab[known].astype(float)
    due = pd.to_datetime(ev["due_date"])
    ev["known_date"] = np.where(ev["paid"], pd.to_datetime(ev["paid_date"]),
                                due + pd.to_timedelta(late_days + 1, unit="D"))
    events = pd.DataFrame({"key": ev["customer_id"], "date": ev["known_date"], "value": ev["label"]})
    queries = pd.DataFrame({"key": test_f["customer_id"], "date": test_f["invoice_date"]})
    p_base = past_mean(events, queries, float(ytr.mean()))
    out["model"] = {**_cls_metrics(yte, p_model), "selected": chosen.selected_kind_,
                    "calibration": _calibration(yte, p_model)}
    out["hgb"] = _cls_metrics(yte, p_hgb)
    out["logistic"] = _cls_metrics(yte, p_log)
    out["baseline"] = {**_cls_metrics(yte, p_base), "calibration": _calibration(yte, p_base),
                       "definition": "customer's past rate of the outcome"}
    # Days to pay
    paid_tr = train_f[train_f["paid"].fillna(False).astype(bool)]
    paid_te = test_f[test_f["paid"].fillna(False).astype(bool)]
    if len(paid_tr) >= 20 and len(paid_te):
        reg = DaysToPayRegressor(features=F.INVOICE_FEATURES, max_iter=max_iter).fit(
            paid_tr[F.INVOICE_FEATURES], paid_tr["days_to_pay"])
        q = reg.predict_interval(paid_te[F.INVOICE_FEATURES])
        actual = paid_te["days_to_pay"].to_numpy(dtype=float)
        pe = ev[ev["paid"]]
        d_events = pd.DataFrame({"key": pe["customer_id"], "date": pd.to_datetime(pe["paid_date"]),
                                 "value": pe["days_to_pay"].astype(float)})
        d_base = past_mean(d_events, pd.DataFrame({"key": paid_te["customer_id"], "date": paid_te["invoice_date"]}),
                           float(paid_tr["days_to_pay"].median()))
        out["days_to_pay"] = {
            "n_test": int(len(actual)),
            "mae_model": _r(np.mean(np.abs(q[:, 1] - actual)), 2),
            "mae_baseline": _r(np.mean(np.abs(d_base - actual)), 2),
            "interval": "10th-90th percentile",
            "interval_coverage": _r(np.mean((actual >= q[:, 0]) & (actual <= q[:, 2]))),
            "baseline_definition": "customer's past average days to pay",
        }
    return out


def _account_section(conn, split: dt.date, end: dt.date, max_iter: int, max_training_rows: int | None = None) -> dict:
    first = conn.execute(sa.select(sa.func.min(F.inv.c.invoice_date))).scalar()
    first = pd.Timestamp(first).date()
    last_snap = end - dt.timedelta(days=90)
    dates = []
    d = last_snap
    while d > first:
        dates.append(d)
        d -= dt.timedelta(days=30)
    out = {"split_date": split.isoformat()}
    if not dates:
        out["note"] = "history too short for 90-day windows"
        return out
    snaps = F.snapshot_features(conn, dates)
    snaps = snaps[snaps["n_items"] > 0].sort_values(["as_of", "customer_id"], kind="stable")
    as_of = pd.to_datetime(snaps["as_of"])
    tr = snaps[as_of + pd.Timedelta(days=90) < pd.Timestamp(split)]
    sample = training_sample(tr.groupby("customer_id").size(), max_training_rows)
    if sample is not None:
        tr = tr[tr["customer_id"].isin(sample)]
    te = snaps[as_of >= pd.Timestamp(split)]
    out.update({"n_train": int(len(tr)), "n_test": int(len(te)),
                "train_positive_rate": _r(tr["label"].mean()) if len(tr) else None,
                "test_positive_rate": _r(te["label"].mean()) if len(te) else None})
    if len(tr) < 20 or len(te) < 20 or tr["label"].nunique() < 2 or te["label"].nunique() < 2:
        out["note"] = "not applicable: too few snapshots or only one outcome class (no 60+ days past due balances)"
        return out
    clf, method = fit_classifier(tr[F.ACCOUNT_FEATURES], tr["label"].to_numpy(), list(F.ACCOUNT_FEATURES),
                                  max_iter, 0)
    p = clf.predict_proba(te[F.ACCOUNT_FEATURES])[:, 1]
    events = pd.DataFrame({"key": tr["customer_id"], "date": pd.to_datetime(tr["as_of"]) + pd.Timedelta(days=91),
                           "value": tr["label"].astype(float)})
    base = past_mean(events, pd.DataFrame({"key": te["customer_id"], "date": te["as_of"]}), float(tr["label"].mean()))
    out["method"] = method
    out["model"] = {**_cls_metrics(te["label"], p), "selected": getattr(clf, "selected_kind_", method),
                    "calibration": _calibration(te["label"], p)}
    out["baseline"] = {**_cls_metrics(te["label"], base), "definition": "customer's past rate of the outcome"}
    # Early warning: the same question asked only of accounts a collector would not chase yet (worst
    # open item at most EARLY_DPD days past due at the snapshot), where the aging cannot answer it.
    early = (te["max_dpd"] <= EARLY_DPD).to_numpy()
    y_early = te["label"].to_numpy()[early]
    out["early_warning"] = {"max_days_past_due": EARLY_DPD, "n_test": int(early.sum()),
                            "positive_rate": _r(y_early.mean()) if early.any() else None,
                            "events": {"late": int(y_early.sum()), "on_time": int(len(y_early) - y_early.sum())},
                            "model": _cls_metrics(y_early, p[early]), "baseline": _cls_metrics(y_early, base[early]),
                            "calibration": _calibration(y_early, p[early])}
    return out


def _truth_section(conn, end: dt.date, late_days: int, max_iter: int, top_share: float,
                   max_training_rows: int | None = MAX_TRAINING_ROWS) -> dict | None:
    truth = pd.DataFrame(conn.execute(sa.select(schema.customer_truth.c.customer_id,
                                                schema.customer_truth.c.segment)).all(),
                         columns=["customer_id", "segment"])
    if truth.empty:
        return None
    as_of = end + dt.timedelta(days=1)
    model = train(conn, as_of, late_days=late_days, max_iter=max_iter, max_training_rows=max_training_rows)
    hist = F.history_frame(conn, F.customer_points(as_of))
    hist = hist[hist["n_items"] > 0]
    p = model.account_proba(hist[F.ACCOUNT_FEATURES])
    frame = hist[["customer_id", "avg_days_late", "open_cents"]].assign(probability=p).merge(
        truth, on="customer_id", how="left")
    frame["bad"] = frame["segment"].isin(BAD_SEGMENTS)
    k = max(1, int(math.ceil(top_share * len(frame))))

    def precision(score):
        order = np.argsort(-np.nan_to_num(np.asarray(score, dtype=float), nan=-1e9), kind="stable")
        return _r(frame["bad"].to_numpy()[order[:k]].mean())

    return {
        "as_of": as_of.isoformat(), "customers": int(len(frame)), "top_k": k,
        "bad_segments": list(BAD_SEGMENTS), "bad_share_overall": _r(frame["bad"].mean()),
        "precision_at_top": precision(frame["probability"]),
        "precision_at_top_expected_loss": precision(frame["probability"] * frame["open_cents"]),
        "precision_at_top_baseline": precision(frame["avg_days_late"]),
        "baseline_definition": "rank by the customer's past average days late",
        "mean_probability_by_segment": {s: _r(v) for s, v in frame.groupby("segment")["probability"].mean().items()},
        "model_method": model.method,
    }


def evaluate(conn_or_engine, split_date: dt.date | None = None, late_days: int | None = None, max_iter: int = 150,
             top_share: float = 0.10, max_training_rows: int | None = None) -> dict:
    """Model card figures for the ledger (see the module docstring for every definition).

    Parameters
    ----------
    conn_or_engine : sqlalchemy.Engine or Connection
    split_date : datetime.date, optional
        Train before, test on/after. Default: the invoice date at the 60th percentile.
    late_days : int or None
        T of the invoice outcome (0 reproduces the IBM sample's ``DaysLate > 0``). None (default):
        chosen by :func:`choose_late_days` (30 days unless the test set has fewer than
        :data:`MIN_EVENTS` invoices of either class at 30; then 15, 7, 0).
    max_iter : int
        Boosting iterations.
    top_share : float
        Share of customers for the precision-at-top figure.
    max_training_rows : int or None
        Train the invoice and account models on a seeded customer sample of at most this many rows
        (the rule of :func:`~analytics.risk.scoring.training_sample`); test rows are never sampled.
        None (default) trains the evaluation models on every row; the ground-truth section uses
        ``train``'s default bound unless a number is given.

    Returns
    -------
    dict
        JSON-ready: ``data_end, invoice {...}, account {...}, truth {...} or None, warnings [...]``.
        ``invoice.reliable`` is False (and ``invoice.warning`` says why, also listed in ``warnings``)
        when the test set has fewer than :data:`MIN_EVENTS` invoices of either class.

    Example
    -------
    >>> card = evaluate(engine, dt.date(2013, 7, 1), late_days=0)          # doctest: +SKIP
    >>> card["invoice"]["model"]["roc_auc"] > card["invoice"]["baseline"]["roc_auc"]
    True
    """
    with connection(conn_or_engine) as conn:
        end = _data_end(conn)
        if end is None:
            from analytics.errors import UserError
            raise UserError("the ledger is empty: nothing to evaluate")
        if split_date is None:
            dates = pd.to_datetime(pd.Series(conn.execute(sa.select(F.inv.c.invoice_date)).scalars().all()))
            split_date = dates.quantile(0.6).date()
        threshold = None
        if late_days is None:
            late_days, counts = choose_late_days(conn, split_date, end)
            threshold = {"chosen": late_days, "rule": f"largest of {list(LATE_DAYS_CANDIDATES)} days with "
                                                      f"{MIN_EVENTS}+ test invoices of each class",
                         "test_counts_late_on_time": {str(k): v for k, v in counts.items()}}
        invoice = _invoice_section(conn, split_date, end, late_days, max_iter, max_training_rows)
        if threshold:
            invoice["threshold"] = threshold
        return {
            "data_end": end.isoformat(),
            "invoice": invoice,
            "account": _account_section(conn, split_date, end, max_iter, max_training_rows),
            "truth": _truth_section(conn, end, late_days, max_iter, top_share,
                                    MAX_TRAINING_ROWS if max_training_rows is None else max_training_rows),
            "warnings": [invoice["warning"]] if "warning" in invoice else [],
        }
